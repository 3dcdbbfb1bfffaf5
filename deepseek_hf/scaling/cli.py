"""`deepseek-hf scaling`: the paper's scaling-law hyperparameters from the command line.

deepseek-hf scaling hparams --preset deepseek-llm-7b --tokens 2e12
deepseek-hf scaling hparams --config path/to/config.json --compute 1e20 --seq-length 2048 --json
deepseek-hf scaling allocation --compute 1e20
deepseek-hf scaling fit results.jsonl --output fits.json --bootstrap 1000 --seed 0
deepseek-hf scaling plot results.jsonl --output-dir plots/
deepseek-hf scaling fit outputs/scaling-quality --table table4.md     # a study on several corpora (Table 4)
deepseek-hf scaling fit noisy=a/results.jsonl clean=b/results.jsonl   # or any tables, lower quality first
deepseek-hf scaling schedules results.jsonl --output-dir plots/        # the loss curves of a schedule study (Fig. 1b)
deepseek-hf scaling degrade-corpus corpus.jsonl.gz noisy.jsonl --shuffle-fraction 0.5
deepseek-hf scaling shapes --compute 1e20 --seq-length 4096 --num-shapes 7

Flags take dashes or underscores (`--seq-length` = `--seq_length`).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..utils import ArgumentParser, bounded_number
from .hparams import PAPER_TABLE_2, model_flops_per_token, round_batch_sequences, scaling_hyperparameters
from .laws import BATCH_SIZE_LAW, DATA_SCALE_LAW, LEARNING_RATE_LAW, MODEL_SCALE_LAW, optimal_allocation


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def make_parser(prog: str = "deepseek-hf scaling") -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    hparams = commands.add_parser(
        "hparams",
        help="batch size and learning rate for a model and a token or compute budget (paper Eq. 1)",
        description="Near-optimal batch size and peak LR (paper Eq. 1) for a model (M from its config) trained "
        "on D tokens or with C FLOPs (C = M * D), with the compute-optimal M_opt / D_opt (Eq. 4) for comparison.",
    )
    model = hparams.add_mutually_exclusive_group(required=True)
    model.add_argument("--preset", help="a DeepseekLLMConfig preset, e.g. deepseek-llm-7b")
    model.add_argument("--config", help="a model config.json (or a checkpoint folder holding one)")
    model.add_argument("--flops-per-token", type=_positive_float, help="M directly (non-embedding FLOPs/token)")
    budget = hparams.add_mutually_exclusive_group(required=True)
    budget.add_argument("--tokens", type=_positive_float, help="token budget D")
    budget.add_argument("--compute", type=_positive_float, help="compute budget C in FLOPs")
    hparams.add_argument(
        "--seq-length", type=_positive_int, help="training sequence length (default: the model's context)"
    )
    hparams.add_argument("--json", action="store_true", help="print JSON instead of a table")

    allocation = commands.add_parser(
        "allocation", help="compute-optimal model scale and data scale for a compute budget (paper Eq. 4)"
    )
    allocation.add_argument("--compute", type=_positive_float, required=True, help="compute budget C in FLOPs")
    allocation.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_fit_commands(commands)
    _add_shapes_command(commands)
    _add_study_commands(commands)
    return parser


_fraction = bounded_number(float, lambda value: 0 <= value <= 1, "in [0, 1]")


def _add_study_commands(commands) -> None:
    """`schedules` (Figure 1b) and `degrade-corpus` (a lower-quality corpus for a Table 4 study)."""
    schedules = commands.add_parser(
        "schedules",
        help="training-loss curves of every multi-step schedule of a `kind: schedule` study (paper Figure 1b)",
        description="Print the final losses of the schedule rows of a results table and draw their training-loss "
        "curves in one figure, schedule_curves.png in --output-dir.",
    )
    schedules.add_argument("results", help="the results table: results.jsonl (or its results.csv)")
    schedules.add_argument("--output-dir", required=True, help="folder for schedule_curves.png")
    degrade = commands.add_parser(
        "degrade-corpus",
        help="a lower-quality copy of a corpus (shuffled words, verbatim copies) for a study by data quality",
        description="Copy a JSONL corpus with a fraction of its documents' words (characters, for Chinese) shuffled "
        "and a fraction repeated verbatim (deepseek_hf.scaling.corpus_quality).",
    )
    degrade.add_argument("source", help="JSONL or .jsonl.gz corpus (package://demo/... allowed)")
    degrade.add_argument("output", help="the degraded corpus, *.jsonl")
    degrade.add_argument("--shuffle-fraction", type=_fraction, default=0.5, help="documents shuffled (default 0.5)")
    degrade.add_argument("--duplicate-fraction", type=_fraction, default=0.0, help="documents copied (default 0)")
    degrade.add_argument("--seed", type=int, default=0, help="seed of the choice and of the shuffles")
    degrade.add_argument("--text-key", default="text", help="the records' text field (default text)")


def _schedules_command(args: argparse.Namespace) -> int:
    from .plots import plot_schedules
    from .results import read_results
    from .shapes import schedule_label

    rows = [row for row in read_results(args.results) if row["kind"] == "schedule"]
    path = plot_schedules(rows, args.output_dir)
    table = [("run", "stages (%)", "final train loss", "eval loss", "eval bpb")]
    for row in rows:
        milestones = row["extra"]["schedule"]["milestones"]
        final = row["extra"]["loss_curve"]["loss"][-1]
        table.append(
            (
                row["run"],
                schedule_label(milestones),
                f"{final:.4f}",
                f"{row['eval_loss']:.4f}",
                f"{row['eval_bpb']:.4f}",
            )
        )
    _print_columns(table)
    print(f"wrote {path}")
    return 0


def _degrade_command(args: argparse.Namespace) -> int:
    from .corpus_quality import degrade_corpus

    report = degrade_corpus(
        args.source,
        args.output,
        shuffle_fraction=args.shuffle_fraction,
        duplicate_fraction=args.duplicate_fraction,
        seed=args.seed,
        text_key=args.text_key,
    )
    print(
        f"wrote {args.output}: {report.written} documents ({report.documents} of {args.source}, {report.shuffled} "
        f"of them shuffled, {report.duplicated} copies added)"
    )
    return 0


def _print_columns(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _add_shapes_command(commands) -> None:
    """`shapes`: the model shapes of one IsoFLOP profile (`deepseek_hf.scaling.shapes.isoflop_shapes`)."""
    shapes = commands.add_parser(
        "shapes",
        help="model shapes of an IsoFLOP profile at a compute budget, each with D = C / M, batch and LR",
        description="Model shapes whose M (paper Eq. 2) spans the compute-optimal M_opt(C) (Eq. 4) or --centre, "
        "each with D = C / M tokens and the batch size and LR of Eq. 1 (or the ones given).",
    )
    shapes.add_argument("--compute", type=_positive_float, required=True, help="compute budget C in FLOPs")
    shapes.add_argument("--seq-length", type=_positive_int, required=True, help="training sequence length")
    shapes.add_argument("--num-shapes", type=_positive_int, default=5, help="shapes in the profile (default 5)")
    shapes.add_argument("--span", type=_positive_float, default=8.0, help="largest / smallest M (default 8)")
    shapes.add_argument("--centre", type=_positive_float, help="centre M (default: the paper's M_opt(C))")
    shapes.add_argument("--batch-tokens", type=_positive_float, help="batch size in tokens (default: B_opt(C))")
    shapes.add_argument("--learning-rate", type=_positive_float, help="peak LR (default: eta_opt(C))")
    shapes.add_argument("--head-dim", type=_positive_int, default=128, help="width per head (default 128)")
    shapes.add_argument("--ffn-multiple-of", type=_positive_int, default=256, help="FFN rounding (default 256)")
    shapes.add_argument("--max-layers", type=_positive_int, default=128, help="deepest model (default 128)")
    shapes.add_argument("--min-steps", type=_positive_int, default=20, help="fewest optimizer steps (default 20)")
    shapes.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _shapes_command(args: argparse.Namespace) -> int:
    from .shapes import ShapeSpace, isoflop_shapes

    space = ShapeSpace(head_dim=args.head_dim, ffn_multiple_of=args.ffn_multiple_of, max_layers=args.max_layers)
    runs = isoflop_shapes(
        args.compute,
        args.seq_length,
        num_shapes=args.num_shapes,
        span=args.span,
        centre=args.centre,
        space=space,
        batch_tokens=args.batch_tokens,
        learning_rate=args.learning_rate,
        min_steps=args.min_steps,
    )
    if args.json:
        print(json.dumps([run.to_dict() for run in runs], indent=2))
        return 0
    rows = [("run", "n_layer", "d_model", "heads", "ffn", "M", "D = C/M", "batch (tokens)", "LR")]
    for run in runs:
        shape = run.shape
        rows.append(
            (
                run.name,
                str(shape.n_layer),
                str(shape.d_model),
                str(shape.n_heads),
                str(shape.intermediate_size),
                f"{run.model_scale:.4g}",
                f"{run.tokens:.4g}",
                str(run.batch_tokens),
                f"{run.learning_rate:.4g}",
            )
        )
    _print_columns(rows)
    return 0


def _add_fit_commands(commands) -> None:
    """`fit` and `plot`: the scaling laws fitted to a results table of one's own runs (`deepseek_hf.scaling.fits`)."""
    fit = commands.add_parser(
        "fit",
        help="fit B_opt / eta_opt, M_opt / D_opt and the loss law to a results table, with bootstrap uncertainty",
        description="Fit the paper's scaling laws (batch/LR grid, IsoFLOP allocation, loss against compute) to a "
        "results table (results.jsonl or .csv) and print every coefficient with its bootstrap std and interval next "
        "to the paper's value.",
    )
    plot = commands.add_parser(
        "plot",
        help="PNG figures like the paper's Figures 2-5 from a results table",
        description="Fit the results table as `fit` does and draw grid_heatmap.png, grid_fits.png, isoflop.png, "
        "optimal_allocation.png and loss_law.png (those the table's rows allow) into --output-dir.",
    )
    for sub in (fit, plot):
        sub.add_argument(
            "results",
            nargs="+",
            help="the results table: results.jsonl (or its results.csv); several (NAME=PATH, lower quality first) or "
            "a study folder with corpora.json: a and b per corpus side by side (paper Table 4)",
        )
        sub.add_argument(
            "--bootstrap", type=int, default=1000, help="bootstrap resamples for the uncertainties (0: none)"
        )
        sub.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
        sub.add_argument("--confidence", type=float, default=0.95, help="level of the percentile intervals")
        sub.add_argument(
            "--loss-form",
            choices=("power", "offset"),
            default="power",
            help="loss law: bpb = k C^-alpha (power) or L_inf + k C^-alpha (offset, 4+ budgets)",
        )
        sub.add_argument(
            "--exclude-edge",
            action="store_true",
            help="leave out the budgets whose optimum is at the edge of their grid (they are flagged either way)",
        )
    fit.add_argument("--output", help="also write the fits as JSON to this file")
    fit.add_argument("--table", help="several corpora: also write the Markdown table (Table 4) to this file")
    fit.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plot.add_argument("--output-dir", required=True, help="folder for the PNG files")


def _load_config(args: argparse.Namespace):
    from deepseek_hf.modeling import DeepseekLLMConfig

    if args.preset:
        return DeepseekLLMConfig.from_preset(args.preset)
    return DeepseekLLMConfig.from_pretrained(args.config)


def _hparams(args: argparse.Namespace) -> dict:
    seq_length = args.seq_length
    if args.flops_per_token is not None:
        flops_per_token = args.flops_per_token
        if seq_length is None:
            raise SystemExit("--seq-length is needed with --flops-per-token (to express the batch in sequences)")
    else:
        config = _load_config(args)
        seq_length = seq_length or config.max_position_embeddings
        flops_per_token = model_flops_per_token(config, seq_length)
    hp = scaling_hyperparameters(flops_per_token=flops_per_token, tokens=args.tokens, compute=args.compute)
    result = {
        **hp.to_dict(),
        "seq_length": seq_length,
        "batch_sequences": hp.batch_sequences(seq_length),
        "batch_sequences_rounded": round_batch_sequences(hp.batch_tokens, seq_length),
        "laws": [str(law) for law in (BATCH_SIZE_LAW, LEARNING_RATE_LAW, MODEL_SCALE_LAW, DATA_SCALE_LAW)],
    }
    if args.preset in PAPER_TABLE_2:
        result["paper_table_2"] = PAPER_TABLE_2[args.preset]
    return result


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _fit_table(args: argparse.Namespace):
    from .fits import fit_results
    from .results import read_results

    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    fits = fit_results(
        read_results(args.results),
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        confidence=args.confidence,
        loss_form=args.loss_form,
        exclude_edge=args.exclude_edge,
    )
    for message in fits.warnings:
        print(f"warning: {message}", file=sys.stderr)
    return fits


def _estimate_cells(estimate) -> tuple[str, str]:
    if estimate.std is None:
        return f"{estimate.value:.4g}", ""
    return f"{estimate.value:.4g} ± {estimate.std:.2g}", f"[{estimate.low:.4g}, {estimate.high:.4g}]"


def _fits_table(fits) -> list[tuple[str, ...]]:
    """Rows of (quantity, fitted ± std, interval, paper) for every coefficient of `fits`."""
    rows: list[tuple[str, ...]] = []

    def law(fit) -> None:
        for part in ("coefficient", "exponent"):
            paper = getattr(fit.paper, part) if fit.paper is not None else None
            rows.append(
                (f"{fit.name} {part}", *_estimate_cells(getattr(fit, part)), "" if paper is None else f"{paper:.4g}")
            )

    if fits.grid is not None:
        law(fits.grid.batch_size)
        law(fits.grid.learning_rate)
    if fits.isoflop is not None:
        for curve in fits.isoflop.curves:
            flag = " (edge)" if curve.at_edge else "" if curve.used else f" (left out: {curve.note})"
            value = f"M_opt {curve.model_scale_opt:.3g}, bpb {curve.bpb_opt:.4g}" if curve.coefficients else "-"
            rows.append((f"IsoFLOP C={curve.budget:.3g}{flag}", value, "", ""))
        law(fits.isoflop.model_scale)
        law(fits.isoflop.data_scale)
        rows.append(("a + b", *_estimate_cells(fits.isoflop.exponent_sum), "1"))
    if fits.loss is not None:
        rows.append((f"loss law ({fits.loss.form})", str(fits.loss), "", "(plotted only)"))
        rows.append(("loss coefficient k", *_estimate_cells(fits.loss.coefficient), ""))
        rows.append(("loss exponent alpha", *_estimate_cells(fits.loss.alpha), ""))
        if fits.loss.irreducible is not None:
            rows.append(("loss L_inf", *_estimate_cells(fits.loss.irreducible), ""))
    for check in fits.predictions:
        predicted, interval = _estimate_cells(check.predicted)
        rows.append(
            (
                f"predict {check.run} (C={check.compute:.3g})",
                f"predicted {predicted}, measured {check.actual:.4g}",
                interval,
                f"error {check.relative_error:+.2%}",
            )
        )
    for name, why in fits.skipped.items():
        rows.append((f"{name}: not fitted", why, "", ""))
    return rows


def _corpora_command(args: argparse.Namespace, tables: dict[str, str]) -> int:
    """fit / plot on several corpora: a and b per corpus side by side with the paper's Table 4."""
    from pathlib import Path

    from ..utils import write_text_atomic
    from .compare import corpora_table, fit_corpora

    if args.loss_form != "power":
        print("warning: --loss-form is not used with several corpora (only a and b are compared)", file=sys.stderr)
    result = fit_corpora(
        tables, n_bootstrap=args.bootstrap, seed=args.seed, confidence=args.confidence, exclude_edge=args.exclude_edge
    )
    for name, fit in result.fits.items():
        for message in fit.warnings:
            print(f"warning: {name}: {message}", file=sys.stderr)
    for name, why in result.not_fitted.items():
        print(f"warning: {name}: not fitted: {why}", file=sys.stderr)
    if args.command == "plot":
        from .plots import plot_corpora

        for path in plot_corpora(result.fits, args.output_dir).values():
            print(f"wrote {path}")
        return 0
    data = {"results": tables, **result.to_dict()}
    table = corpora_table(result)
    if args.output:
        write_text_atomic(Path(args.output), json.dumps(data, indent=2) + "\n")
    if args.table:
        write_text_atomic(Path(args.table), table)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(table, end="")
    return 0


def _fit_command(args: argparse.Namespace) -> int:
    from ..utils import write_text_atomic
    from .compare import resolve_corpus_results

    tables = resolve_corpus_results(args.results)
    if len(args.results) > 1 or len(tables) > 1 or "=" in args.results[0]:
        return _corpora_command(args, tables)
    if args.command == "fit" and args.table:
        raise ValueError("--table writes the comparison of several corpora: give two or more results tables")
    args.results = next(iter(tables.values()))
    fits = _fit_table(args)
    if args.command == "plot":
        from .plots import plot_results

        for path in plot_results(fits, args.output_dir).values():
            print(f"wrote {path}")
        return 0
    result = fits.to_dict()
    if args.output:
        from pathlib import Path

        write_text_atomic(Path(args.output), json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [("quantity", "fitted ± std", f"{fits.confidence:.0%} interval", "paper"), *_fits_table(fits)]
    _print_columns(rows)
    print(f"({sum(fits.n_runs.values())} runs: {fits.n_runs}; bootstrap n={fits.n_bootstrap}, seed={fits.seed})")
    return 0


def main(argv: list[str] | None = None, prog: str = "deepseek-hf scaling") -> int:
    args = make_parser(prog).parse_args(argv)
    if args.command == "shapes":
        return _shapes_command(args)
    if args.command in ("fit", "plot"):
        return _fit_command(args)
    if args.command == "schedules":
        return _schedules_command(args)
    if args.command == "degrade-corpus":
        return _degrade_command(args)
    if args.command == "allocation":
        m_opt, d_opt = optimal_allocation(args.compute)
        result = {"compute": args.compute, "optimal_flops_per_token": m_opt, "optimal_tokens": d_opt}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            _print_table(
                [
                    ("C (FLOPs)", f"{args.compute:.4g}"),
                    ("M_opt (FLOPs/token)", f"{m_opt:.4g}   [{MODEL_SCALE_LAW}]"),
                    ("D_opt (tokens)", f"{d_opt:.4g}   [{DATA_SCALE_LAW}]"),
                ]
            )
        return 0

    result = _hparams(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [
        ("M (FLOPs/token, Eq. 2)", f"{result['flops_per_token']:.4g}"),
        ("D (tokens)", f"{result['tokens']:.4g}"),
        ("C = M*D (FLOPs)", f"{result['compute']:.4g}"),
        ("B_opt (tokens)", f"{result['batch_tokens']:.4g}   [{BATCH_SIZE_LAW}]"),
        (
            f"B_opt (sequences of {result['seq_length']})",
            f"{result['batch_sequences']:.1f} -> {result['batch_sequences_rounded']}",
        ),
        ("eta_opt (peak LR)", f"{result['learning_rate']:.4g}   [{LEARNING_RATE_LAW}]"),
        ("M_opt for this C (Eq. 4)", f"{result['optimal_flops_per_token']:.4g}"),
        ("D_opt for this C (Eq. 4)", f"{result['optimal_tokens']:.4g}"),
    ]
    if "paper_table_2" in result:
        table = result["paper_table_2"]
        rows.append(
            (
                "paper Table 2",
                f"{table['batch_sequences']:.0f} sequences of {table['seq_length']:.0f}, "
                f"LR {table['learning_rate']:.3g}, {table['tokens']:.3g} tokens",
            )
        )
    _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
