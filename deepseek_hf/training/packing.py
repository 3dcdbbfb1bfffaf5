"""Tokenize documents once into a flat token file, and read it back as fixed-length packed sequences.

Pretraining batches carry no padding: documents are concatenated (BOS as the tokenizer adds it, EOS appended to
every document) and cut into rows of `seq_length` tokens. Each row also carries `position_ids` that restart at 0
where a document starts, so the model's attention stays inside documents (transformers turns packed position ids
into a block-diagonal causal mask), and `labels` that leave out every document's first token.

Layout and behaviour, decided here once:

* **Two passes, two formats.** `tokenize_corpus` streams the documents (a `datasets` streaming dataset, never the
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
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..utils import batched, staged_directory

__all__ = [
    "IGNORE_INDEX",
    "TokenizedCorpus",
    "PackedDataset",
    "build_packed_dataset",
    "data_run_folder",
    "dataset_path_exists",
    "document_hash",
    "document_token_ids",
    "iter_texts",
    "load_documents",
    "pack_position_ids",
    "resolve_dataset_path",
    "source_fingerprint",
    "tokenize_corpus",
    "tokenize_split_corpus",
    "tokenizer_fingerprint",
    "utf8",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
FORMAT_VERSION = 1
_TOKENS_FILE, _OFFSETS_FILE, _META_FILE = "tokens.bin", "doc_offsets.npy", "meta.json"
_BYTES_FILE, _HASHES_FILE = "doc_bytes.npy", "doc_hashes.npy"  # validation corpora only
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


PACKAGE_PREFIX = "package://"  # files shipped inside the package, as in the data pipeline's configs


def _expand_package_path(path: str | None) -> str | None:
    """`package://demo/x.jsonl.gz` -> the file shipped as `deepseek_hf/assets/demo/x.jsonl.gz`."""
    if path and path.startswith(PACKAGE_PREFIX):
        from importlib import resources

        return str(resources.files("deepseek_hf").joinpath("assets", path[len(PACKAGE_PREFIX) :]))
    return path


def dataset_path_exists(path: str | None) -> bool:
    """Whether `path` names something to read: a local file, folder or glob match, or a `datasets` name."""
    path = _expand_package_path(path)
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
    path, if_missing = _expand_package_path(path), _expand_package_path(if_missing)
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
    from .shards import is_token_shards

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


# ----------------------------------------------------------------------------------------------------------------
# Tokenizing into a flat token file
# ----------------------------------------------------------------------------------------------------------------
def document_token_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each document: the tokenizer's own special tokens (BOS for DeepSeek's), then one EOS."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"the tokenizer {type(tokenizer).__name__} has no EOS token; packing needs one per document")
    encoded = tokenizer(list(texts), add_special_tokens=True, return_attention_mask=False, verbose=False)["input_ids"]
    return [ids if ids and ids[-1] == eos else ids + [eos] for ids in encoded]


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything that decides the ids: the tokenizer's pipeline, vocab and special-token settings."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    probe = document_token_ids(tokenizer, ["fingerprint probe"])[0]  # catches BOS / EOS behaviour
    payload = json.dumps([type(tokenizer).__name__, spec, len(tokenizer), probe])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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


def document_hash(text: str) -> int:
    """A stable 64-bit hash of a document's text: the first 8 bytes of BLAKE2b over its UTF-8 bytes, big-endian.

    The same on every machine, process and run (unlike Python's `hash`), so a split decided by it does not depend
    on how the corpus is sharded or ordered, and identical documents always land on the same side.
    """
    return int.from_bytes(hashlib.blake2b(utf8(text), digest_size=8).digest(), "big")


def utf8(text: str) -> bytes:
    """The UTF-8 bytes of `text` (a lone surrogate, which JSON allows, is kept as its 3 bytes instead of failing)."""
    return text.encode("utf-8", "surrogatepass")


class _CorpusWriter:
    """Appends documents to one corpus folder: ids to `tokens.bin`; `finish` writes the offsets and `meta.json`.

    With `document_info`, each document's UTF-8 byte count and `document_hash` are kept too (`doc_bytes.npy`,
    `doc_hashes.npy`): a validation corpus needs them for bits-per-byte and for an order-free subset.
    """

    def __init__(self, folder: Path, dtype, *, document_info: bool = False):
        self.folder, self.dtype = folder, dtype
        folder.mkdir(parents=True, exist_ok=True)
        self._tokens = open(folder / _TOKENS_FILE, "wb")
        self.lengths = array("q")
        self.num_tokens = 0
        self.doc_bytes = array("q") if document_info else None
        self.doc_hashes = array("Q") if document_info else None

    def add(self, ids: list[int], text: str, digest: int | None = None) -> None:
        np.asarray(ids, dtype=self.dtype).tofile(self._tokens)
        self.lengths.append(len(ids))
        self.num_tokens += len(ids)
        if self.doc_bytes is not None:
            self.doc_bytes.append(len(utf8(text)))
            self.doc_hashes.append(document_hash(text) if digest is None else digest)

    def close(self) -> None:
        if not self._tokens.closed:
            self._tokens.flush()
            os.fsync(self._tokens.fileno())
            self._tokens.close()

    def finish(self, meta: dict) -> None:
        self.close()
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(self.lengths, dtype=np.int64), out=offsets[1:])
        np.save(self.folder / _OFFSETS_FILE, offsets)
        if self.doc_bytes is not None:
            np.save(self.folder / _BYTES_FILE, np.frombuffer(self.doc_bytes, dtype=np.int64))
            np.save(self.folder / _HASHES_FILE, np.frombuffer(self.doc_hashes, dtype=np.uint64))
        meta = {
            "format_version": FORMAT_VERSION,
            "num_documents": len(self.lengths),
            "num_tokens": int(self.num_tokens),
            "dtype": np.dtype(self.dtype).name,
            **meta,
        }
        (self.folder / _META_FILE).write_text(json.dumps(meta, indent=2))


def _token_dtype(tokenizer):
    return np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.uint32


def _tokenizer_meta(tokenizer) -> dict:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def tokenize_corpus(
    texts: Iterable[str],
    tokenizer,
    output_dir: str | os.PathLike,
    *,
    batch_size: int = 1000,
    description: str = "",
    extra_meta: dict | None = None,
    document_info: bool = False,
) -> TokenizedCorpus:
    """Tokenize `texts` (streamed, in batches) into `output_dir`; atomic: written to a temporary folder, renamed.

    `document_info` also stores each document's UTF-8 byte count and text hash (what a validation corpus needs).
    Raises `ValueError` when there is no non-empty document. Returns the corpus, memory-mapped.
    """
    output_dir = Path(output_dir)
    # if another rank finished the same cache first, its identical result is kept
    with staged_directory(output_dir, if_exists="keep") as staging:
        writer = _CorpusWriter(staging, _token_dtype(tokenizer), document_info=document_info)
        try:
            progress = tqdm(desc=f"tokenizing {description}".strip(), unit=" docs", mininterval=1.0)
            for batch in batched(texts, batch_size):
                for text, ids in zip(batch, document_token_ids(tokenizer, batch)):
                    writer.add(ids, text)
                progress.update(len(batch))
            progress.close()
        finally:
            writer.close()
        if not writer.lengths:
            raise ValueError(f"no documents with text in {description or 'the dataset'}: nothing to train on")
        writer.finish({**_tokenizer_meta(tokenizer), "source": description, **(extra_meta or {})})
    return TokenizedCorpus.load(output_dir)


def tokenize_split_corpus(
    texts: Iterable[str],
    tokenizer,
    output_dir: str | os.PathLike,
    route: Callable[[int], str | None],
    *,
    parts: dict[str, bool],
    empty_errors: dict[str, str],
    batch_size: int = 1000,
    description: str = "",
    extra_meta: dict | None = None,
) -> dict[str, TokenizedCorpus]:
    """Tokenize `texts` in one pass into one corpus per part, `output_dir/<part>/`, all renamed into place at once.

    `route(document_hash(text))` names the part of each document, or None to leave it out (counted in each part's
    meta as `excluded_documents`). `parts` maps each part to whether it keeps document info (bytes, hashes); a part
    that gets no document raises `ValueError(empty_errors[part])` and nothing is cached.
    """
    output_dir = Path(output_dir)
    excluded = 0
    with staged_directory(output_dir, if_exists="keep") as staging:
        writers = {
            part: _CorpusWriter(staging / part, _token_dtype(tokenizer), document_info=info)
            for part, info in parts.items()
        }
        try:
            progress = tqdm(desc=f"tokenizing {description}".strip(), unit=" docs", mininterval=1.0)
            for batch in batched(texts, batch_size):
                digests = [document_hash(text) for text in batch]
                routes = [route(digest) for digest in digests]
                kept = [i for i, part in enumerate(routes) if part is not None]
                excluded += len(batch) - len(kept)
                ids = document_token_ids(tokenizer, [batch[i] for i in kept]) if kept else []
                for i, doc_ids in zip(kept, ids):
                    writers[routes[i]].add(doc_ids, batch[i], digests[i])
                progress.update(len(batch))
            progress.close()
        finally:
            for writer in writers.values():
                writer.close()
        for part, writer in writers.items():
            if not writer.lengths:
                raise ValueError(empty_errors[part])
        for part, writer in writers.items():
            meta = {**_tokenizer_meta(tokenizer), "source": description, "part": part, **(extra_meta or {})}
            writer.finish({**meta, "excluded_documents": excluded})
    return {part: TokenizedCorpus.load(output_dir / part) for part in parts}


@dataclass
class TokenizedCorpus:
    """A tokenized corpus on disk: all ids in one flat memory-mapped array, plus document offsets."""

    path: Path
    tokens: np.ndarray  # memmap, [num_tokens]
    doc_offsets: np.ndarray  # [num_documents + 1], doc i is tokens[offsets[i]:offsets[i + 1]]
    meta: dict
    doc_bytes: np.ndarray | None = None  # [num_documents] UTF-8 bytes of each text (corpora with document info)
    doc_hashes: np.ndarray | None = None  # [num_documents] document_hash of each text (ditto)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenizedCorpus:
        path = Path(path)
        meta_file = path / _META_FILE
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path} is not a tokenized corpus (no {_META_FILE})")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: tokenized corpus format {meta.get('format_version')}, expected {FORMAT_VERSION}"
            )
        tokens = np.memmap(path / _TOKENS_FILE, dtype=np.dtype(meta["dtype"]), mode="r")
        offsets = np.load(path / _OFFSETS_FILE, mmap_mode="r")
        if len(tokens) != meta["num_tokens"] or offsets[-1] != meta["num_tokens"]:
            raise ValueError(f"{path}: token file and offsets disagree with meta.json (corrupt corpus?)")
        info = [np.load(path / name) if (path / name).is_file() else None for name in (_BYTES_FILE, _HASHES_FILE)]
        if any(array is not None and len(array) != meta["num_documents"] for array in info):
            raise ValueError(f"{path}: document bytes / hashes disagree with meta.json (corrupt corpus?)")
        return cls(path=path, tokens=tokens, doc_offsets=offsets, meta=meta, doc_bytes=info[0], doc_hashes=info[1])

    def __reduce__(self):
        # Pickled (DataLoader workers under `spawn`) as its path: the worker memory-maps the files itself
        # instead of receiving a copy of every token.
        return (TokenizedCorpus.load, (self.path,))

    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])

    @property
    def num_documents(self) -> int:
        return int(self.meta["num_documents"])


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
            from .shards import load_tokenized_corpus  # one corpus folder, or token shards

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
    from .shards import ShardedTokenizedCorpus, is_token_shards

    if is_token_shards(source):  # `deepseek-hf data tokenize` output: tokenized already, used as it is
        corpus = ShardedTokenizedCorpus.load(source)
        corpus.check_tokenizer(tokenizer)
        logger.info("Token shards %s: %d documents, %d tokens", source, corpus.num_documents, corpus.num_tokens)
        return PackedDataset(corpus, seq_length)
    key = f"{source_fingerprint(source)}-{tokenizer_fingerprint(tokenizer)}-{text_field}"
    corpus_dir = Path(cache_dir) / key
    if (corpus_dir / _META_FILE).is_file():
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
