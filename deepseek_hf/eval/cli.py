"""`deepseek-hf eval ...`: lm-eval on a checkpoint with the paper's tasks, and the comparison table.

deepseek-hf eval run outputs/demo/pretrain --tasks deepseek_arc_easy,deepseek_hellaswag --data demo --limit 50
deepseek-hf eval run deepseek-ai/deepseek-llm-7b-base --tasks deepseek_ppl --device cuda --output-dir eval/7b
deepseek-hf eval run CKPT --tasks cmmlu --data ../shared/data      # lm-eval's built-in cmmlu on local CSVs
deepseek-hf eval run outputs/demo/sft-stage2 --data demo --apply-chat-template --system-instruction "Be brief."
deepseek-hf eval table eval/7b/results.json                        # the Markdown table again
deepseek-hf eval compare eval/base eval/chat eval/chat-system      # runs side by side, with their settings
deepseek-hf eval repetition --model outputs/demo/sft --prompts demo   # the repetition ratio (greedy, chat template)
deepseek-hf eval tasks                                             # the deepseek_* tasks and groups

`run` is `lm_eval.simple_evaluate` with the task folder included, the `deepseek` model registered (the default scorer:
the same log-likelihoods as `--scorer hf`, far less work) and the data folder named (`--data`, else
$DEEPSEEK_HF_EVAL_DATA, else the Hub). It writes lm-eval's results as `results.json`, the per-document samples as
`samples_<task>.jsonl` (with --log-samples) and `results.md` (ours beside the published 7B / 67B scores), all at once.
A chat model is scored through its tokenizer's chat template with --apply-chat-template (lm-eval's; optionally
--system-instruction and --fewshot-as-multiturn), recorded in results.json as lm-eval's own results files record it;
`compare` reads those settings back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from ..utils import USER_ERRORS, ArgumentParser, debug_requested, describe_error

DEMO_DATA = "demo"  # `--data demo`: the small benchmark samples shipped with the package


def build_parser(prog: str = "deepseek-hf eval") -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,compare,repetition,table,tasks}")

    run = commands.add_parser("run", help="evaluate a checkpoint (a folder or a Hub id) with lm-eval")
    run.add_argument("model", help="checkpoint folder or Hub id (lm-eval's pretrained=)")
    run.add_argument("--tasks", default="deepseek_ppl", help="comma-separated tasks or groups (default: deepseek_ppl)")
    run.add_argument(
        "--scorer", choices=("deepseek", "hf"), default="deepseek", help="lm-eval model (default: deepseek)"
    )
    run.add_argument("--data", help=f"benchmark folder laid out like shared/data, or {DEMO_DATA!r} (shipped samples)")
    run.add_argument("--output-dir", help="where results go (default: eval_results/<model name>)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    run.add_argument("--limit", type=float, help="documents per task (an int) or a fraction of them")
    run.add_argument("--num-fewshot", type=int, help="override every task's shots")
    run.add_argument("--batch-size", default="8", help="lm-eval's batch size (default 8)")
    run.add_argument("--device", help="cuda, cuda:1, cpu ... (default: cuda if available, else cpu)")
    run.add_argument("--dtype", default="auto", help="model dtype (lm-eval's dtype=; default auto)")
    run.add_argument("--model-args", default="", help="more model_args, k=v,k=v (e.g. revision=...)")
    run.add_argument("--log-samples", action="store_true", help="also write per-document samples")
    run.add_argument("--label", default="ours", help="column name of our scores in results.md")
    chat = run.add_argument_group("chat models (lm-eval's chat-format contexts; deepseek_hf/eval/chat.py)")
    chat.add_argument(
        "--apply-chat-template",
        action="store_true",
        help="render every context with the tokenizer's chat template (an error if it has none)",
    )
    chat.add_argument("--system-instruction", help="a system prompt before every context")
    chat.add_argument(
        "--fewshot-as-multiturn",
        action="store_true",
        help="few-shot examples as earlier user / assistant turns (needs --apply-chat-template)",
    )

    table = commands.add_parser("table", help="print the Markdown table of a results.json")
    table.add_argument("results", help="results.json written by `deepseek-hf eval run` (or lm-eval's results_*.json)")
    table.add_argument("--label", default="ours", help="column name of our scores")

    compare = commands.add_parser(
        "compare",
        help="one Markdown table of several runs (e.g. base / chat / chat+system) with the settings of each",
    )
    compare.add_argument("runs", nargs="+", help="output folders of `deepseek-hf eval run`, or results JSON files")
    compare.add_argument(
        "--labels", help="comma-separated column names, one per run (default: base / chat / chat+system, by settings)"
    )

    commands.add_parser("tasks", help="list the deepseek_* tasks and groups")

    repetition = commands.add_parser(
        "repetition",
        help="the repetition ratio: share of greedy chat answers that never end and loop",
        description="Answer each prompt greedily through the chat template and report the share of responses that "
        "never end (no end-of-sentence within --max-new-tokens) and repeat; the detector's rule is in "
        "deepseek_hf.eval.repetition.RepetitionRule.",
    )
    repetition.add_argument("--model", required=True, help="checkpoint folder (a chat model and its tokenizer)")
    repetition.add_argument("--prompts", default="demo", help="JSONL file of prompts, or 'demo' (the shipped sample)")
    repetition.add_argument("--max-new-tokens", type=int, default=512, help="the length limit (default 512)")
    repetition.add_argument("--batch-size", type=int, default=8, help="prompts generated together (default 8)")
    repetition.add_argument("--device", help="cuda, cpu ... (default: cuda if available, else cpu)")
    repetition.add_argument("--dtype", default="auto", help="auto (the checkpoint's), float32, bfloat16, float16")
    repetition.add_argument("--output", help="write the report (per prompt and the ratio) to this JSON file")
    return parser


def main(argv: list[str] | None = None, prog: str = "deepseek-hf eval") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lm_eval.api.task").addFilter(_QuietCustomDatasetNotice())
    try:
        if args.command == "run":
            return run(args)
        if args.command == "repetition":
            return run_repetition(args)
        if args.command == "compare":
            return compare(args)
        if args.command == "table":
            from .report import markdown_table

            print(markdown_table(read_results(args.results), label=args.label))
            return 0
        return list_tasks()
    except USER_ERRORS as error:
        if args.debug or debug_requested():
            raise
        print(f"{prog} {args.command}: error: {describe_error(error)}", file=sys.stderr)
        return 1


def resolve_data_dir(data: str | None) -> str | None:
    """`--data` -> the folder the loaders read (`demo` is the shipped sample); None keeps $DEEPSEEK_HF_EVAL_DATA."""
    if data is None:
        return os.environ.get("DEEPSEEK_HF_EVAL_DATA")
    if data == DEMO_DATA:
        from importlib import resources

        return str(resources.files("deepseek_hf").joinpath("assets/eval_demo"))
    if not Path(data).is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder (expected one laid out like cmmlu/test/<subject>.csv)")
    return str(Path(data).resolve())


def run(args: argparse.Namespace) -> int:
    import lm_eval
    import torch
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable, simple_parse_args_string

    import deepseek_hf  # noqa: F401  (registers the model type with the Auto classes)

    from ..utils import staged_directory
    from . import task_dir
    from .builtin_local import builtin_overrides
    from .report import markdown_table

    if args.fewshot_as_multiturn and not args.apply_chat_template:
        raise ValueError("--fewshot-as-multiturn needs --apply-chat-template (turns exist only in the chat format)")
    data_dir = resolve_data_dir(args.data)
    if data_dir is not None:
        os.environ["DEEPSEEK_HF_EVAL_DATA"] = data_dir
    output_dir = Path(args.output_dir or Path("eval_results") / Path(args.model.rstrip("/")).name)
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{output_dir} exists and is not empty; pass --overwrite to replace it")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # backend=causal: lm-eval otherwise warns that it cannot tell the kind of an unregistered model type
    base = (f"pretrained={args.model}", f"dtype={args.dtype}", "backend=causal", args.model_args)
    model_args = ",".join(part for part in base if part)
    tasks = [name.strip() for name in args.tasks.split(",") if name.strip()]
    limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)

    with tempfile.TemporaryDirectory(prefix="deepseek-hf-eval-") as scratch:
        include = [task_dir(), *builtin_overrides(tasks, data_dir, Path(scratch))]
        # what simple_evaluate passes to the tasks when it builds the TaskManager itself (tokenizer for acc_tokens)
        metadata = simple_parse_args_string(model_args)
        if args.apply_chat_template:
            from .chat import require_chat_template

            require_chat_template(metadata)
        task_manager = TaskManager(include_path=include, metadata=metadata)
        check_task_names(tasks, task_manager)
        tracker = EvaluationTracker()  # records the chat settings as lm-eval's own results files do
        results = lm_eval.simple_evaluate(
            model=args.scorer,
            model_args=model_args,
            tasks=tasks,
            task_manager=task_manager,
            num_fewshot=args.num_fewshot,
            batch_size=args.batch_size,
            device=device,
            limit=limit,
            log_samples=args.log_samples,
            evaluation_tracker=tracker,
            apply_chat_template=args.apply_chat_template,
            system_instruction=args.system_instruction,
            fewshot_as_multiturn=args.fewshot_as_multiturn,
        )
    if results is None:  # a non-zero rank under accelerate: rank 0 writes
        return 0
    tracker.general_config_tracker.log_end_time()
    results.update(dataclasses.asdict(tracker.general_config_tracker))
    samples = results.pop("samples", None) or {}
    try:
        table = markdown_table(results, label=args.label)
    except ValueError:  # only tasks outside the paper's 14 (e.g. built-in cmmlu): lm-eval's own table
        from lm_eval.utils import make_table

        table = make_table(results)
    with staged_directory(output_dir) as staging:
        (staging / "results.json").write_text(
            json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False), encoding="utf-8"
        )
        for task, documents in samples.items():
            with open(staging / f"samples_{task}.jsonl", "w", encoding="utf-8") as file:
                for document in documents:
                    file.write(json.dumps(document, default=handle_non_serializable, ensure_ascii=False) + "\n")
        (staging / "results.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"wrote {output_dir}/results.json and results.md")
    return 0


def run_repetition(args: argparse.Namespace) -> int:
    from .repetition import evaluate_repetition, summary

    report = evaluate_repetition(
        args.model,
        args.prompts,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        output=args.output,
    )
    print(summary(report))
    if args.output:
        print(f"wrote {args.output}")
    return 0


def compare(args: argparse.Namespace) -> int:
    from .report import comparison_table, default_label, run_settings

    runs = [(path, read_results(path)) for path in args.runs]
    if args.labels is not None:
        labels = [label.strip() for label in args.labels.split(",")]
        if len(labels) != len(runs):
            raise ValueError(f"--labels names {len(labels)} columns for {len(runs)} runs")
    else:
        labels = [default_label(run_settings(results)) for _, results in runs]
        if len(set(labels)) < len(labels):  # two runs of the same kind: their folder names tell them apart
            labels = [Path(path).name if Path(path).is_dir() else Path(path).stem for path, _ in runs]
    print(comparison_table(list(zip(labels, (results for _, results in runs)))), end="")
    return 0


def read_results(path: str) -> dict:
    """A run's results: `PATH/results.json` for a folder of `deepseek-hf eval run`, else the JSON file itself."""
    file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no results.json (give an output folder of `deepseek-hf eval run` or a file)")
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{file}: not JSON ({error})") from None
    if not isinstance(results, dict) or "results" not in results:
        raise ValueError(f"{file}: not lm-eval results (no 'results' section)")
    return results


def check_task_names(tasks: list[str], task_manager) -> None:
    """Unknown names fail before the model loads, with the closest known names."""
    import difflib

    known = set(task_manager.all_tasks) | set(task_manager.all_groups) | set(task_manager.all_tags)
    for name in tasks:
        if name not in known and not Path(name).is_file():
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `deepseek-hf eval tasks` lists ours"
            raise ValueError(f"unknown task or group {name!r}{hint}")


class _QuietCustomDatasetNotice(logging.Filter):
    """lm-eval says for every task with a `custom_dataset` loader (all of ours) that kwargs may go to --metadata."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


def list_tasks() -> int:
    from lm_eval.tasks import TaskManager

    from . import task_dir

    manager = TaskManager(include_path=task_dir(), include_defaults=False)
    groups = sorted(name for name in manager.all_groups if name.startswith("deepseek_"))
    tasks = sorted(name for name in manager.all_subtasks if name.startswith("deepseek_"))
    print(f"task folder (lm_eval --include_path): {task_dir()}")
    print(f"groups ({len(groups)}): " + ", ".join(groups))
    print(f"tasks ({len(tasks)}): " + ", ".join(tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
