"""`deepseek-hf data ...`: run the data pipeline, or measure near-dedup quality against exact Jaccard.

deepseek-hf data run                                   # the embedded demo -> outputs/demo/data
deepseek-hf data run --config recipes/tiny/data/config_demo.yaml --output_dir /tmp/run
deepseek-hf data eval-dedup --input data.jsonl.gz [--text_key paragraphs]
"""

from __future__ import annotations

import argparse
import json
import sys

USAGE = """usage: {prog} <command> [args ...]

commands:
  run          run the dedup / filter / remix pipeline (`--config YAML`; without it: the embedded demo)
  eval-dedup   precision / recall of MinHash near-dedup vs exact Jaccard ground truth on a JSONL file
"""


def make_parser(prog: str | None = None):
    """TRL's YAML + CLI parser over `DataPipelineConfig` (strict: unknown keys are errors)."""
    from trl import TrlParser

    from deepseek_hf.data.config import DataPipelineConfig

    return TrlParser((DataPipelineConfig,), prog=prog)


def _run(argv: list[str], prog: str) -> int:
    from deepseek_hf.data.pipeline import run_pipeline

    (config,) = make_parser(prog).parse_args_and_config(argv)
    root = run_pipeline(config)
    print(f"run folder: {root}  (report: {root}/report.md, documents: {root}/output)")
    return 0


def _eval_dedup(argv: list[str], prog: str) -> int:
    import gzip

    from deepseek_hf.data.config import DedupConfig
    from deepseek_hf.data.evaluation import evaluate_near_dedup

    defaults = DedupConfig()
    parser = argparse.ArgumentParser(prog=prog, description="MinHash near-dedup precision/recall at exact J >= t.")
    parser.add_argument("--input", required=True, help="JSONL(.gz) file, one document per line")
    parser.add_argument("--text_key", default="text", help="text field (a list of strings is joined by newlines)")
    parser.add_argument("--limit", type=int, default=-1, help="first N documents only")
    parser.add_argument("--jaccard", type=float, default=0.8, help="ground-truth threshold on exact Jaccard")
    for name in ("ngram", "num_buckets", "hashes_per_bucket", "seed"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    parser.add_argument("--threshold", type=float, default=defaults.threshold, help="verification threshold")
    args = parser.parse_args(argv)
    opener = gzip.open if args.input.endswith(".gz") else open
    texts = []
    with opener(args.input, "rt", encoding="utf-8") as f:
        for line in f:
            if args.limit >= 0 and len(texts) >= args.limit:
                break
            value = json.loads(line)[args.text_key]
            texts.append("\n".join(value) if isinstance(value, list) else value)
    config = DedupConfig(
        ngram=args.ngram,
        num_buckets=args.num_buckets,
        hashes_per_bucket=args.hashes_per_bucket,
        seed=args.seed,
        threshold=args.threshold,
    )
    print(json.dumps(evaluate_near_dedup(texts, config, args.jaccard).to_dict(), indent=2))
    return 0


def main(argv: list[str] | None = None, prog: str = "deepseek-hf data") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.format(prog=prog))
        return 0
    commands = {"run": _run, "eval-dedup": _eval_dedup}
    if argv[0] not in commands:
        print(f"{prog}: unknown command {argv[0]!r}\n\n{USAGE.format(prog=prog)}", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:], f"{prog} {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
