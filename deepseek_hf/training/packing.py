"""Tokenize documents once into a flat token file, and read it back as fixed-length packed sequences.

Pretraining batches carry no padding: documents are concatenated (BOS as the tokenizer adds it, EOS appended to
every document) and cut into rows of `seq_length` tokens. Each row also carries `position_ids` that restart at 0
where a document starts, so the model's attention stays inside documents (transformers turns packed position ids
into a block-diagonal causal mask), and `labels` that leave out every document's first token.

Layout and behaviour, decided here once:

* **Two passes, two formats.** `tokenize_corpus` (`deepseek_hf.training.corpus`) streams the documents (a `datasets` streaming dataset, never the
  whole corpus in memory), tokenizes them in batches and appends the ids to `tokens.bin` (uint16, or uint32 for
  vocabularies over 65535) with the document boundaries in `doc_offsets.npy`, Megatron/OLMo style. It writes into a
  temporary folder and renames it, so a crash never leaves a corpus that looks complete. `PackedDataset` then
  memory-maps that file: random access to row `i` is a slice, corpora larger than memory work, and the
  `Trainer`'s seeded sampler gives a deterministic order that resumes exactly (a skip is an index, not a re-read).
* **Labels.** `labels == input_ids`, except `-100` where `position_ids == 0` (the first token of each document, or
  of a row). With the causal shift, the last token of document A would otherwise be trained to predict the first
  token of document B, which it cannot see: that cross-document prediction is excluded. The EOS of each document
  *is* a target (the model learns to end documents), and the BOS at a document's start predicts its first token.
* **Long documents.** A document longer than what is left of a row continues on the next row; the continuation
  restarts its position ids at 0 (its first token is not a target), exactly like a new document. Nothing is
  truncated or dropped, except the final partial row of the corpus (fewer than `seq_length` tokens), which is
  reported.
* **Validation corpora** (`deepseek_hf.training.validation`) also keep each document's UTF-8 byte count and its
  `document_hash` (`doc_bytes.npy`, `doc_hashes.npy`); `tokenize_split_corpus` routes the documents of one pass by
  that hash into several corpora (`train/`, `validation/`) renamed into place together.
* **Bad input.** Empty or whitespace-only documents are skipped and counted; a record whose text is not a
  string, a missing text field, or a corpus with fewer tokens than one row raise a `ValueError` naming it.

```python
from deepseek_hf.training.packing import build_packed_dataset
ds = build_packed_dataset("corpus.jsonl.gz", tokenizer, seq_length=256, cache_dir="outputs/tokenized")
row = ds[0]   # {"input_ids": LongTensor[256], "position_ids": LongTensor[256], "labels": LongTensor[256]}
```
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils import expand_package_path
from .corpus import (
    META_FILE,
    TokenizedCorpus,
    tokenize_corpus,
    tokenizer_fingerprint,
)
from .shards import ShardedTokenizedCorpus, is_token_shards, load_tokenized_corpus

__all__ = [
    "IGNORE_INDEX",
    "PackedDataset",
    "build_packed_dataset",
    "data_run_folder",
    "dataset_path_exists",
    "iter_texts",
    "load_documents",
    "pack_position_ids",
    "resolve_dataset_path",
    "source_fingerprint",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
_JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".jsonl.zst", ".json.zst")
_TEXT_SUFFIXES = (".txt", ".txt.gz")


# ----------------------------------------------------------------------------------------------------------------
# Reading documents
# ----------------------------------------------------------------------------------------------------------------
_DATA_RUN_FILE = "run.json"  # deepseek_hf.data.pipeline.RUN_FILE (not imported: that module loads datatrove)


def data_run_folder(source: str | os.PathLike) -> Path | None:
    """The `deepseek-hf data run` folder that `source` names (the run folder or its `output/`), else None.

    A run folder holds `run.json` from its start and `output/` (shards + `_COMPLETE.json`) once finished.
    """
    from deepseek_hf.data.output import COMPLETE_MARKER, OUTPUT_SUBDIR

    path = Path(source)
    if not path.is_dir():
        return None
    if (path / _DATA_RUN_FILE).is_file() or (path / OUTPUT_SUBDIR).is_dir():
        return path
    if path.name == OUTPUT_SUBDIR and ((path / COMPLETE_MARKER).is_file() or (path.parent / _DATA_RUN_FILE).is_file()):
        return path.parent
    return None


def _is_pipeline_output(path: Path) -> bool:
    """A finished data-pipeline run: read through its manifest (`load_output`); an unfinished one is an error.

    Read as plain files, an unfinished run would fail at its first record: its logs are JSON files too.
    """
    from deepseek_hf.data.output import COMPLETE_MARKER, OUTPUT_SUBDIR

    run = data_run_folder(path)
    if run is None:
        return False
    if not (run / OUTPUT_SUBDIR / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(
            f"dataset {os.fspath(path)!r} holds no complete data-pipeline output: it is a `deepseek-hf data run` "
            f"folder whose run has not finished ({run / OUTPUT_SUBDIR / COMPLETE_MARKER}, written last, is "
            f"missing). Let the run finish, or run it again with the same config; its documents are then read from "
            f"{run / OUTPUT_SUBDIR}"
        )
    return True


def _local_files(source: str) -> list[str] | None:
    """The local files a source names (a file, a folder of JSONL/text files, or a glob); None if not local."""
    path = Path(source)
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        files = sorted(
            str(p) for p in path.rglob("*") if p.is_file() and p.name.endswith(_JSON_SUFFIXES + _TEXT_SUFFIXES)
        )
        if not files:
            raise ValueError(f"dataset folder {source!r} holds no .jsonl / .json / .txt files (optionally .gz)")
        return files
    if _is_glob(source):
        files = sorted(glob.glob(source, recursive=True))
        if not files:
            raise ValueError(f"dataset pattern {source!r} matches no files")
        return files
    return None


def dataset_path_exists(path: str | None) -> bool:
    """Whether `path` names something to read: a local file, folder or glob match, or a `datasets` name."""
    path = expand_package_path(path)
    if not path:
        return False
    return os.path.exists(path) or _is_glob(path) or not _looks_like_path(path)


def _is_glob(source: str) -> bool:
    return any(char in source for char in "*?[")


def resolve_dataset_path(path: str | None, if_missing: str | None = None) -> str:
    """`path` (checked: it exists, a data-pipeline run in it has finished), or `if_missing` when asked for.

    A `path` that does not exist is an error unless `if_missing` is given: that is the explicit fallback (of the
    recipe's `dataset_path_if_missing`), used with a warning. Either may be `package://demo/...`, a file shipped
    with the package.
    """
    given = path
    path, if_missing = expand_package_path(path), expand_package_path(if_missing)
    if not path:
        raise ValueError(
            "no dataset: set dataset_path (a data pipeline run folder, JSONL / text files, or a dataset name)"
        )
    if not dataset_path_exists(path):
        if not if_missing:
            where = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
            raise FileNotFoundError(
                f"dataset_path {given!r} does not exist{where}; for the shipped demo corpus use "
                "package://demo/corpus_sample.jsonl.gz"
            )
        if not dataset_path_exists(if_missing):
            raise FileNotFoundError(
                f"neither dataset_path {given!r} nor dataset_path_if_missing {if_missing!r} exists"
            )
        logger.warning("dataset_path %r does not exist: training on dataset_path_if_missing %r", given, if_missing)
        path = if_missing
    # now, not at the first record: an unfinished data-pipeline run, an empty folder, a glob that matches nothing
    if is_token_shards(path):  # checked (finished, same tokenizer) when it is loaded
        return path
    if not _is_pipeline_output(Path(path)):
        _local_files(path)
    return path


def _looks_like_path(source: str) -> bool:
    """A local path rather than a Hub dataset name (`name` or `org/name`, no file suffix, no local first folder)."""
    return (
        bool(Path(source).suffix)
        or source.startswith((".", "/", "~"))
        or source.count("/") >= 2
        or ("/" in source and os.path.isdir(source.split("/")[0]))  # `outputs/dta`: a typo, not a Hub name
    )


def load_documents(source: str | os.PathLike, *, split: str = "train"):
    """A streaming `datasets` dataset of the documents of `source`.

    `source` is a data pipeline output folder (read with `deepseek_hf.data.load_output`), a JSONL / JSON / text
    file (optionally gzipped), a folder or glob of such files, or else a dataset name for `datasets.load_dataset`.
    """
    import datasets

    source = os.fspath(source)
    path = Path(source)
    if _is_pipeline_output(path):  # only a complete run: load_output checks its completion manifest
        from deepseek_hf.data import load_output

        return load_output(str(data_run_folder(path)), streaming=True)
    files = _local_files(source)
    if files is not None:
        files = [f for f in files if not _is_empty_file(f)]  # `datasets` cannot infer a schema from them
        if not files:
            raise ValueError(f"no documents with text in {source}: its files are empty")
    if files is None:
        if _looks_like_path(source):
            raise FileNotFoundError(f"dataset {source!r} does not exist")
        return datasets.load_dataset(source, split=split, streaming=True)
    if all(f.endswith(_TEXT_SUFFIXES) for f in files):
        return datasets.load_dataset("text", data_files=files, split="train", streaming=True)
    if not all(f.endswith(_JSON_SUFFIXES) for f in files):
        raise ValueError(f"cannot mix JSON and text files in one dataset: {files}")
    return datasets.load_dataset("json", data_files=files, split="train", streaming=True)


def _is_empty_file(path: str) -> bool:
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as handle:
            return not handle.read(1)
    return os.path.getsize(path) == 0


def iter_texts(
    documents: Iterable[dict[str, Any]], text_field: str = "text", stats: dict | None = None
) -> Iterator[str]:
    """The text of each record; empty / whitespace-only texts are skipped and counted in `stats["skipped_empty"]`."""
    stats = stats if stats is not None else {}
    stats.setdefault("skipped_empty", 0)
    for index, record in enumerate(documents):
        if text_field not in record:
            raise ValueError(f"record {index} has no {text_field!r} field (fields: {sorted(record)})")
        text = record[text_field]
        if text is None:  # `datasets` fills a field missing from some records with null
            raise ValueError(f"record {index} has no {text_field!r} field (missing or null)")
        if not isinstance(text, str):
            raise ValueError(f"record {index}: field {text_field!r} is {type(text).__name__}, expected a string")
        if not text.strip():
            stats["skipped_empty"] += 1
            continue
        yield text


def source_fingerprint(source: str | os.PathLike) -> str:
    """A hash of a source's identity: for local files their paths, sizes and modification times."""
    source = os.fspath(source)
    path = Path(source)
    files = _local_files(str(data_run_folder(path) / "output")) if _is_pipeline_output(path) else _local_files(source)
    if files is None:
        identity: Any = ["hub", source]
    else:
        identity = [[os.path.abspath(f), os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in files]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------
# Packed rows
# ----------------------------------------------------------------------------------------------------------------
def pack_position_ids(doc_starts_in_row: np.ndarray, seq_length: int) -> np.ndarray:
    """Position ids of one row: `0, 1, 2, ...`, restarting at 0 at each offset in `doc_starts_in_row`."""
    segment_start = np.zeros(seq_length, dtype=np.int64)
    segment_start[doc_starts_in_row] = doc_starts_in_row
    np.maximum.accumulate(segment_start, out=segment_start)
    return np.arange(seq_length, dtype=np.int64) - segment_start


class PackedDataset(Dataset):
    """Rows of `seq_length` consecutive tokens of a `TokenizedCorpus`, with per-document position ids and labels.

    Row `i` is `tokens[i * seq_length : (i + 1) * seq_length]`: no padding; the final partial row is left out.
    """

    def __init__(self, corpus: TokenizedCorpus | str | os.PathLike, seq_length: int):
        if seq_length < 2:
            raise ValueError(f"seq_length must be at least 2, got {seq_length}")
        if not isinstance(corpus, TokenizedCorpus):
            corpus = load_tokenized_corpus(corpus)
        self.corpus = corpus
        self.seq_length = int(seq_length)
        self.num_rows = self.corpus.num_tokens // self.seq_length
        if self.num_rows == 0:
            raise ValueError(
                f"the dataset has {self.corpus.num_tokens} tokens, fewer than one sequence of {seq_length}: "
                "add data or lower seq_length"
            )
        self._doc_starts = self.corpus.doc_offsets[:-1]

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.num_rows <= index < self.num_rows:
            raise IndexError(f"row {index} out of range for {self.num_rows} rows")
        index %= self.num_rows
        start = index * self.seq_length
        stop = start + self.seq_length
        input_ids = torch.from_numpy(self.corpus.tokens[start:stop].astype(np.int64))
        first = np.searchsorted(self._doc_starts, start, side="left")
        last = np.searchsorted(self._doc_starts, stop, side="left")
        starts_in_row = self._doc_starts[first:last] - start
        position_ids = torch.from_numpy(pack_position_ids(starts_in_row, self.seq_length))
        labels = input_ids.masked_fill(position_ids == 0, IGNORE_INDEX)
        return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}

    # -- statistics -----------------------------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        """Tokens in the rows (the corpus minus its final partial row)."""
        return self.num_rows * self.seq_length

    def stats(self) -> dict[str, Any]:
        lengths = np.diff(self.corpus.doc_offsets)
        return {
            "documents": self.corpus.num_documents,
            "skipped_empty_documents": int(self.corpus.meta.get("skipped_empty", 0)),
            "corpus_tokens": self.corpus.num_tokens,
            "rows": self.num_rows,
            "seq_length": self.seq_length,
            "tokens_in_rows": self.num_tokens,
            "dropped_tail_tokens": self.corpus.num_tokens - self.num_tokens,
            "documents_longer_than_seq_length": int((lengths > self.seq_length).sum()),
            "mean_document_tokens": float(lengths.mean()),
        }

    def unigram_entropy(self, max_tokens: int = 10_000_000) -> float:
        """Entropy (nats) of the token distribution of the training targets, over at most `max_tokens` tokens.

        The loss of a model that ignores the context and predicts token frequencies: a trained LM must go well
        below it.
        """
        tokens = np.asarray(self.corpus.tokens[: min(self.num_tokens, max_tokens)], dtype=np.int64)
        rows = tokens[: len(tokens) // self.seq_length * self.seq_length]
        targets = np.ones(len(rows), dtype=bool)
        targets[self.corpus.doc_offsets[:-1][self.corpus.doc_offsets[:-1] < len(rows)]] = False
        targets[:: self.seq_length] = False  # row starts are never targets either
        counts = np.bincount(rows[targets]).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())


def build_packed_dataset(
    source: str | os.PathLike,
    tokenizer,
    seq_length: int,
    cache_dir: str | os.PathLike,
    *,
    text_field: str = "text",
    split: str = "train",
    batch_size: int = 1000,
) -> PackedDataset:
    """Tokenize `source` into `cache_dir` (once per source + tokenizer) and return its packed rows.

    The cache key hashes the source files (path, size, mtime) and the tokenizer, so a changed corpus or
    tokenizer is tokenized again and an unchanged one is reused (under `accelerate launch`, call it on the main
    process first: the other ranks then read the cache).
    """
    source = os.fspath(source)
    if is_token_shards(source):  # `deepseek-hf data tokenize` output: tokenized already, used as it is
        corpus = ShardedTokenizedCorpus.load(source)
        corpus.check_tokenizer(tokenizer)
        logger.info("Token shards %s: %d documents, %d tokens", source, corpus.num_documents, corpus.num_tokens)
        if corpus.validation_fraction:
            logger.info(
                "Token shards %s: the %d documents held out for validation when tokenizing (validation_fraction "
                "%s) are not trained on",
                source,
                corpus.meta["validation"]["num_documents"],
                corpus.validation_fraction,
            )
        return PackedDataset(corpus, seq_length)
    key = f"{source_fingerprint(source)}-{tokenizer_fingerprint(tokenizer)}-{text_field}"
    corpus_dir = Path(cache_dir) / key
    if (corpus_dir / META_FILE).is_file():
        logger.info("Reusing the tokenized corpus %s for %s", corpus_dir, source)
        corpus = TokenizedCorpus.load(corpus_dir)
    else:
        created = _missing_ancestors(corpus_dir.parent)
        stats: dict[str, int] = {}
        try:
            texts = iter_texts(load_documents(source, split=split), text_field, stats)
            # `stats` fills up while the texts are read; tokenize_corpus writes it to meta.json after the last one.
            corpus = tokenize_corpus(
                texts, tokenizer, corpus_dir, batch_size=batch_size, description=source, extra_meta=stats
            )
        except BaseException:  # a bad record: leave no empty cache folders (or output_dir) behind
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise
    return PackedDataset(corpus, seq_length)


def _missing_ancestors(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing
