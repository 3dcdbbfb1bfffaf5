"""`deepseek-hf scaling`: the paper's scaling-law hyperparameters from the command line.

deepseek-hf scaling hparams --preset deepseek-llm-7b --tokens 2e12
deepseek-hf scaling hparams --config path/to/config.json --compute 1e20 --seq-length 2048 --json
deepseek-hf scaling allocation --compute 1e20

Flags take dashes or underscores (`--seq-length` = `--seq_length`).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..utils import ArgumentParser
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
    return parser


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


def main(argv: list[str] | None = None, prog: str = "deepseek-hf scaling") -> int:
    args = make_parser(prog).parse_args(argv)
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
