"""An index of the normalized n-grams of benchmark items, and the test of a document against it.

Text is normalized as for dedup (datatrove's `simplify_text`: lower case, punctuation of every script -> space,
whitespace squeezed, diacritics dropped) after Unicode NFKC, which folds full-width letters and digits (`Ａ`, `１`) into
their ASCII forms; digits are kept (a question with other numbers is another question). The units are those of the
dedup shingles (`dedup.shingles.Shingler`, the same as `text.CJKWordTokenizer`): a CJK character or a run of other
word characters. So an n-gram is n Chinese characters or n English words, and whitespace or punctuation changes
leave the n-grams as they were.

A document *hits* an item when it contains at least `min_ngrams` of the item's distinct n-grams and at least
`min_fraction` of them. Counting a fraction of the item (not of the document) is what finds an item copied into a
long document; asking for a fraction, not one n-gram, is what keeps a stock phrase of exam questions ("下列说法正确的是")
from flagging every document that uses it. Items with fewer than `n` units in every field have no n-gram: they cannot
be found, and are counted as such in the report.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

import numpy as np
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.utils.text import TextNormConfig

from deepseek_hf.data.decontam.items import Item, load_items, resolve_data_dir
from deepseek_hf.data.dedup.shingles import Shingler, normalize

NORM = TextNormConfig(norm_numbers=False)
INDEX_FILE, ITEMS_FILE = "ngrams.npz", "items.json"


def prepare(text: str) -> str:
    """NFKC, then datatrove's normalization with digits kept (see the module docstring)."""
    return normalize(unicodedata.normalize("NFKC", text), NORM)


@dataclass(frozen=True)
class Thresholds:
    """When a document hits an item (module docstring); the paper states neither value ("unstated")."""

    min_fraction: float = 0.5
    min_ngrams: int = 1


@dataclass(frozen=True)
class Hit:
    item: int
    """Index of the item in `NGramIndex.items`."""
    matched: int
    """Distinct n-grams of the item found in the document."""
    total: int
    """Distinct n-grams of the item."""


class NGramIndex:
    """Sorted (n-gram hash, item) pairs of every item, plus each item's number of distinct n-grams."""

    def __init__(
        self,
        ngram: int,
        items: list[dict],
        hashes: np.ndarray,
        owners: np.ndarray,
        totals: np.ndarray,
        notes: dict | None = None,
    ):
        self.ngram, self.items, self.notes = ngram, items, notes or {}
        self.hashes, self.owners, self.totals = hashes, owners, totals
        self.shingler = Shingler(ngram)

    @classmethod
    def from_benchmarks(cls, benchmarks: list[str], data_dir: str | None, ngram: int, splits: str = "evaluated"):
        """The index of the benchmarks' items (`items.load_items`); what could not be read is kept in `notes`."""
        loaded = load_items(benchmarks, resolve_data_dir(data_dir), splits)
        index = cls.build(loaded.items, ngram)
        index.notes = {"missing_subjects": loaded.missing_subjects, "duplicate_items": loaded.duplicates}
        return index

    @classmethod
    def build(cls, items: list[Item], ngram: int) -> NGramIndex:
        shingler = Shingler(ngram)
        texts = [prepare(text) for item in items for text in item.fields]
        owner_of_text = np.repeat(np.arange(len(items), dtype=np.int64), [len(item.fields) for item in items])
        hashes, offsets = shingler(texts)
        owners = np.repeat(owner_of_text, np.diff(offsets))
        order = np.lexsort((owners, hashes))
        hashes, owners = hashes[order], owners[order]
        distinct = np.ones(len(hashes), dtype=bool)
        distinct[1:] = (hashes[1:] != hashes[:-1]) | (owners[1:] != owners[:-1])
        hashes, owners = hashes[distinct], owners[distinct]
        totals = np.bincount(owners, minlength=len(items)).astype(np.int64)
        meta = [{"id": item.id, "benchmark": item.benchmark, "text": " | ".join(item.fields)[:160]} for item in items]
        return cls(ngram, meta, hashes, owners.astype(np.int32), totals)

    def match(self, texts: list[str], thresholds: Thresholds) -> list[list[Hit]]:
        """The items each text hits (prepared here), sorted by item."""
        hashes, offsets = self.shingler([prepare(text) for text in texts])
        result: list[list[Hit]] = [[] for _ in texts]
        if not len(hashes) or not len(self.hashes):
            return result
        position = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        found = np.flatnonzero(self.hashes[position] == hashes)
        if not len(found):
            return result
        docs = np.searchsorted(offsets, found, side="right") - 1
        pairs = np.unique(np.stack([docs, hashes[found].view(np.int64)], axis=1), axis=0)  # an n-gram counts once
        doc_of, ngram_hash = pairs[:, 0], np.ascontiguousarray(pairs[:, 1]).view(np.uint64)
        lo = np.searchsorted(self.hashes, ngram_hash, side="left")
        counts = np.searchsorted(self.hashes, ngram_hash, side="right") - lo
        starts = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        doc_item = np.stack([np.repeat(doc_of, counts), self.owners[starts]], axis=1)
        keys, matched = np.unique(doc_item, axis=0, return_counts=True)
        totals = self.totals[keys[:, 1]]
        keep = (matched >= thresholds.min_ngrams) & (matched >= thresholds.min_fraction * totals)
        for (doc, item), m, t in zip(keys[keep].tolist(), matched[keep].tolist(), totals[keep].tolist()):
            result[doc].append(Hit(item, m, t))
        return result

    def save(self, folder: DataFolderLike) -> None:
        """`ngrams.npz` and `items.json`, each written under a temporary name and renamed."""
        folder = get_datafolder(folder)
        folder.makedirs("", exist_ok=True)
        with folder.open(f"{INDEX_FILE}.tmp", "wb") as f:
            np.savez(f, ngram=self.ngram, hashes=self.hashes, owners=self.owners, totals=self.totals)
        folder.mv(f"{INDEX_FILE}.tmp", INDEX_FILE)
        with folder.open(f"{ITEMS_FILE}.tmp", "w") as f:
            json.dump({"items": self.items, "notes": self.notes}, f, ensure_ascii=False)
        folder.mv(f"{ITEMS_FILE}.tmp", ITEMS_FILE)

    @classmethod
    def load(cls, folder: DataFolderLike) -> NGramIndex:
        folder = get_datafolder(folder)
        with folder.open(INDEX_FILE, "rb") as f:
            data = np.load(f)
            arrays = {key: data[key] for key in ("ngram", "hashes", "owners", "totals")}
        with folder.open(ITEMS_FILE) as f:
            meta = json.load(f)
        return cls(
            int(arrays["ngram"]), meta["items"], arrays["hashes"], arrays["owners"], arrays["totals"], meta["notes"]
        )
