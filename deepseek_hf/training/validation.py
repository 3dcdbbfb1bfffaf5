"""Held-out validation for pretraining: a split that depends only on each document's text, and its loss and
bits-per-byte.

Decided here once:

* **The split.** A document is a validation document iff `document_hash(text)` (the first 8 bytes of BLAKE2b over
  its UTF-8 bytes, as an unsigned integer) is below `validation_fraction * 2**64`. The rule reads nothing but the
  text, so the split is the same for any sharding of the corpus into files, any document order and any number of
  processes, and exact duplicates of a validation document are validation documents too (none leaks into
  training). The corpus is tokenized once, in one pass, into `train/` and `validation/` parts of one cache folder
  whose key holds the rule and the fraction. With `validation_path` instead, that source is the validation set
  (whole), and training leaves out any document whose text is identical to one of it (counted in the train meta as
  `excluded_documents`). Token shards (`deepseek-hf data tokenize`) keep no text: they are split by the same rule
  when tokenized (its `validation_fraction`), and a run on them must ask for the same fraction.
* **The subset.** At most `max_validation_tokens` predicted tokens are scored: the validation documents are taken
  in the order of their hash (again independent of the corpus order) while the running total stays within the
  bound; whole documents only (the first one is taken even if it alone is larger).
* **What is scored.** Every document is scored on its own: its tokens (BOS as the tokenizer adds it, the text, the
  EOS that training appends) are cut into windows of at most `seq_length` tokens that overlap by one token, so that
  every token after the first is predicted exactly once, from the document's own preceding tokens within its
  window; the first token of each window is context only. Windows are packed into rows with position ids that
  restart at each window (the block-diagonal attention of training: windows never see each other) and the rest of
  a row is padding without targets. The predicted tokens of a document are its text tokens and its EOS (the
  model pays for ending the document, as it learned to); the BOS has no prediction and no bytes. The bytes are
  the UTF-8 bytes of the document's text, all of them. So `eval_loss` is the mean negative log-likelihood per
  predicted token (nats) and `eval_bits_per_byte = (summed NLL / ln 2) / bytes`, comparable across tokenizers.
  (A tokenizer that adds no BOS leaves each document's first text token unpredicted while its bytes still count;
  that is logged.)
* **Memory.** The model's fused chunked linear + cross-entropy gives the summed NLL of a batch
  (`num_items_in_batch=1`, `skip_logits=True`), so no `[batch, seq, vocab]` float32 logits exist; other models go
  through transformers' standard loss with the same sum.
* **Processes.** Each process scores rows `rank, rank + world_size, ...` (no row twice; a share one row short is
  topped up with a row without targets, so every process runs the same batches, as FSDP needs), and the sums are
  added across processes.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils import batched
from .annealing import AnnealedDataset, build_anneal_datasets, parse_anneal_sources
from .corpus import META_FILE, TokenizedCorpus, tokenize_split_corpus, tokenizer_fingerprint
from .packing import (
    IGNORE_INDEX,
    PackedDataset,
    _missing_ancestors,
    build_packed_dataset,
    dataset_path_exists,
    iter_texts,
    load_documents,
    source_fingerprint,
)
from .shards import ShardedTokenizedCorpus, is_token_shards, read_manifest

__all__ = [
    "SPLIT_RULE",
    "ValidationDataset",
    "ValidationResult",
    "build_pretraining_datasets",
    "check_validation_settings",
    "score_validation",
    "validation_threshold",
]

logger = logging.getLogger(__name__)

SPLIT_RULE = "blake2b64"  # the split rule's name in cache keys and metadata; change it when the rule changes
_HASH_SPACE = 2**64


def validation_threshold(fraction: float) -> int:
    """Documents whose `document_hash` is below this integer are validation documents."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    return int(fraction * _HASH_SPACE)


def check_validation_settings(data_args, training_args) -> None:
    """Settings that cannot work together, before any document is read: periodic evaluation without a split, a
    validation_path that does not exist."""
    has_validation = bool(data_args.validation_fraction) or data_args.validation_path is not None
    strategy = str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy))
    if strategy != "no" and not has_validation:
        raise ValueError(
            f"eval_strategy {strategy!r} needs a validation set: set validation_fraction (e.g. 0.01) or "
            "validation_path"
        )
    if data_args.validation_path is not None and not dataset_path_exists(data_args.validation_path):
        raise FileNotFoundError(f"validation_path {data_args.validation_path!r} does not exist")
    if has_validation and data_args.dataset_path and is_token_shards(data_args.dataset_path):
        _check_shard_split(data_args.dataset_path, data_args.validation_fraction, data_args.validation_path)


def _check_shard_split(path: str, fraction: float, validation_path) -> None:
    """Token shards keep no text, so their split is made when tokenizing (`deepseek-hf data tokenize` with
    `validation_fraction`): the run must ask for that very fraction."""
    if validation_path is not None:
        raise ValueError(
            f"dataset_path {path!r} holds token shards (`deepseek-hf data tokenize`), which keep no text: leaving "
            "validation_path's documents out of training needs the documents. Tokenize with validation_fraction "
            "instead (its validation shards are scored), or train on the documents"
        )
    tokenized = float(read_manifest(path)[1].get("validation_fraction", 0.0))  # the manifest alone: no shard opened
    if tokenized != fraction:
        remedy = (
            f"set validation_fraction: {tokenized} (the split the shards hold)"
            if tokenized
            else "set validation_fraction 0"
        )
        raise ValueError(
            f"dataset_path {path!r} holds token shards tokenized with validation_fraction {tokenized}, and this run "
            f"asks for {fraction}; token shards keep no text to split again: {remedy}, or tokenize again with "
            f"validation_fraction: {fraction} (`deepseek-hf data tokenize`)"
        )


# ----------------------------------------------------------------------------------------------------------------
# Building the train and validation data
# ----------------------------------------------------------------------------------------------------------------
def build_pretraining_datasets(
    source: str | os.PathLike,
    tokenizer,
    seq_length: int,
    cache_dir: str | os.PathLike,
    *,
    text_field: str = "text",
    split: str = "train",
    validation_fraction: float = 0.0,
    validation_path: str | os.PathLike | None = None,
    max_validation_tokens: int | None = None,
    batch_size: int = 1000,
    anneal_sources: list | None = None,
    anneal_seed: int = 0,
) -> tuple[PackedDataset | AnnealedDataset, ValidationDataset | None]:
    """The packed training rows of `source` and the validation set (None without a fraction or path).

    With `anneal_sources` (`deepseek_hf.training.annealing`: parsed `AnnealSource`s or their mappings), the
    training rows are an `AnnealedDataset` of the corpus and the added sources (validation: the corpus's only).

    Without validation this is `build_packed_dataset` (the same cache). With `validation_fraction`, `source` is
    split by `document_hash` (module docstring); with `validation_path`, that source is the validation set and its
    documents are left out of training. Both are cached under `cache_dir`, keyed by sources, tokenizer, text field
    and split rule; `max_validation_tokens` only selects from the cache.
    """
    train, validation = _build_main_datasets(
        source,
        tokenizer,
        seq_length,
        cache_dir,
        text_field=text_field,
        split=split,
        validation_fraction=validation_fraction,
        validation_path=validation_path,
        max_validation_tokens=max_validation_tokens,
        batch_size=batch_size,
    )
    if anneal_sources:
        sources = parse_anneal_sources(anneal_sources)
        added = build_anneal_datasets(sources, tokenizer, seq_length, cache_dir, split=split)
        train = AnnealedDataset(train, sources, added, seed=anneal_seed, main_path=os.fspath(source))
    return train, validation


def _build_main_datasets(
    source, tokenizer, seq_length, cache_dir, *, text_field, split, validation_fraction, validation_path,
    max_validation_tokens, batch_size,
) -> tuple[PackedDataset, ValidationDataset | None]:  # fmt: skip
    if validation_fraction and validation_path is not None:
        raise ValueError("give validation_fraction or validation_path, not both")
    if not validation_fraction and validation_path is None:
        return build_packed_dataset(
            source, tokenizer, seq_length, cache_dir, text_field=text_field, split=split, batch_size=batch_size
        ), None
    source = os.fspath(source)
    if is_token_shards(source):  # split when tokenized: its training shards and validation shards
        _check_shard_split(source, validation_fraction, validation_path)
        validation_corpus = ShardedTokenizedCorpus.load(source, part="validation")
        validation_corpus.check_tokenizer(tokenizer)
        train = build_packed_dataset(source, tokenizer, seq_length, cache_dir)
        return train, ValidationDataset(validation_corpus, seq_length, max_tokens=max_validation_tokens)
    tokenizer_key = tokenizer_fingerprint(tokenizer)
    base = f"{source_fingerprint(source)}-{tokenizer_key}-{text_field}"

    def tokenize(path, folder, route, parts, empty_errors, meta):
        stats = dict(meta)  # iter_texts adds its counts while the documents stream; written at the end
        return tokenize_split_corpus(
            iter_texts(load_documents(path, split=split), text_field, stats),
            tokenizer,
            folder,
            route,
            parts=parts,
            empty_errors=empty_errors,
            batch_size=batch_size,
            description=path,
            extra_meta=stats,
        )

    if validation_path is None:
        threshold = validation_threshold(validation_fraction)
        folder = Path(cache_dir) / f"{base}-split-{SPLIT_RULE}-{validation_fraction!r}"
        with _cache_guard(folder):
            parts = _load_parts(folder, ("train", "validation")) or tokenize(
                source,
                folder,
                lambda digest: "validation" if digest < threshold else "train",
                {"train": False, "validation": True},
                {
                    "train": f"validation_fraction={validation_fraction} left no document of {source} for training",
                    "validation": f"validation_fraction={validation_fraction} put none of the documents of {source} "
                    "in the validation split: raise it (to about 1 / the number of documents or more) or give "
                    "validation_path",
                },
                {"split_rule": f"{SPLIT_RULE} < {validation_fraction!r} * 2**64"},
            )
        train_corpus, validation_corpus = parts["train"], parts["validation"]
    else:
        validation_path = os.fspath(validation_path)
        validation_key = f"{source_fingerprint(validation_path)}-{tokenizer_key}-{text_field}"
        folder = Path(cache_dir) / f"{validation_key}-validation"
        with _cache_guard(folder):
            validation_corpus = (
                _load_parts(folder, ("validation",))
                or tokenize(
                    validation_path,
                    folder,
                    lambda digest: "validation",
                    {"validation": True},
                    {"validation": f"validation_path {validation_path} holds no document with text"},
                    {"split_rule": "validation_path"},
                )
            )["validation"]
        held_out = {int(digest) for digest in validation_corpus.doc_hashes}
        folder = Path(cache_dir) / f"{base}-minus-{validation_key}-{SPLIT_RULE}"
        with _cache_guard(folder):
            train_corpus = (
                _load_parts(folder, ("train",))
                or tokenize(
                    source,
                    folder,
                    lambda digest: None if digest in held_out else "train",
                    {"train": False},
                    {"train": f"every document of {source} is also in validation_path {validation_path}"},
                    {"split_rule": f"{SPLIT_RULE} not in the documents of validation_path {validation_path}"},
                )
            )["train"]
        if train_corpus.meta.get("excluded_documents"):
            logger.info(
                "Left out of training: %d documents identical to validation documents of %s",
                train_corpus.meta["excluded_documents"],
                validation_path,
            )
    return PackedDataset(train_corpus, seq_length), ValidationDataset(
        validation_corpus, seq_length, max_tokens=max_validation_tokens
    )


def _load_parts(folder: Path, parts: Iterable[str]) -> dict[str, TokenizedCorpus] | None:
    if all((folder / part / META_FILE).is_file() for part in parts):
        logger.info("Reusing the tokenized corpus %s", folder)
        return {part: TokenizedCorpus.load(folder / part) for part in parts}
    return None


@contextmanager
def _cache_guard(folder: Path):
    """Removes the cache folders that a failed tokenization created (as `build_packed_dataset` does)."""
    created = _missing_ancestors(folder.parent)
    try:
        yield
    except BaseException:
        for path in created:
            try:
                path.rmdir()
            except OSError:
                break
        raise


# ----------------------------------------------------------------------------------------------------------------
# The validation rows
# ----------------------------------------------------------------------------------------------------------------
class ValidationDataset(Dataset):
    """The validation documents as packed rows of `seq_length` tokens in which every token after a document's first
    is a target exactly once (module docstring). Rows hold `input_ids`, `position_ids` and `labels`.

    `corpus` must hold document info (bytes and hashes: a corpus tokenized with `document_info=True`, as
    `build_pretraining_datasets` does).
    """

    def __init__(self, corpus: TokenizedCorpus | str | os.PathLike, seq_length: int, max_tokens: int | None = None):
        if seq_length < 2:
            raise ValueError(f"seq_length must be at least 2, got {seq_length}")
        if max_tokens is not None and max_tokens <= 0:
            raise ValueError(f"max_validation_tokens must be positive, got {max_tokens}")
        self.corpus = corpus if isinstance(corpus, TokenizedCorpus) else TokenizedCorpus.load(corpus)
        if self.corpus.doc_bytes is None or self.corpus.doc_hashes is None:
            raise ValueError(f"{self.corpus.path} has no document bytes / hashes: not a validation corpus")
        self.seq_length = int(seq_length)
        offsets = np.asarray(self.corpus.doc_offsets)
        predicted = np.diff(offsets) - 1  # every token after the first
        order = np.argsort(np.asarray(self.corpus.doc_hashes), kind="stable")
        if max_tokens is not None:
            cumulative = np.cumsum(predicted[order])
            order = order[: max(1, int(np.searchsorted(cumulative, max_tokens, side="right")))]
        self.documents = order  # corpus indices, in hash order
        self.available_documents = self.corpus.num_documents
        self.num_tokens = int(predicted[order].sum())  # predicted tokens
        self.num_bytes = int(np.asarray(self.corpus.doc_bytes)[order].sum())
        self.pad_token_id = int(self.corpus.meta.get("eos_token_id") or 0)
        bos = self.corpus.meta.get("bos_token_id")
        first = np.asarray(self.corpus.tokens[offsets[order]], dtype=np.int64)
        self.starts_with_bos = bos is not None and bool((first == bos).all())
        if not self.starts_with_bos:
            logger.warning(
                "Validation documents do not all start with a BOS token: their first text token is not scored, "
                "though its bytes count in bits-per-byte"
            )
        self._rows = self._pack(offsets[order], offsets[order + 1])

    def _pack(self, starts: np.ndarray, stops: np.ndarray) -> list[list[tuple[int, int]]]:
        """(corpus start, length) of the windows of each row: consecutive windows of a document overlap by one."""
        rows: list[list[tuple[int, int]]] = [[]]
        fill, step = 0, self.seq_length - 1
        for start, stop in zip(starts.tolist(), stops.tolist()):
            for window in range(start, stop - 1, step):
                length = min(self.seq_length, stop - window)
                if fill + length > self.seq_length:
                    rows.append([])
                    fill = 0
                rows[-1].append((window, length))
                fill += length
        return rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} out of range for {len(self)} rows")
        length = self.seq_length
        input_ids = np.full(length, self.pad_token_id, dtype=np.int64)
        position_ids = np.empty(length, dtype=np.int64)
        labels = np.full(length, IGNORE_INDEX, dtype=np.int64)
        at = 0
        for start, size in self._rows[index]:
            window = np.asarray(self.corpus.tokens[start : start + size], dtype=np.int64)
            input_ids[at : at + size] = window
            position_ids[at : at + size] = np.arange(size)
            labels[at + 1 : at + size] = window[1:]
            at += size
        position_ids[at:] = np.arange(length - at)  # padding: a block of its own, without targets
        return {
            "input_ids": torch.from_numpy(input_ids),
            "position_ids": torch.from_numpy(position_ids),
            "labels": torch.from_numpy(labels),
        }

    def blank_row(self) -> dict[str, torch.Tensor]:
        """A row of padding without targets (it adds nothing to the sums)."""
        length = self.seq_length
        return {
            "input_ids": torch.full((length,), self.pad_token_id, dtype=torch.long),
            "position_ids": torch.arange(length),
            "labels": torch.full((length,), IGNORE_INDEX, dtype=torch.long),
        }

    def stats(self) -> dict[str, Any]:
        return {
            "documents": len(self.documents),
            "documents_in_split": self.available_documents,
            "predicted_tokens": self.num_tokens,
            "bytes": self.num_bytes,
            "rows": len(self),
            "seq_length": self.seq_length,
        }


# ----------------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationResult:
    """Summed negative log-likelihood (nats) of `tokens` predicted tokens whose documents' text is `bytes` bytes."""

    nll: float
    tokens: int
    bytes: int

    @property
    def loss(self) -> float:
        """Mean NLL per predicted token, in nats (what the training loss measures)."""
        return self.nll / self.tokens

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.bytes

    def metrics(self, prefix: str = "eval") -> dict[str, float | int]:
        return {
            f"{prefix}_loss": self.loss,
            f"{prefix}_bits_per_byte": self.bits_per_byte,
            f"{prefix}_tokens": self.tokens,
            f"{prefix}_bytes": self.bytes,
        }


@torch.no_grad()
def score_validation(
    model,
    dataset: ValidationDataset,
    *,
    batch_size: int = 8,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str | None = None,
) -> tuple[float, int]:
    """`(summed NLL in nats, predicted tokens)` of this process's rows (`rank::world_size`) of `dataset`.

    Add the pairs of all processes and divide by `dataset.num_tokens` / `num_bytes` (`ValidationResult`). Every
    process runs the same number of batches of the same shape (a share one row short gets a row without targets):
    under FSDP or ZeRO-3 each forward is a collective, and an extra one on one process would hang the others.
    """
    base = getattr(model, "module", model)
    accepts_skip = "skip_logits" in inspect.signature(base.forward).parameters
    extra = {"skip_logits": True} if accepts_skip else {}
    device = torch.device(device) if device is not None else next(base.parameters()).device
    was_training = model.training
    model.eval()
    nll = torch.zeros((), dtype=torch.float64, device=device)
    tokens = 0
    try:
        share = list(range(rank, len(dataset), world_size))
        share += [None] * (math.ceil(len(dataset) / world_size) - len(share))
        for indices in batched(share, batch_size):
            rows = [dataset.blank_row() if i is None else dataset[i] for i in indices]
            batch = {key: torch.stack([row[key] for row in rows]).to(device) for key in rows[0]}
            output = model(**batch, num_items_in_batch=1, **extra)  # the sum over the batch's targets
            nll += output.loss.detach().to(torch.float64)
            tokens += int((batch["labels"] != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return float(nll), tokens
