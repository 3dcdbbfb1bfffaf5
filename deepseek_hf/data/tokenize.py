"""Tokenize a pretraining corpus on the data pipeline's datatrove executors into token shards plus a manifest.

`deepseek_hf.training.packing.build_packed_dataset` tokenizes a corpus in one process: right for the demo, wrong
for the paper's 2T tokens. Here the same work is cut into `executor.tasks` tasks, run by the executor of the
pipeline's `executor:` section (local, Ray or Slurm, built by `pipeline.make_executor`), each writing one token
shard; `deepseek_hf.training.shards.ShardedTokenizedCorpus` reads the shards back as one corpus whose packed rows
are identical to the single-process path on the same corpus, for any number of tasks.

| stage      | tasks   | steps                                                                           |
|------------|---------|---------------------------------------------------------------------------------|
| `tokenize` | `tasks` | ShardInput (the pipeline's readers, a contiguous block of files) -> TokenShardWriter |
| `manifest` | 1       | WriteManifest: global `doc_offsets.npy`, then `manifest.json` (written last)     |

Decided here:

* **Order.** The input files are listed once, in the single-process order (a data-pipeline run: its manifest's
  shard order; otherwise sorted paths), and cut into `tasks` *contiguous* blocks balanced by bytes, so shard 0,
  shard 1, ... concatenated is the single-process document stream. (The pipeline's readers deal files out
  round-robin, and split lines by stride when files are fewer than tasks: fine for dedup, but the order would
  depend on the task count.) A task with no file writes an empty shard.
* **Shard format.** Each shard is a `TokenizedCorpus` folder written by packing's own `tokenize_corpus` (same
  `tokens.bin` / `doc_offsets.npy` / `meta.json`, same ids: BOS as the tokenizer adds it, one EOS per document),
  staged and renamed, so a killed task leaves a hidden `.00003.*.tmp` folder, never `shards/00003/`; its re-run
  deletes the leftover. Resuming is datatrove's: finished tasks have completion markers and are skipped.
* **Validation split.** With `validation_fraction`, each task routes its documents by the pretraining recipe's own
  rule (BLAKE2b of the text below the fraction) into `shards/<task>/train/` and `shards/<task>/validation/` (the
  latter with each document's bytes and hash, for bits-per-byte), in one pass; the manifest lists the training
  shards as its own and the validation shards under `"validation"`. So the held-out documents are those of the
  one-process split of the same corpus, for any number of tasks, and never in a training shard.
* **Why not datatrove's `DocumentTokenizer`.** It loads a raw `tokenizers.Tokenizer` from a `tokenizer.json` or
  the Hub (not our `AutoTokenizer` folder), and its `eos_token` option replaces the post-processor, dropping the
  BOS our tokenizer adds; it shuffles documents by default; it writes `.ds` / `.index` / `.metadata` files in
  place (a killed task leaves a partial `.ds` that looks like output); and it does not count empty or bad records.
  Matching the single-process ids and format exactly is the point, so the writer is packing's.
* **Bad records** (malformed JSON, invalid UTF-8, a missing or non-string text: the readers turn them into error
  documents) and empty texts are skipped and counted per reason, in each shard's `meta.json` and summed in the
  manifest; never fatal.
* **Threads.** Each task tokenizes with `executor.cpus_per_task` Rust threads (`RAYON_NUM_THREADS`, unless set),
  so `workers` tasks on as many cores do not oversubscribe them.

>>> from deepseek_hf.data.tokenize import TokenizeConfig, run_tokenize
>>> run_tokenize(TokenizeConfig.from_yaml("recipes/tiny/tokenize/tokenize_demo.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from deepseek_hf.data import lifetime
from deepseek_hf.data.config import (
    _REMOTE_PREFIXES,
    ExecutorConfig,
    IngestConfig,
    InputConfig,
    _check_choice,
    _from_mapping,
    check_types,
    config_from_yaml,
    resolve_path,
)
from deepseek_hf.data.errors import ConfigError, InputNotFoundError, RunFolderError

SETTINGS_FILE = "tokenize.json"  # configuration + fingerprint, written at the start
MANIFEST_FILE = "manifest.json"  # written last: its presence means the corpus is complete
SHARDS_SUBDIR = "shards"
MANIFEST_FORMAT = "deepseek_hf token shards"
MANIFEST_VERSION = 1
TRAIN_PART, VALIDATION_PART = "train", "validation"  # the parts of a split shard (`validation_fraction`)
VALIDATION_OFFSETS_FILE = "validation_doc_offsets.npy"
STAGES = ("tokenize", "manifest")
# what a local worker needs, imported once by the forkserver instead of by every worker
PRELOAD = [
    "deepseek_hf.data.tokenize",
    "deepseek_hf.data.readers",
    "deepseek_hf",
    "deepseek_hf.training.packing",
    "deepseek_hf.training.model",
    "transformers.models.auto.tokenization_auto",
]


def shard_name(rank: int) -> str:
    return f"{rank:05d}"


@dataclass
class TokenizeConfig:
    """`deepseek-hf data tokenize --config FILE`: what to tokenize, with which tokenizer, where, on which executor."""

    input: str = field(
        default="",
        metadata={
            "help": "A finished `deepseek-hf data run` folder, or a JSONL(.gz/.zst) / Parquet file, folder or glob "
            "(`package://...` for shipped files); required."
        },
    )
    tokenizer: str = field(default="", metadata={"help": "Tokenizer folder (AutoTokenizer); required."})
    output_dir: str = field(default="", metadata={"help": "Folder of the token shards and manifest; required."})
    format: str = field(default="auto", metadata={"help": "auto (from the extension), jsonl or parquet."})
    text_field: str = field(default="text", metadata={"help": "Field holding the document text."})
    executor: dict = field(
        default_factory=dict, metadata={"help": "Executor section, as the data pipeline's (tasks, workers, type...)."}
    )
    batch_size: int = field(default=1000, metadata={"help": "Documents per tokenizer call."})
    validation_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Hold out the documents whose text hash falls below this fraction (the pretraining recipe's "
            "validation_fraction rule, BLAKE2b) into validation shards beside the training shards; a pretraining "
            "run with the same validation_fraction scores them. Default 0: no split."
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Delete the tokenized corpus in output_dir and start over."}
    )

    def __post_init__(self):
        check_types(TokenizeConfig, {f.name: getattr(self, f.name) for f in fields(self)}, "")
        self.executor = _from_mapping(ExecutorConfig, self.executor, "executor")
        _check_choice("format", self.format, ("auto", "jsonl", "parquet"))
        for key in ("input", "tokenizer", "output_dir"):
            if not getattr(self, key):
                raise ConfigError(f"{key} is required")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")

    @classmethod
    def from_yaml(cls, path: str) -> TokenizeConfig:
        return config_from_yaml(cls, path)

    @property
    def resolved_output_dir(self) -> str:
        return resolve_path(self.output_dir)

    @property
    def resolved_tokenizer(self) -> str:
        """A local tokenizer folder (absolute), else the name as given (a Hub name)."""
        path = resolve_path(self.tokenizer)
        return path if os.path.exists(path) else self.tokenizer

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# Input files, in the single-process order, cut into contiguous blocks
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class InputFiles:
    """The files to tokenize: a datatrove data folder, paths relative to it (in order) and their sizes."""

    folder: str
    files: list[str]
    sizes: list[int]
    spec: InputConfig

    def identity(self) -> str:
        return hashlib.sha256(json.dumps([self.folder, self.files, self.sizes]).encode()).hexdigest()[:16]


def list_input_files(config: TokenizeConfig) -> InputFiles:
    """The input's files in the order `build_packed_dataset` reads them; a clear error when there is none."""
    from deepseek_hf.data.output import output_files
    from deepseek_hf.training.packing import data_run_folder

    path = resolve_path(config.input)
    run = None if path.startswith(_REMOTE_PREFIXES) else data_run_folder(path)
    if run is not None:  # a data-pipeline run: its manifest's shards (output_files checks that the run finished)
        absolute = output_files(str(run))
        folder = os.path.join(str(run), "output")
        spec = InputConfig(path=folder, format="jsonl", text_key=config.text_field)
        files = [os.path.relpath(f, folder) for f in absolute]
    else:
        spec = InputConfig(path=config.input, format=config.format, text_key=config.text_field)
        if spec.resolved_format == "datasets":
            raise ConfigError(f"input {config.input}: a saved `datasets` folder cannot be tokenized in shards")
        spec.check_exists()
        folder, pattern = spec.folder_and_glob()
        data_folder = get_datafolder(folder)
        files = data_folder.list_files(glob_pattern=pattern)
        if not files:
            raise InputNotFoundError(f"input {config.input}: no files match ({pattern} in {folder})")
    data_folder = get_datafolder(folder)
    sizes = [int(data_folder.size(f)) for f in files]
    return InputFiles(folder=folder, files=files, sizes=sizes, spec=spec)


def contiguous_blocks(sizes: list[int], tasks: int) -> list[tuple[int, int]]:
    """`tasks` contiguous `(start, stop)` ranges of files, balanced by bytes: boundary r is where the running size
    is closest to r / tasks of the total, moved so that every task gets a file when there are enough. Concatenating
    the blocks in task order gives the files in order."""
    import numpy as np

    n = len(sizes)
    cumulative = np.concatenate([[0], np.cumsum(sizes, dtype=np.float64)])
    bounds = [0]
    for r in range(1, tasks):
        target = cumulative[-1] * r / tasks
        cut = int(np.abs(cumulative - target).argmin())
        if n >= tasks:  # at least one file for this task and for each of the following ones
            cut = min(max(cut, bounds[-1] + 1), n - (tasks - r))
        bounds.append(max(cut, bounds[-1]))
    bounds.append(n)
    return list(zip(bounds[:-1], bounds[1:]))


# ----------------------------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------------------------
class ShardInput(PipelineStep):
    """Reads the task's contiguous block of input files with the data pipeline's own readers (which turn every
    unusable line into a counted error document instead of dropping it)."""

    type = "📖 - READER"
    name = "📖 contiguous files"

    def __init__(self, inputs: InputFiles, blocks: list[tuple[int, int]]):
        super().__init__()
        self.inputs, self.blocks = inputs, blocks

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from deepseek_hf.data.readers import make_reader

        start, stop = self.blocks[rank]
        shard = self.inputs.files[start:stop]
        if not shard:
            logger.warning(f"task {rank}: no input file (fewer files than tasks); its shard is empty")
            return
        reader = make_reader(self.inputs.spec, IngestConfig(progress=False))
        reader.data_folder = get_datafolder(self.inputs.folder)
        for document in reader.read_files_shard(shard):
            self.stat_update("documents_read")
            yield document


def _stale_staging(shards_dir: Path, rank: int) -> list[Path]:
    return [Path(p) for p in globlib.glob(str(shards_dir / f".{shard_name(rank)}.*.tmp"))]


_TOKENIZERS: dict[tuple[str, str], object] = {}  # per process: a worker running several tasks loads it once


def _checked_tokenizer(path: str, fingerprint: str):
    """The tokenizer at `path`, loaded once per process, and checked to be the one the run started with."""
    from deepseek_hf.training.corpus import tokenizer_fingerprint
    from deepseek_hf.training.model import load_tokenizer

    if (path, fingerprint) not in _TOKENIZERS:
        tokenizer = load_tokenizer(path)
        found = tokenizer_fingerprint(tokenizer)
        if found != fingerprint:
            raise RuntimeError(
                f"the tokenizer {path} changed since this run started (fingerprint {found} != {fingerprint}): "
                "start over with overwrite: true"
            )
        _TOKENIZERS[path, fingerprint] = tokenizer
    return _TOKENIZERS[path, fingerprint]


class TokenShardWriter(PipelineStep):
    """Tokenizes the task's documents into `shards/<rank>/` with packing's `tokenize_corpus` (staged, renamed)."""

    type = "🔢 - TOKENIZER"
    name = "🔢 token shard"

    def __init__(
        self,
        output_dir: str,
        tokenizer: str,
        fingerprint: str,
        batch_size: int,
        threads: int = 1,
        validation_fraction: float = 0.0,
    ):
        super().__init__()
        self.output_dir, self.tokenizer_path, self.fingerprint = output_dir, tokenizer, fingerprint
        self.batch_size, self.threads, self.validation_fraction = batch_size, threads, validation_fraction

    def _texts(self, documents, counts: dict):
        from deepseek_hf.data.errors import INPUT_ERROR

        for document in documents:
            reason = document.metadata.get(INPUT_ERROR)
            if reason:
                counts["bad_records"][reason] = counts["bad_records"].get(reason, 0) + 1
                self.stat_update("bad_records", f"bad_records|reason={reason}")
                continue
            if not document.text.strip():
                counts["skipped_empty"] += 1
                self.stat_update("skipped_empty")
                continue
            counts["documents"] += 1
            yield document.text

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if os.environ.get(lifetime.MAIN_PID_ENV) != str(os.getpid()):  # a worker process, not the run's own
            os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, self.threads)))  # before its first tokenizer call
        from deepseek_hf.training.corpus import tokenize_corpus

        shards_dir = Path(self.output_dir) / SHARDS_SUBDIR
        for leftover in _stale_staging(shards_dir, rank):  # a killed earlier attempt of this task
            logger.warning(f"task {rank}: removing {leftover}, left by an interrupted attempt")
            shutil.rmtree(leftover, ignore_errors=True)
        tokenizer = _checked_tokenizer(self.tokenizer_path, self.fingerprint)
        counts = {"rank": rank, "documents": 0, "skipped_empty": 0, "bad_records": {}}
        target = shards_dir / shard_name(rank)
        texts = self._texts(data or (), counts)
        if self.validation_fraction:
            self._write_split_shard(texts, tokenizer, target, counts)
            return
        try:
            corpus = tokenize_corpus(
                texts,
                tokenizer,
                target,
                batch_size=self.batch_size,
                description=f"task {rank}",
                extra_meta=counts,
            )
        except ValueError:
            if counts["documents"]:
                raise
            _write_empty_shard(target, tokenizer, counts)
            self.stat_update("tokens", value=0)
            return
        self.stat_update("tokens", value=corpus.num_tokens)
        self.stat_update("documents", value=corpus.num_documents)
        return
        yield  # a generator step: datatrove iterates it

    def _write_split_shard(self, texts, tokenizer, target: Path, counts: dict) -> None:
        """`shards/<rank>/train/` and `validation/` in one pass, routed by the recipe's own split rule; either may be
        empty in one task (WriteManifest checks the whole corpus)."""
        from deepseek_hf.training.corpus import tokenize_split_corpus
        from deepseek_hf.training.validation import validation_threshold

        threshold = validation_threshold(self.validation_fraction)
        parts = tokenize_split_corpus(
            texts,
            tokenizer,
            target,
            lambda digest: VALIDATION_PART if digest < threshold else TRAIN_PART,
            parts={TRAIN_PART: False, VALIDATION_PART: True},
            empty_errors={TRAIN_PART: None, VALIDATION_PART: None},
            batch_size=self.batch_size,
            description=f"task {counts['rank']}",
            extra_meta=counts,
        )
        for part, corpus in parts.items():
            self.stat_update(f"{part}_tokens", value=corpus.num_tokens if corpus else 0)
            self.stat_update(f"{part}_documents", value=corpus.num_documents if corpus else 0)


def _write_empty_shard(target: Path, tokenizer, counts: dict) -> None:
    """A task without documents still writes its shard (0 tokens), so every task has one and its counts."""
    import numpy as np

    from deepseek_hf.training.corpus import FORMAT_VERSION, META_FILE, OFFSETS_FILE, TOKENS_FILE
    from deepseek_hf.utils import staged_directory

    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.uint32
    with staged_directory(target, if_exists="keep") as staging:
        (staging / TOKENS_FILE).write_bytes(b"")
        np.save(staging / OFFSETS_FILE, np.zeros(1, dtype=np.int64))
        meta = {
            "format_version": FORMAT_VERSION,
            "num_documents": 0,
            "num_tokens": 0,
            "dtype": np.dtype(dtype).name,
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "source": f"task {counts['rank']}",
            **counts,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))


class WriteManifest(PipelineStep):
    """Last stage (one task): checks every shard, writes the global document offsets, then the manifest.

    With `validation_fraction`, the training part's shards and offsets are the manifest's own (what a reader that
    knows no split reads), and the validation part's are under `"validation"`."""

    type = "🏁 - FINALIZE"
    name = "🏁 token manifest"

    def __init__(self, output_dir: str, tasks: int, summary: dict, validation_fraction: float = 0.0):
        super().__init__()
        self.output_dir, self.tasks, self.summary = output_dir, tasks, summary
        self.validation_fraction = validation_fraction

    def _merge(self, root: Path, part: str | None, offsets_name: str) -> dict:
        """One part's shards (all tasks) checked and listed, and its global offsets written (atomically)."""
        import numpy as np

        from deepseek_hf.training.corpus import META_FILE, OFFSETS_FILE

        folders = [Path(SHARDS_SUBDIR, shard_name(r), *([part] if part else [])) for r in range(self.tasks)]
        metas = []
        for r, folder in enumerate(folders):
            meta_file = root / folder / META_FILE
            if not meta_file.is_file():
                raise FileNotFoundError(f"{meta_file} is missing: task {r} of the tokenize stage did not finish")
            metas.append(json.loads(meta_file.read_text()))
        for key in ("format_version", "dtype", "vocab_size", "bos_token_id", "eos_token_id"):
            values = {json.dumps(m.get(key)) for m in metas}
            if len(values) > 1:
                raise ValueError(f"{root}: the shards disagree on {key} ({sorted(values)})")
        num_documents = sum(m["num_documents"] for m in metas)
        # the global offsets (same format as a shard's) let the reader memory-map them
        offsets_tmp = root / f".{offsets_name}.tmp.npy"
        offsets = np.lib.format.open_memmap(offsets_tmp, mode="w+", dtype=np.int64, shape=(num_documents + 1,))
        shards, tokens, documents = [], 0, 0
        bad: dict[str, int] = {}
        for folder, meta in zip(folders, metas):
            shard_offsets = np.load(root / folder / OFFSETS_FILE, mmap_mode="r")
            offsets[documents : documents + meta["num_documents"]] = shard_offsets[:-1] + tokens
            shards.append(
                {
                    "path": folder.as_posix(),
                    "num_tokens": meta["num_tokens"],
                    "num_documents": meta["num_documents"],
                    "token_offset": tokens,
                    "document_offset": documents,
                    "skipped_empty": meta.get("skipped_empty", 0),
                    "bad_records": meta.get("bad_records", {}),
                }
            )
            tokens += meta["num_tokens"]
            documents += meta["num_documents"]
            for reason, count in meta.get("bad_records", {}).items():
                bad[reason] = bad.get(reason, 0) + count
        offsets[documents] = tokens
        offsets.flush()
        del offsets
        os.replace(offsets_tmp, root / offsets_name)
        first = metas[0]
        return {
            "num_tokens": tokens,
            "num_documents": documents,
            **{key: first[key] for key in ("dtype", "vocab_size", "bos_token_id", "eos_token_id")},
            "skipped_empty": sum(m.get("skipped_empty", 0) for m in metas),
            "bad_records": dict(sorted(bad.items())),
            "bad_records_total": sum(bad.values()),
            "doc_offsets": offsets_name,
            "shards": shards,
        }

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from deepseek_hf.training.corpus import FORMAT_VERSION, OFFSETS_FILE

        root = Path(self.output_dir)
        split = bool(self.validation_fraction)
        main = self._merge(root, TRAIN_PART if split else None, OFFSETS_FILE)
        manifest = {
            "format": MANIFEST_FORMAT,
            "manifest_version": MANIFEST_VERSION,
            "format_version": FORMAT_VERSION,
            **main,
            **self.summary,
        }
        if split:
            validation = self._merge(root, VALIDATION_PART, VALIDATION_OFFSETS_FILE)
            if not validation["num_documents"]:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} put none of the {main['num_documents']} "
                    f"documents in the validation shards: set a larger one (about 1 / the number of documents or "
                    "more) with `overwrite: true`"
                )
            if not main["num_documents"]:
                raise ValueError(f"validation_fraction={self.validation_fraction} left no document for training")
            manifest["validation_fraction"] = self.validation_fraction
            # the record counts are the tasks' (in both parts' metas alike): kept once, at the top
            manifest[VALIDATION_PART] = {
                key: validation[key] for key in ("num_tokens", "num_documents", "doc_offsets", "shards")
            }
        tmp = root / f".{MANIFEST_FILE}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, root / MANIFEST_FILE)
        held_out = f", {manifest[VALIDATION_PART]['num_documents']} held out for validation" if split else ""
        logger.success(
            f"tokenized {main['num_documents']} documents, {main['num_tokens']} tokens in {self.tasks} shards"
            f"{held_out}: {root}"
        )
        return iter(())


# ----------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------
def _settings(config: TokenizeConfig, inputs: InputFiles, fingerprint: str) -> dict:
    """What decides the result (hashed): not where / how it runs, nor `overwrite` or `batch_size`, but the number
    of tasks (the shards) and the input files (paths and sizes)."""
    return {
        "input": resolve_path(config.input),
        "format": config.format,
        "text_field": config.text_field,
        "tokenizer_fingerprint": fingerprint,
        "input_files": inputs.identity(),
        "executor": {"tasks": config.executor.tasks},
        # only when set, so that the fingerprint of an unsplit tokenization is unchanged
        **({"validation_fraction": config.validation_fraction} if config.validation_fraction else {}),
    }


def prepare_output_dir(config: TokenizeConfig, settings: dict) -> bool:
    """Create / check the output folder; True when this exact tokenization already finished (as the pipeline's
    `prepare_run_folder`: the same settings resume, others are refused naming the change unless `overwrite`)."""
    from deepseek_hf.data.pipeline import config_changes
    from deepseek_hf.training.corpus import OFFSETS_FILE

    root = Path(config.resolved_output_dir)
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    previous = None
    if (root / SETTINGS_FILE).is_file():
        previous = json.loads((root / SETTINGS_FILE).read_text())
    elif root.is_dir() and any(root.iterdir()):
        raise RunFolderError(
            f"output_dir {root} exists, is not empty and holds no tokenized corpus (no {SETTINGS_FILE}); "
            "choose a new or empty folder"
        )
    if previous is not None and previous.get("fingerprint") != fingerprint:
        if not config.overwrite:
            changes = "; ".join(config_changes(previous.get("settings") or {}, settings)) or "(an older version)"
            raise RunFolderError(
                f"output_dir {root} holds a tokenization of other settings; changed: {changes}. Nothing was "
                "deleted: choose another output_dir, or set `overwrite: true` to delete it and start over"
            )
    if previous is not None and (config.overwrite or previous.get("fingerprint") != fingerprint):
        logger.info(f"{root}: overwrite requested; starting over")
        (root / MANIFEST_FILE).unlink(missing_ok=True)  # first: a half-deleted folder never looks complete
        for sub in ("logs", SHARDS_SUBDIR):
            shutil.rmtree(root / sub, ignore_errors=True)
        for name in (OFFSETS_FILE, VALIDATION_OFFSETS_FILE, SETTINGS_FILE):
            (root / name).unlink(missing_ok=True)
        previous = None
    finished = previous is not None and (root / MANIFEST_FILE).is_file()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{SETTINGS_FILE}.tmp"
    tmp.write_text(
        json.dumps(
            {"fingerprint": fingerprint, "settings": settings, "config": config.to_dict()}, indent=2, default=str
        )
    )
    os.replace(tmp, root / SETTINGS_FILE)
    return finished


def build_stages(config: TokenizeConfig, inputs: InputFiles, fingerprint: str) -> list:
    """The two datatrove stages of a tokenization (see the module docstring)."""
    from deepseek_hf.data.pipeline import Stage

    tasks = config.executor.tasks
    root = config.resolved_output_dir
    blocks = contiguous_blocks(inputs.sizes, tasks)
    writer = TokenShardWriter(
        root,
        config.resolved_tokenizer,
        fingerprint,
        config.batch_size,
        config.executor.cpus_per_task,
        validation_fraction=config.validation_fraction,
    )
    summary = {
        "tokenizer": config.resolved_tokenizer,
        "tokenizer_fingerprint": fingerprint,
        "text_field": config.text_field,
        "input": resolve_path(config.input),
        "input_files": len(inputs.files),
        "tasks": tasks,
        "config": json.loads(json.dumps(config.to_dict(), default=str)),
    }
    return [
        Stage("tokenize", [ShardInput(inputs, blocks), writer], tasks),
        Stage("manifest", [WriteManifest(root, tasks, summary, config.validation_fraction)], 1),
    ]


def run_tokenize(config: TokenizeConfig) -> str:
    """Tokenize (or, on Slurm, submit the tokenization of) `config.input`; returns the output folder.

    Raises `StageFailedError` if any task fails; a re-run with the same config resumes the unfinished tasks.
    """
    from deepseek_hf.data.pipeline import run_stages
    from deepseek_hf.training.corpus import tokenizer_fingerprint
    from deepseek_hf.training.model import load_tokenizer

    tokenizer_path = config.resolved_tokenizer
    if not os.path.exists(tokenizer_path) and (os.sep in config.tokenizer or config.tokenizer.startswith(".")):
        raise InputNotFoundError(f"tokenizer folder {config.tokenizer!r} does not exist")
    tokenizer = load_tokenizer(tokenizer_path)
    fingerprint = tokenizer_fingerprint(tokenizer)
    _TOKENIZERS[tokenizer_path, fingerprint] = tokenizer  # in-process tasks (workers: 1) reuse it
    inputs = list_input_files(config)
    root = config.resolved_output_dir
    if prepare_output_dir(config, _settings(config, inputs, fingerprint)):
        logger.info(f"{root}: this tokenization already finished; nothing to do (set overwrite to redo)")
        return root
    (Path(root) / MANIFEST_FILE).unlink(missing_ok=True)
    # the tokenizer stack (torch, transformers) imported once by the forkserver, not by every worker
    return run_stages(config, build_stages(config, inputs, fingerprint), PRELOAD, f"{root}/{MANIFEST_FILE}")
