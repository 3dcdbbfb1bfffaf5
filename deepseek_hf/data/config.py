"""Configuration of the data pipeline: one YAML file -> `DataPipelineConfig`.

The top level is flat (so TRL's `TrlParser` reads it: `--config x.yaml`, CLI flags override scalar keys, unknown
keys are errors); each section is a mapping that `__post_init__` turns into a typed dataclass, again rejecting
unknown keys, so a typo in a recipe fails loudly instead of silently running with a default.

Every value is also checked against the type of its field, so `tasks: two` fails naming `executor.tasks`
instead of deep inside a worker.

The defaults are neutral, for any corpus: every language kept, no remixing, one dump, the literature's filter
thresholds (Gopher, C4). The embedded demo (`DEMO_CONFIG`, spelled out in `recipes/tiny/data/config_demo.yaml`)
sets its own choices for its EN/ZH sample of short poems; `recipes/deepseek-llm-7b/data/config_full.yaml` shows a
web-scale setup.

>>> cfg = DataPipelineConfig(output_dir="out", inputs=[{"path": "package://demo/corpus_sample.jsonl.gz"}])
>>> cfg.dedup.scope, cfg.dedup.num_buckets * cfg.dedup.hashes_per_bucket, list(cfg.filters), cfg.remix.active
('global', 320, ['c4', 'repetition', 'quality'], False)
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import yaml

from deepseek_hf.data.errors import ConfigError, ConfigTypeError, InputNotFoundError
from deepseek_hf.utils import PACKAGE_PREFIX, expand_package_path

_REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "hf://", "http://", "https://", "az://", "abfs://")
_FORMAT_GLOBS = {"jsonl": "**/*.jsonl*", "parquet": "**/*.parquet"}


def resolve_path(path: str) -> str:
    """`package://demo/x` -> the file shipped in `deepseek_hf/assets/demo/x`; remote URLs unchanged; local -> absolute.

    Relative local paths resolve from the current directory (run the recipes from the repository root).
    """
    if path.startswith(PACKAGE_PREFIX):
        return expand_package_path(path)
    if path.startswith(_REMOTE_PREFIXES):
        return path
    return os.path.abspath(os.path.expanduser(path))


_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a mapping",
    list: "a list",
    type(None): "null",
}


def _conforms(value, hint) -> bool:
    """Whether a YAML value fits a field annotation (bool is not a number; an int is a float)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    if origin is Literal or hint is Any:
        return True  # choices are checked with their own message
    hint = origin or hint
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    return _TYPE_NAMES.get(origin or hint, getattr(hint, "__name__", str(hint)))


def check_types(cls, data: dict, where: str) -> None:
    """Raise `ConfigTypeError` naming `<where>.<key>` for the first value that does not fit its field's type."""
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key in hints and not _conforms(value, hints[key]):
            name = f"{where}.{key}" if where else key
            raise ConfigTypeError(f"{name}: expected {_describe(hints[key])}, got {value!r} ({type(value).__name__})")


def config_from_yaml(cls, path: str):
    """`cls` from a YAML file whose top level is a mapping of its fields (strict keys and types, as `_from_mapping`)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    return _from_mapping(cls, data, path, types_prefix="")


def _from_mapping(cls, data: Any, where: str, types_prefix: str | None = None):
    """Build dataclass `cls` from a mapping, naming `where` and the allowed keys on any unknown key or bad value
    (a bad value is named `<types_prefix>.<key>`, by default `<where>.<key>`)."""
    if isinstance(data, cls):
        return data
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigTypeError(f"{where}: expected a mapping, got {type(data).__name__} ({data!r})")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys: {allowed}")
    check_types(cls, data, where if types_prefix is None else types_prefix)
    try:
        return cls(**data)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def _check_choice(where: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}")


@dataclass
class InputConfig:
    """One input: a file, a folder or a glob of JSONL(.gz/.zst) or Parquet files, or a `datasets` dataset."""

    path: str
    """File, folder, glob, `package://demo/...`, a remote URL, or (format `datasets`) a saved dataset / Hub name."""
    format: Literal["auto", "jsonl", "parquet", "datasets"] = "auto"
    """`auto`: from the extension (`.parquet` -> parquet, a saved dataset folder -> datasets, else jsonl)."""
    text_key: str = "text"
    """Field with the text; a list of strings (e.g. poem `paragraphs`) is joined with newlines."""
    id_key: str = "id"
    """Field with a document id; missing -> `<file>/<line>` (datasets: a hash of the row)."""
    dump_key: str = "dump"
    """Field naming the crawl dump a document comes from (the unit of the `per_dump` dedup scope)."""
    source_key: str = "source"
    """Field naming the domain / source of a document (the unit of remixing)."""
    dump: str | None = None
    """Fixed dump label for every document of this input (overrides `dump_key`)."""
    source: str | None = None
    """Fixed source label for every document of this input (overrides `source_key`); default: the field, else
    the input's file name."""
    split: str = "train"
    """`datasets` format only: the split to read."""
    dataset_options: dict = field(default_factory=dict)
    """`datasets` format only: extra `load_dataset` keyword arguments (a Hub name needs the network)."""
    limit: int = -1
    """Read at most this many documents per task (-1: all); for quick trials."""

    def __post_init__(self):
        _check_choice("inputs[].format", self.format, ("auto", "jsonl", "parquet", "datasets"))
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError("inputs[].path must be a non-empty string")

    @property
    def resolved_path(self) -> str:
        return resolve_path(self.path)

    @property
    def resolved_format(self) -> str:
        if self.format != "auto":
            return self.format
        path = self.resolved_path
        if os.path.isdir(path) and any(
            os.path.exists(os.path.join(path, name)) for name in ("dataset_info.json", "dataset_dict.json")
        ):
            return "datasets"
        return "parquet" if path.rstrip("/").endswith(".parquet") else "jsonl"

    @property
    def name(self) -> str:
        """Default source label: the file/folder name without extensions."""
        base = os.path.basename(self.path.rstrip("/*")) or "input"
        return base.split(".")[0]

    def folder_and_glob(self) -> tuple[str, str | None]:
        """(data folder, glob relative to it) for datatrove's disk readers."""
        path = self.resolved_path
        fmt = self.resolved_format
        if any(ch in path for ch in "*?["):
            parts = path.split("/")
            first = next(i for i, p in enumerate(parts) if any(ch in p for ch in "*?["))
            return "/".join(parts[:first]) or "/", "/".join(parts[first:])
        remote_folder = path.startswith(_REMOTE_PREFIXES) and (path.endswith("/") or "." not in os.path.basename(path))
        if remote_folder or os.path.isdir(path):
            return path, _FORMAT_GLOBS.get(fmt)
        folder, base = os.path.split(path)
        # a bracketed first character makes the pattern "magic", so datatrove matches this exact name only
        # (it prefixes non-magic patterns with `*`)
        return folder, glob.escape(base) if base[0] == "!" else f"[{base[0]}]{glob.escape(base[1:])}"

    def check_exists(self) -> None:
        """Clear error before anything runs when a local input matches no file."""
        path = self.resolved_path
        if path.startswith(_REMOTE_PREFIXES) or self.resolved_format == "datasets":
            return  # a `datasets` path may be a Hub or builder name; `load_dataset` names the problem itself
        folder, pattern = self.folder_and_glob()
        matches = glob.glob(os.path.join(folder, pattern), recursive=True) if pattern else [folder]
        if not [m for m in matches if os.path.isfile(m)]:
            # the path as the user wrote it (and where it resolved), not the escaped pattern handed to datatrove
            if os.path.isdir(path):
                detail = f"{pattern} in {path}"
            elif any(ch in path for ch in "*?["):
                detail = path
            else:
                detail = f"no such file: {path}"
            raise InputNotFoundError(f"input {self.path}: no files match ({detail})")


@dataclass
class ExecutorConfig:
    """Where the pipeline runs; the steps never know (datatrove executors)."""

    type: Literal["local", "ray", "slurm"] = "local"
    tasks: int = 2
    """Tasks (data shards) of every per-document stage; the output is the same for any value."""
    workers: int = -1
    """Tasks running at once (-1: one per CPU core for `local`, all tasks for Ray / Slurm)."""
    start_method: str = "forkserver"
    """local: multiprocessing start method of the worker pool."""
    tasks_per_job: int = 1
    """ray / slurm: tasks run together by one Ray actor or one Slurm array job (fewer process start-ups). On Ray,
    datatrove forks them from the actor; with 5 per actor a local cluster here hung once: keep 1 unless measured."""
    ray_address: str | None = None
    """ray: cluster address (`auto`, `ray://host:10001`); None starts a local Ray instance."""
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2
    partition: str | None = None
    """slurm: partition (required for slurm)."""
    time: str = "24:00:00"
    """slurm: time limit of each job."""
    qos: str | None = None
    venv_path: str | None = None
    """slurm: `activate` script of the environment to use on the nodes."""
    env_command: str | None = None
    sbatch_args: dict = field(default_factory=dict)
    job_name: str = "deepseek-data"
    stage_overrides: dict = field(default_factory=dict)
    """Per-stage executor keyword overrides, e.g. `{dedup_clusters: {mem_per_cpu_gb: 64}}`."""

    def __post_init__(self):
        _check_choice("executor.type", self.type, ("local", "ray", "slurm"))
        if self.tasks < 1:
            raise ConfigError(f"executor.tasks must be >= 1, got {self.tasks}")
        if self.type == "slurm" and not self.partition:
            raise ConfigError("executor.partition is required for the slurm executor")


@dataclass
class IngestConfig:
    """Reading and validating the raw input (bad input is counted, reported and kept for audit, never fatal)."""

    max_chars: int = 1_000_000
    """Documents longer than this are dropped as `too_long` (their audit copy is truncated)."""
    invalid_utf8: Literal["drop", "replace"] = "drop"
    """A line that is not valid UTF-8: drop it (`invalid_utf8`) or decode it with U+FFFD replacements."""
    pseudo_dumps: int = 1
    """Documents with no dump value get `dump-<i>`, i = xxh64(id) mod pseudo_dumps (deterministic, so the same
    document always lands in the same dump whatever the sharding)."""
    progress: bool = True
    """Show a per-task tqdm document progress bar while reading."""

    def __post_init__(self):
        _check_choice("ingest.invalid_utf8", self.invalid_utf8, ("drop", "replace"))
        if self.pseudo_dumps < 1 or self.max_chars < 1:
            raise ConfigError("ingest.pseudo_dumps and ingest.max_chars must be >= 1")


@dataclass
class DedupConfig:
    """Document-level dedup: exact (normalized-text hash) + MinHash LSH with signature verification.

    Defaults were chosen on the Quan Tang Shi dedup demo (exact Jaccard ground truth, see `deepseek_hf/data/README.md`):
    5-unit shingles (a CJK character or a word is a unit), 40 bands x 8 rows = 320 hashes, candidate pairs kept when
    their estimated Jaccard (fraction of equal MinHash values) is >= 0.8: precision and recall >= 0.96 for each of
    6 seeds on 521 true pairs at J >= 0.8.
    """

    enabled: bool = True
    scope: Literal["global", "per_dump"] = "global"
    """`global`: across all dumps (the paper's choice); `per_dump`: only within documents of the same dump."""
    exact: bool = True
    """Remove exact copies (same normalized text), including documents too short for any shingle."""
    near: bool = True
    """Remove near-duplicates with MinHash LSH."""
    ngram: int = 5
    num_buckets: int = 40
    hashes_per_bucket: int = 8
    threshold: float = 0.8
    """Verification threshold on the estimated Jaccard similarity of LSH candidates (0 disables verification)."""
    seed: int = 1
    hash_precision: Literal[32, 64] = 32
    """Bits per MinHash value: 32 halves signature size and hashing time of 64 (see `deepseek_hf/data/README.md`)."""
    bucket_workers: int = 1
    """Tasks per band (each takes a slice of the hash range; raise for corpora whose band files do not fit)."""

    def __post_init__(self):
        _check_choice("dedup.scope", self.scope, ("global", "per_dump"))
        _check_choice("dedup.hash_precision", self.hash_precision, (32, 64))
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"dedup.threshold must be in [0, 1], got {self.threshold}")
        if min(self.ngram, self.num_buckets, self.hashes_per_bucket, self.bucket_workers) < 1:
            raise ConfigError("dedup.ngram, num_buckets, hashes_per_bucket and bucket_workers must be >= 1")


@dataclass
class LineDedupConfig:
    """String-level dedup: a line found in at least `min_docs` documents is boilerplate and removed from all of them."""

    enabled: bool = True
    min_docs: int = 3
    min_chars: int = 20
    """Only lines with at least this many characters after normalization are considered."""
    finder_workers: int = 1
    min_remaining_chars: int = 1
    """A document with fewer characters left after removal is dropped (`boilerplate_only`)."""

    def __post_init__(self):
        if self.min_docs < 2:
            raise ConfigError(f"line_dedup.min_docs must be >= 2, got {self.min_docs}")
        if self.finder_workers < 1 or self.min_chars < 1:
            raise ConfigError("line_dedup.finder_workers and min_chars must be >= 1")


@dataclass
class RemixConfig:
    """Rebalance sources (domains) by deterministic, seeded up-/down-sampling; see `deepseek_hf.data.remix`."""

    enabled: bool = True
    """Remixing runs only with `weights` or a `temperature` (by default neither: no resampling)."""
    weights: dict = field(default_factory=dict)
    """Target share per listed source (renormalized over the listed sources, which keep their total size);
    sources not listed are left as they are."""
    temperature: float | None = None
    """Instead of weights: target share proportional to size ** (1 / temperature) over all sources
    (1 keeps the mixture, larger values flatten it toward uniform)."""
    max_repeat: float = 4.0
    """Cap on the up-sampling factor of any source."""
    unit: Literal["chars", "docs"] = "chars"
    seed: int = 0

    @property
    def active(self) -> bool:
        """Remixing changes something only with `weights` or a `temperature`; otherwise its stage is skipped."""
        return self.enabled and (bool(self.weights) or self.temperature is not None)

    def __post_init__(self):
        _check_choice("remix.unit", self.unit, ("chars", "docs"))
        if self.weights and self.temperature is not None:
            raise ConfigError("remix: give either `weights` or `temperature`, not both")
        if any((not isinstance(w, (int, float))) or w < 0 for w in self.weights.values()):
            raise ConfigError(f"remix.weights must be non-negative numbers, got {self.weights}")
        if self.weights and sum(self.weights.values()) <= 0:
            raise ConfigError("remix.weights must not all be zero")
        if self.temperature is not None and self.temperature <= 0:
            raise ConfigError(f"remix.temperature must be > 0, got {self.temperature}")
        if self.max_repeat < 1:
            raise ConfigError(f"remix.max_repeat must be >= 1, got {self.max_repeat}")


@dataclass
class DecontaminateConfig:
    """Benchmark decontamination (`deepseek_hf.data.decontam`): documents sharing long n-grams with the items of the
    chosen benchmarks, read through the evaluation's loaders, are dropped or flagged. Off unless `benchmarks` is set.

    The paper (section 4) names the sets (C-Eval val, CMMLU test) but not the n-gram length nor the threshold
    (unstated); the defaults and their measurements are in `deepseek_hf/data/README.md`.
    """

    benchmarks: list[str] = field(default_factory=list)
    """Benchmarks of `deepseek_hf.eval.benchmarks` (cmmlu, ceval, mmlu, arc, ...); all their tasks' subjects."""
    data_dir: str | None = None
    """Benchmark folder laid out like shared/data, or `demo` (the shipped samples); None: $DEEPSEEK_HF_EVAL_DATA."""
    splits: Literal["evaluated", "all"] = "evaluated"
    """`evaluated`: the split each task scores (CMMLU test, C-Eval val, ...); `all`: its few-shot split too."""
    ngram: int = 10
    """Units per n-gram (a CJK character or a word is a unit)."""
    min_fraction: float = 0.5
    """A document hits an item holding at least this fraction of the item's distinct n-grams ..."""
    min_ngrams: int = 1
    """... and at least this many of them."""
    mode: Literal["drop", "flag"] = "drop"
    """`drop`: contaminated documents go to excluded/decontaminate/; `flag`: kept, ids in metadata.contamination."""
    max_listed_documents: int = 100
    """The report lists at most this many documents per item (and counts them all)."""

    @property
    def active(self) -> bool:
        return bool(self.benchmarks)

    def __post_init__(self):
        _check_choice("decontaminate.splits", self.splits, ("evaluated", "all"))
        _check_choice("decontaminate.mode", self.mode, ("drop", "flag"))
        if self.ngram < 1 or self.min_ngrams < 1 or self.max_listed_documents < 0:
            raise ConfigError("decontaminate.ngram and min_ngrams must be >= 1, max_listed_documents >= 0")
        if not 0.0 < self.min_fraction <= 1.0:
            raise ConfigError(f"decontaminate.min_fraction must be in (0, 1], got {self.min_fraction}")
        if self.benchmarks:
            from deepseek_hf.data.decontam.items import check_benchmark_names  # imports the eval loaders

            check_benchmark_names(self.benchmarks)


# Neutral defaults for any corpus: language-independent filters at the literature's thresholds (datatrove's C4
# without its English-only line rules; Gopher repetition and quality rules with CJK-aware units); no language
# restriction (add `language: {languages: [...]}` to keep some only); each value holds keyword arguments of the
# step class (see `filters.FILTERS`), run in this order.
DEFAULT_FILTERS = {"c4": {}, "repetition": {}, "quality": {}}

# The embedded demo (`deepseek-hf data run` without --config), spelled out in recipes/tiny/data/config_demo.yaml: the
# shipped EN/ZH sample + Tang poems; four pseudo-dumps to show cross-dump dedup; EN/ZH only; a short-document
# threshold a quatrain passes; sources remixed toward size^(1/2).
DEMO_INPUTS = [
    {"path": "package://demo/corpus_sample.jsonl.gz"},
    {"path": "package://demo/tangshi_dedup_sample.jsonl.gz", "text_key": "paragraphs", "source": "zh_tangshi"},
]
DEMO_FILTERS = {
    "language": {"languages": ["en", "zh"], "language_threshold": 0.5},
    "c4": {},
    "repetition": {},
    "quality": {"min_doc_words": 10},
}
DEMO_CONFIG = {
    "output_dir": "outputs/demo/data",
    "inputs": DEMO_INPUTS,
    "ingest": {"pseudo_dumps": 4},
    "filters": DEMO_FILTERS,
    "remix": {"temperature": 2.0},
}


@dataclass
class DataPipelineConfig:
    """The whole pipeline: inputs -> ingest -> dedup (document, then line level) -> filters -> decontaminate -> remix
    -> output."""

    output_dir: str = field(default="", metadata={"help": "Run folder (output/, report.*, ...); required."})
    inputs: list[dict] = field(default_factory=list, metadata={"help": "Input files (YAML list); required."})
    executor: dict = field(default_factory=dict, metadata={"help": "Executor section (YAML mapping)."})
    ingest: dict = field(default_factory=dict, metadata={"help": "Ingest section."})
    dedup: dict = field(default_factory=dict, metadata={"help": "Document dedup section."})
    line_dedup: dict = field(default_factory=dict, metadata={"help": "Line (string-level) dedup section."})
    filters: dict = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_FILTERS.items()},
        metadata={"help": "Filters to run, in order: name -> step keyword arguments (null disables)."},
    )
    remix: dict = field(default_factory=dict, metadata={"help": "Remix section (default: off)."})
    decontaminate: dict = field(
        default_factory=dict, metadata={"help": "Benchmark decontamination section (default: off)."}
    )
    keep_intermediate: bool = field(
        default=False, metadata={"help": "Keep the intermediate document copies under work/ after success."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Delete the run in output_dir and start over (needed if its config changed)."}
    )

    def __post_init__(self):
        check_types(DataPipelineConfig, {f.name: getattr(self, f.name) for f in fields(self)}, "")
        self.inputs = [_from_mapping(InputConfig, item, f"inputs[{i}]") for i, item in enumerate(self.inputs)]
        self.executor = _from_mapping(ExecutorConfig, self.executor, "executor")
        self.ingest = _from_mapping(IngestConfig, self.ingest, "ingest")
        self.dedup = _from_mapping(DedupConfig, self.dedup, "dedup")
        self.line_dedup = _from_mapping(LineDedupConfig, self.line_dedup, "line_dedup")
        self.remix = _from_mapping(RemixConfig, self.remix, "remix")
        self.decontaminate = _from_mapping(DecontaminateConfig, self.decontaminate, "decontaminate")
        from deepseek_hf.data.filters import check_filter_specs  # filters import datatrove; keep config light

        self.filters = check_filter_specs(self.filters)
        if not self.inputs:  # after the sections, so that a typo in one is reported first
            raise ConfigError("inputs is required: a list of mappings with at least a `path`")
        if not self.output_dir:
            raise ConfigError("output_dir is required (the run folder)")

    @classmethod
    def demo(cls, **overrides) -> DataPipelineConfig:
        """The embedded demo (`DEMO_CONFIG`), with top-level keys replaced by `overrides`."""
        return cls(**json.loads(json.dumps(DEMO_CONFIG)) | overrides)

    @classmethod
    def from_yaml(cls, path: str) -> DataPipelineConfig:
        return config_from_yaml(cls, path)

    @property
    def resolved_output_dir(self) -> str:
        return resolve_path(self.output_dir)

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Hash of everything that changes the result (`result_settings`)."""
        data = result_settings(self.to_dict())
        data["tasks"] = data.pop("executor")["tasks"]  # the layout hashed since the first version
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_settings(config: dict) -> dict:
    """The settings of a config dict that change the result: not where / how it runs, nor `overwrite`, but the
    number of tasks (datatrove's resumable tasks depend on the sharding)."""
    data = {k: v for k, v in config.items() if k not in ("overwrite", "keep_intermediate", "executor")}
    if not (data.get("decontaminate") or {}).get("benchmarks"):
        data.pop("decontaminate", None)  # off: runs of the versions without the section keep their fingerprint
    data["executor"] = {"tasks": (config.get("executor") or {}).get("tasks")}
    return data
