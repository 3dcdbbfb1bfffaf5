"""Many token shards (`deepseek-hf data tokenize`) read as one `TokenizedCorpus`, memory-mapped.

`deepseek_hf.data.tokenize` writes one shard per task (each a `TokenizedCorpus` folder: `tokens.bin`,
`doc_offsets.npy`, `meta.json`), a global `doc_offsets.npy` and, last, `manifest.json`. `ShardedTokenizedCorpus`
is a `TokenizedCorpus` (a subclass: `PackedDataset` takes it as it is) whose `tokens` is a view over the shards'
memory maps in task order: `tokens[start:stop]` returns one numpy array even across a shard boundary, and nothing
is read before it is sliced. The shard order is the task order and the tasks hold consecutive input files, so the
corpus is token for token the one `tokenize_corpus` writes in one process, and its packed rows are the same.

```python
from deepseek_hf.training.packing import PackedDataset
from deepseek_hf.training.shards import load_tokenized_corpus
ds = PackedDataset(load_tokenized_corpus("outputs/tokens"), seq_length=4096)   # a shard folder or one corpus
```

A tokenization with `validation_fraction` holds two parts: `load(path)` is its training part, and
`load(path, part="validation")` its validation shards, with each document's bytes and hash as a validation corpus
of the pretraining recipe has them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .corpus import FORMAT_VERSION, META_FILE, OFFSETS_FILE, TokenizedCorpus, tokenizer_fingerprint

__all__ = [
    "MANIFEST_FILE",
    "ConcatenatedTokens",
    "ShardedTokenizedCorpus",
    "is_token_shards",
    "load_tokenized_corpus",
    "read_manifest",
]

MANIFEST_FILE = "manifest.json"  # deepseek_hf.data.tokenize.MANIFEST_FILE (not imported: that loads datatrove)
TRAIN_PART, VALIDATION_PART = "train", "validation"  # ditto: the parts of a tokenization with validation_fraction
MANIFEST_FORMAT = "deepseek_hf token shards"


class ConcatenatedTokens:
    """Several 1-D token arrays (memory maps) as one: `len()`, `[i]`, `[start:stop]` and `[positions]` (an integer
    array) -> a numpy array."""

    def __init__(self, parts: list[np.ndarray], dtype: np.dtype):
        self.parts = [part for part in parts if len(part)]
        self.dtype = np.dtype(dtype)
        self.starts = np.zeros(len(self.parts) + 1, dtype=np.int64)
        np.cumsum([len(part) for part in self.parts], out=self.starts[1:])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self[start:stop][::step]
            if stop <= start:
                return np.empty(0, dtype=self.dtype)
            first = int(np.searchsorted(self.starts, start, side="right")) - 1
            last = int(np.searchsorted(self.starts, stop, side="left"))  # parts[first:last] overlap the slice
            pieces = [
                self.parts[i][max(start - self.starts[i], 0) : min(stop, self.starts[i + 1]) - self.starts[i]]
                for i in range(first, last)
            ]
            return np.array(pieces[0]) if len(pieces) == 1 else np.concatenate(pieces)
        if isinstance(index, np.ndarray) or isinstance(index, list):  # integer positions, gathered part by part
            positions = np.asarray(index, dtype=np.int64)
            if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
                raise IndexError(f"token positions out of range for {len(self)} tokens")
            positions = positions % max(len(self), 1)
            parts = np.searchsorted(self.starts, positions, side="right") - 1
            out = np.empty(positions.shape, dtype=self.dtype)
            for part in np.unique(parts):
                where = parts == part
                out[where] = self.parts[part][positions[where] - self.starts[part]]
            return out
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"token {index} out of range for {len(self)} tokens")
        index %= len(self)
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part][index - self.starts[part]]

    def __array__(self, dtype=None, copy=None):
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


@dataclass
class ShardedTokenizedCorpus(TokenizedCorpus):
    """The token shards listed in a `manifest.json`, as one corpus; `meta` is the manifest."""

    shards: list[TokenizedCorpus] = field(default_factory=list)
    part: str = TRAIN_PART

    @classmethod
    def load(cls, path: str | os.PathLike, part: str = TRAIN_PART) -> ShardedTokenizedCorpus:
        """The training documents (every document of an unsplit tokenization), or with `part="validation"` the
        validation shards of a tokenization with `validation_fraction` (with each document's bytes and hash)."""
        root, meta = read_manifest(path)
        listing = meta
        if part == VALIDATION_PART:
            if VALIDATION_PART not in meta:
                raise ValueError(
                    f"{root} holds no validation shards: it was tokenized without validation_fraction (tokenize it "
                    "again with the validation_fraction of the run)"
                )
            listing = meta[VALIDATION_PART]
        elif part != TRAIN_PART:
            raise ValueError(f"part must be {TRAIN_PART!r} or {VALIDATION_PART!r}, got {part!r}")
        shards = []
        for entry in listing["shards"]:
            if entry["num_tokens"] == 0:  # a task without documents: nothing to memory-map
                continue
            shard = TokenizedCorpus.load(root / entry["path"])
            if shard.num_tokens != entry["num_tokens"] or shard.meta["dtype"] != meta["dtype"]:
                raise ValueError(f"{root / entry['path']}: disagrees with {root / MANIFEST_FILE} (corrupt shard?)")
            shards.append(shard)
        tokens = ConcatenatedTokens([s.tokens for s in shards], np.dtype(meta["dtype"]))
        offsets = np.load(root / listing.get("doc_offsets", OFFSETS_FILE), mmap_mode="r")
        if (
            len(tokens) != listing["num_tokens"]
            or len(offsets) != listing["num_documents"] + 1
            or offsets[-1] != len(tokens)
        ):
            raise ValueError(f"{root}: {part} shards and offsets disagree with {MANIFEST_FILE} (corrupt corpus?)")
        info = {}
        if part == VALIDATION_PART:  # bits-per-byte and the hash-ordered subset need them; a small share of a corpus
            if any(s.doc_bytes is None or s.doc_hashes is None for s in shards):
                raise ValueError(f"{root}: a validation shard lacks its document bytes / hashes (corrupt corpus?)")
            info = {
                "doc_bytes": np.concatenate([s.doc_bytes for s in shards]),
                "doc_hashes": np.concatenate([s.doc_hashes for s in shards]),
            }
        meta = {**meta, **listing, "part": part} if part == VALIDATION_PART else meta
        return cls(path=root, tokens=tokens, doc_offsets=offsets, meta=meta, shards=shards, part=part, **info)

    @property
    def validation_fraction(self) -> float:
        """The fraction held out into validation shards when this corpus was tokenized (0: none)."""
        return float(self.meta.get("validation_fraction", 0.0))

    def __reduce__(self):
        # as TokenizedCorpus: pickled as its path, so DataLoader workers memory-map the shards themselves
        return (ShardedTokenizedCorpus.load, (self.path, self.part))

    def check_tokenizer(self, tokenizer) -> None:
        """Raise `ValueError` unless `tokenizer` is the one the shards were tokenized with."""
        found, expected = tokenizer_fingerprint(tokenizer), self.meta.get("tokenizer_fingerprint")
        if found != expected:
            raise ValueError(
                f"{self.path} was tokenized with another tokenizer (fingerprint {expected}, this one {found}: "
                f"{self.meta.get('tokenizer')}); tokenize again or train with that tokenizer"
            )


def read_manifest(path: str | os.PathLike) -> tuple[Path, dict]:
    """The shard folder and its checked `manifest.json` (no shard is opened): what a check before loading needs."""
    path = Path(path)
    root = path.parent if path.name == MANIFEST_FILE else path
    manifest_file = root / MANIFEST_FILE
    if not manifest_file.is_file():
        hint = " (a tokenization that has not finished: run it again to resume)" if root.is_dir() else ""
        raise FileNotFoundError(f"{root} holds no token shards: {manifest_file} is missing{hint}")
    meta = json.loads(manifest_file.read_text())
    if meta.get("format") != MANIFEST_FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_file}: not a token-shard manifest of format version {FORMAT_VERSION} "
            f"(format {meta.get('format')!r}, version {meta.get('format_version')!r})"
        )
    return root, meta


def is_token_shards(path: str | os.PathLike) -> bool:
    """Whether `path` is a token-shard folder (or its manifest), finished or not."""
    path = Path(path)
    return path.name == MANIFEST_FILE or (path / MANIFEST_FILE).is_file() or (path / "tokenize.json").is_file()


def load_tokenized_corpus(path: str | os.PathLike) -> TokenizedCorpus:
    """A token-shard folder (`manifest.json`) as a `ShardedTokenizedCorpus`, else a single `TokenizedCorpus`."""
    if is_token_shards(path):
        return ShardedTokenizedCorpus.load(path)
    if not (Path(path) / META_FILE).is_file():
        raise FileNotFoundError(
            f"{path} is neither a tokenized corpus ({META_FILE}) nor token shards ({MANIFEST_FILE})"
        )
    return TokenizedCorpus.load(path)
