"""The on-disk tokenized corpus: every document's ids in one flat file, with its boundaries.

`tokenize_corpus` streams documents, tokenizes them in batches and appends the ids to `tokens.bin` (uint16, or
uint32 for vocabularies over 65535) with the document boundaries in `doc_offsets.npy`, Megatron/OLMo style, and
`meta.json` last; it writes into a temporary folder and renames it, so a crash never leaves a corpus that looks
complete. `TokenizedCorpus` memory-maps it back. Validation corpora also keep each document's UTF-8 byte count and
`document_hash` (`doc_bytes.npy`, `doc_hashes.npy`), and `tokenize_split_corpus` routes the documents of one pass
by that hash into several corpora renamed into place together. One format for the single-process path
(`deepseek_hf.training.packing`), the validation split and the token shards of `deepseek-hf data tokenize`
(`deepseek_hf.training.shards`).
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..utils import batched, staged_directory

__all__ = [
    "BYTES_FILE",
    "FORMAT_VERSION",
    "HASHES_FILE",
    "META_FILE",
    "OFFSETS_FILE",
    "TOKENS_FILE",
    "TokenizedCorpus",
    "document_hash",
    "document_token_ids",
    "tokenize_corpus",
    "tokenize_split_corpus",
    "tokenizer_fingerprint",
    "utf8",
]

FORMAT_VERSION = 1
TOKENS_FILE, OFFSETS_FILE, META_FILE = "tokens.bin", "doc_offsets.npy", "meta.json"
BYTES_FILE, HASHES_FILE = "doc_bytes.npy", "doc_hashes.npy"  # validation corpora only


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
        self._tokens = open(folder / TOKENS_FILE, "wb")
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
        np.save(self.folder / OFFSETS_FILE, offsets)
        if self.doc_bytes is not None:
            np.save(self.folder / BYTES_FILE, np.frombuffer(self.doc_bytes, dtype=np.int64))
            np.save(self.folder / HASHES_FILE, np.frombuffer(self.doc_hashes, dtype=np.uint64))
        meta = {
            "format_version": FORMAT_VERSION,
            "num_documents": len(self.lengths),
            "num_tokens": int(self.num_tokens),
            "dtype": np.dtype(self.dtype).name,
            **meta,
        }
        (self.folder / META_FILE).write_text(json.dumps(meta, indent=2))


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
    empty_errors: dict[str, str | None],
    batch_size: int = 1000,
    description: str = "",
    extra_meta: dict | None = None,
) -> dict[str, TokenizedCorpus | None]:
    """Tokenize `texts` in one pass into one corpus per part, `output_dir/<part>/`, all renamed into place at once.

    `route(document_hash(text))` names the part of each document, or None to leave it out (counted in each part's
    meta as `excluded_documents`). `parts` maps each part to whether it keeps document info (bytes, hashes); a part
    that gets no document raises `ValueError(empty_errors[part])` and nothing is cached, unless its error is None:
    then the part is written empty and returned as None (a token shard of a task may hold no validation document).
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
            if not writer.lengths and empty_errors[part] is not None:
                raise ValueError(empty_errors[part])
        for part, writer in writers.items():
            meta = {**_tokenizer_meta(tokenizer), "source": description, "part": part, **(extra_meta or {})}
            writer.finish({**meta, "excluded_documents": excluded})
    # an empty token file cannot be memory-mapped: an empty part is on disk, but not loaded
    return {part: TokenizedCorpus.load(output_dir / part) if writers[part].lengths else None for part in parts}


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
        meta_file = path / META_FILE
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path} is not a tokenized corpus (no {META_FILE})")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: tokenized corpus format {meta.get('format_version')}, expected {FORMAT_VERSION}"
            )
        tokens = np.memmap(path / TOKENS_FILE, dtype=np.dtype(meta["dtype"]), mode="r")
        offsets = np.load(path / OFFSETS_FILE, mmap_mode="r")
        if len(tokens) != meta["num_tokens"] or offsets[-1] != meta["num_tokens"]:
            raise ValueError(f"{path}: token file and offsets disagree with meta.json (corrupt corpus?)")
        info = [np.load(path / name) if (path / name).is_file() else None for name in (BYTES_FILE, HASHES_FILE)]
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
