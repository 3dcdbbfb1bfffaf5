"""`deepseek-hf data ...`: run the data pipeline, or measure near-dedup quality against exact Jaccard.

deepseek-hf data run                                   # the embedded demo -> outputs/demo/data
deepseek-hf data run --config recipes/tiny/data/config_demo.yaml --output-dir /tmp/run
deepseek-hf data eval-dedup --input data.jsonl.gz [--text-key paragraphs]
deepseek-hf data tokenize --config recipes/tiny/tokenize/tokenize_demo.yaml
deepseek-hf data decontaminate --benchmarks cmmlu,ceval --data ../shared/data --input sft.jsonl --output clean.jsonl

Every flag takes both spellings (`--output-dir` / `--output_dir`). A mistake the user can fix (a bad config value,
a missing input, a run folder holding another configuration) ends in one message and exit status 1; `--debug`
(or DEEPSEEK_HF_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback

DEBUG_ENV = "DEEPSEEK_HF_DEBUG"

USAGE = """usage: {prog} <command> [args ...] [--debug]

commands:
  run          run the dedup / filter / remix pipeline (`--config YAML`; without it: the embedded demo)
  eval-dedup   precision / recall of MinHash near-dedup vs exact Jaccard ground truth on a JSONL file
  tokenize     tokenize a corpus into token shards on the pipeline's executors (`--config YAML`)
  decontaminate  drop or flag SFT / DPO records sharing long n-grams with benchmark items

--debug (or {debug_env}=1): show the traceback of an error instead of its one-line message.
"""

RUN_DESCRIPTION = """Run the DeepSeek LLM data pipeline (dedup -> filter -> remix) described by a YAML config.
--config YAML: the configuration (without it: the embedded demo); every flag below overrides one top-level key.
See deepseek_hf/data/README.md for the sections."""


def _dash_first(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Show `--output-dir` before its `--output_dir` alias in the usage and help (both are accepted)."""
    for action in parser._actions:
        action.option_strings.sort(key=lambda option: "_" in option)
    return parser


def _check_top_level_keys(path: str) -> None:
    """Name a top-level typo like a section's (TRL would first build the config, missing keys and all)."""
    import yaml

    from deepseek_hf.data.config import DataPipelineConfig
    from deepseek_hf.data.errors import ConfigError

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    allowed = [f.name for f in dataclasses.fields(DataPipelineConfig)] + ["env"]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed keys: {allowed}")


def _split_config_flag(args: list[str]) -> list[str]:
    """`--config=x.yaml` -> `--config x.yaml` (TRL looks for the separate form only)."""
    return [part for arg in args for part in (arg.split("=", 1) if arg.startswith("--config=") else [arg])]


def make_parser(prog: str | None = None):
    """TRL's YAML + CLI parser over `DataPipelineConfig` (strict: unknown keys are errors); without `--config` the
    defaults are the embedded demo's."""
    from trl import TrlParser

    from deepseek_hf.data.config import DEMO_CONFIG, DataPipelineConfig

    class DataPipelineParser(TrlParser):
        def parse_args_and_config(self, args=None, **kwargs):
            args = _split_config_flag(list(sys.argv[1:] if args is None else args))
            if "--config" in args[:-1]:
                _check_top_level_keys(args[args.index("--config") + 1])
            else:
                self.set_defaults_with_config(**json.loads(json.dumps(DEMO_CONFIG)))
            return super().parse_args_and_config(args, **kwargs)

    return _dash_first(
        DataPipelineParser(
            (DataPipelineConfig,),
            prog=prog,
            description=RUN_DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )


def _run(argv: list[str], prog: str) -> int:
    from deepseek_hf.data.errors import ConfigError, DataPipelineError
    from deepseek_hf.data.output import read_manifest
    from deepseek_hf.data.pipeline import run_pipeline

    argv = _split_config_flag(argv)
    try:
        (config,) = make_parser(prog).parse_args_and_config(argv)
    except DataPipelineError:
        raise
    except (ValueError, TypeError, OSError) as e:  # the YAML itself: unreadable, not a mapping, unknown keys
        source = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else "arguments"
        raise ConfigError(f"{source}: {e}") from e
    root = run_pipeline(config)
    print(f"run folder: {root}  (report: {root}/report.md, documents: {root}/output)")
    if config.executor.type != "slurm":
        manifest = read_manifest(root)
        if not manifest.get("documents"):
            print(f"warning: the run kept no documents; {root}/report.md says why", file=sys.stderr)
    return 0


def _flag(name: str) -> list[str]:
    """`--text-key` and its alias `--text_key`."""
    dashed = f"--{name.replace('_', '-')}"
    return [dashed, f"--{name}"] if "_" in name else [dashed]


def _eval_dedup(argv: list[str], prog: str) -> int:
    from deepseek_hf.data.config import DedupConfig
    from deepseek_hf.data.dedup.quality import evaluate_near_dedup, read_texts
    from deepseek_hf.data.errors import InputError

    defaults = DedupConfig()
    parser = argparse.ArgumentParser(prog=prog, description="The dedup stages' precision/recall at exact J >= t.")
    parser.add_argument("--input", required=True, help="JSONL(.gz) file, one document per line")
    parser.add_argument(
        *_flag("text_key"), default="text", help="text field (a list of strings is joined by newlines)"
    )
    parser.add_argument("--limit", type=int, default=-1, help="first N documents only")
    parser.add_argument("--jaccard", type=float, default=0.8, help="ground-truth threshold on exact Jaccard")
    for name in ("ngram", "num_buckets", "hashes_per_bucket", "seed"):
        parser.add_argument(*_flag(name), type=int, default=getattr(defaults, name))
    parser.add_argument("--threshold", type=float, default=defaults.threshold, help="verification threshold")
    parser.add_argument("--tasks", type=int, default=1, help="shards the dedup stages split the documents into")
    args = parser.parse_args(argv)
    data = read_texts(args.input, args.text_key, args.limit)
    if data.skipped:
        message = f"{args.input}: skipped records without a usable {args.text_key!r} text: {data.describe_skipped()}"
        if not data.texts:
            raise InputError(f"{message}; no documents to evaluate (the text field is set with --text-key)")
        print(f"warning: {message}", file=sys.stderr)
    elif not data.texts:
        raise InputError(f"{args.input}: no documents to evaluate")
    config = DedupConfig(
        ngram=args.ngram,
        num_buckets=args.num_buckets,
        hashes_per_bucket=args.hashes_per_bucket,
        seed=args.seed,
        threshold=args.threshold,
    )
    if args.tasks < 1:
        raise InputError(f"--tasks must be >= 1, got {args.tasks}")
    result = evaluate_near_dedup(data.texts, config, args.jaccard, tasks=min(args.tasks, len(data.texts))).to_dict()
    result["skipped_records"] = {reason: len(lines) for reason, lines in data.skipped.items()}
    print(json.dumps(result, indent=2))
    return 0


TOKENIZE_DESCRIPTION = """Tokenize a corpus into token shards + manifest.json on the data pipeline's executors.
--config YAML: input, tokenizer, output_dir, executor (tasks, workers, type), text_field, ...; every flag below
overrides one top-level key. See deepseek_hf/data/README.md (Tokenizing)."""


def _tokenize(argv: list[str], prog: str) -> int:
    """`deepseek-hf data tokenize --config FILE [--key value ...]` (strict keys, as `run`)."""
    import yaml
    from trl import TrlParser

    from deepseek_hf.data.errors import ConfigError, DataPipelineError
    from deepseek_hf.data.tokenize import MANIFEST_FILE, TokenizeConfig, run_tokenize

    argv = _split_config_flag(argv)
    parser = _dash_first(
        TrlParser(
            (TokenizeConfig,),
            prog=prog,
            description=TOKENIZE_DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    if "--config" not in argv[:-1] and not {"-h", "--help"} & set(argv):
        raise ConfigError("--config FILE is required (e.g. recipes/tiny/tokenize/tokenize_demo.yaml)")
    try:
        if "--config" in argv[:-1]:
            path = argv[argv.index("--config") + 1]
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a YAML mapping at the top level")
            allowed = [f.name for f in dataclasses.fields(TokenizeConfig)]
            unknown = sorted(set(data) - set(allowed))
            if unknown:
                raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed keys: {allowed}")
        (config,) = parser.parse_args_and_config(argv)
    except DataPipelineError:
        raise
    except (ValueError, TypeError) as e:  # the YAML itself: unreadable or malformed
        raise ConfigError(f"{argv[argv.index('--config') + 1]}: {e}") from e
    root = run_tokenize(config)
    if config.executor.type == "slurm":
        print(f"submitted; token shards appear in {root} ({MANIFEST_FILE} last)")
        return 0
    with open(os.path.join(root, MANIFEST_FILE), encoding="utf-8") as f:
        manifest = json.load(f)
    held_out = manifest.get("validation")
    validation = (
        f"; held out for validation (fraction {manifest['validation_fraction']}): {held_out['num_documents']} "
        f"documents, {held_out['num_tokens']} tokens"
        if held_out
        else ""
    )
    print(
        f"token shards: {root}  ({manifest['num_documents']} documents, {manifest['num_tokens']} tokens, "
        f"{len(manifest['shards'])} shards{validation}; skipped: {manifest['skipped_empty']} empty, "
        f"{manifest['bad_records_total']} bad records {manifest['bad_records']})"
    )
    return 0


def _decontaminate(argv: list[str], prog: str) -> int:
    """`deepseek-hf data decontaminate --benchmarks B,.. --data DIR|demo --input FILE --output FILE [...]`."""
    from deepseek_hf.data.config import DecontaminateConfig, _from_mapping
    from deepseek_hf.data.decontam import NGramIndex, Thresholds
    from deepseek_hf.data.decontam.records import decontaminate_file

    defaults = DecontaminateConfig()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Drop or flag SFT / DPO records that share long n-grams "
        "with benchmark items (see deepseek_hf/data/README.md, Benchmark decontamination).",
    )
    parser.add_argument("--benchmarks", required=True, help="comma-separated, e.g. cmmlu,ceval")
    parser.add_argument(
        "--data", help="benchmark folder laid out like shared/data, or 'demo' (default: $DEEPSEEK_HF_EVAL_DATA)"
    )
    parser.add_argument("--input", required=True, help="JSONL / JSON file (.gz ok): SFT, DPO or {text} records")
    parser.add_argument("--output", required=True, help="JSONL file of the kept records (report beside it)")
    parser.add_argument(
        "--format",
        default="auto",
        help="alpaca, messages, sharegpt, preference, sharegpt_preference, text (default: from the first record)",
    )
    parser.add_argument("--mode", default=defaults.mode, help="drop (default) or flag")
    parser.add_argument("--splits", default=defaults.splits, help="evaluated (default) or all")
    parser.add_argument("--ngram", type=int, default=defaults.ngram)
    parser.add_argument(*_flag("min_fraction"), type=float, default=defaults.min_fraction)
    parser.add_argument(*_flag("min_ngrams"), type=int, default=defaults.min_ngrams)
    args = parser.parse_args(argv)
    settings = {
        "benchmarks": [b.strip() for b in args.benchmarks.split(",") if b.strip()],
        "data_dir": args.data,
        **{key: getattr(args, key) for key in ("splits", "ngram", "min_fraction", "min_ngrams", "mode")},
    }
    config = _from_mapping(DecontaminateConfig, settings, "arguments")
    index = NGramIndex.from_benchmarks(config.benchmarks, config.data_dir, config.ngram, config.splits)
    report = decontaminate_file(
        args.input,
        args.output,
        index,
        Thresholds(config.min_fraction, config.min_ngrams),
        config.mode,
        args.format,
        dataclasses.asdict(config),
    )
    for name, entry in report["benchmarks"].items():
        print(f"{name}: {entry['items']} items, {entry['items_hit']} hit by {entry['documents_hit']} records")
    skipped = sum(report["skipped"].values())
    print(
        f"{report['records']} records: {report['documents_hit']} contaminated "
        f"({'dropped' if config.mode == 'drop' else 'flagged'}), {skipped} unusable (not written), "
        f"{report['written']} written to {args.output}; report: {args.output}.decontamination.md"
    )
    return 0


def _guarded(command, argv: list[str], prog: str) -> int:
    """Run a command; a user error becomes one message and exit status 1 (`--debug`: the traceback)."""
    from deepseek_hf.data.errors import DataPipelineError

    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")
    try:
        return command([arg for arg in argv if arg != "--debug"], prog)
    except (DataPipelineError, OSError) as e:
        if debug:  # printed here: a caller (the `deepseek-hf` entry point) may shorten a raised error again
            traceback.print_exc()
        else:
            print(f"{prog}: error: {e}\n(--debug or {DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return 1


def run_command(argv: list[str] | None = None, prog: str = "deepseek-hf data run") -> int:
    """`deepseek-hf data run ARGS` (and `python recipes/prepare_data.py ARGS`)."""
    return _guarded(_run, list(sys.argv[1:] if argv is None else argv), prog)


def main(argv: list[str] | None = None, prog: str = "deepseek-hf data") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [arg for arg in argv if arg != "--debug"]
    if not words or words[0] in ("-h", "--help"):
        print(USAGE.format(prog=prog, debug_env=DEBUG_ENV))
        return 0
    commands = {"run": _run, "eval-dedup": _eval_dedup, "tokenize": _tokenize, "decontaminate": _decontaminate}
    if words[0] not in commands:
        print(
            f"{prog}: unknown command {words[0]!r}\n\n{USAGE.format(prog=prog, debug_env=DEBUG_ENV)}", file=sys.stderr
        )
        return 2
    position = argv.index(words[0])
    rest = argv[position + 1 :] + argv[:position]  # a `--debug` before the command goes with its arguments
    return _guarded(commands[words[0]], rest, f"{prog} {words[0]}")


if __name__ == "__main__":
    sys.exit(main())
