"""Near-dedup quality against exact ground truth: precision and recall of the MinHash stage on real text.

Ground truth: every pair of documents whose shingle sets (the pipeline's own `DedupSignature.get_shingles`) have
Jaccard similarity >= `threshold`, found *exactly* with AllPairs prefix filtering (a pair with J >= t shares an
element among the first |A| - ceil(t |A|) + 1 elements of each set in a global rare-first order), so no O(n^2) scan.
Flagged pairs: pairs that share at least one LSH band of the pipeline's signatures and pass the pipeline's
verification (fraction of equal MinHash values >= `DedupConfig.threshold`). Documents too short for one shingle
are left to exact dedup and excluded from both sets. A ratio with nothing to count (no flagged pair for precision,
no true pair for recall) is `None`, not a perfect score; no documents at all is an error.

>>> from deepseek_hf.data.config import DedupConfig
>>> q = evaluate_near_dedup(["床前明月光疑是地上霜", "床前明月光疑是地上霜", "举头望明月低头思故乡"], DedupConfig())
>>> (q.true_pairs, q.flagged_pairs, q.recall)
(1, 1, 1.0)
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
import time
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np

from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup import DedupSignature, minhash_config
from deepseek_hf.data.errors import InputError, InputNotFoundError


@dataclass
class TextFile:
    """The texts of a JSONL(.gz) file, and the records that gave none: reason -> 1-based line numbers."""

    path: str
    texts: list[str]
    skipped: dict[str, list[int]]

    def describe_skipped(self, first: int = 5) -> str:
        """`missing_text: 2 (lines 1, 4), ...` for messages."""
        parts = []
        for reason, lines in self.skipped.items():
            shown = ", ".join(map(str, lines[:first])) + (", ..." if len(lines) > first else "")
            parts.append(f"{reason}: {len(lines)} (line{'s' if len(lines) > 1 else ''} {shown})")
        return "; ".join(parts)


def read_texts(path: str, text_key: str = "text", limit: int = -1) -> TextFile:
    """The `text_key` field of each JSON line (a list of strings joined by newlines); an unusable record is skipped
    and recorded by reason (the pipeline's names: malformed_json, not_a_json_object, missing_text, bad_text_type,
    invalid_utf8, corrupt_file), so a caller can report it by file and line."""
    result = TextFile(path, [], {})
    opener = gzip.open if path.endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except FileNotFoundError as e:
        raise InputNotFoundError(f"{path}: no such file") from e
    line_no = 0
    with f:
        try:
            for line_no, raw in enumerate(f, 1):
                if 0 <= limit <= len(result.texts):
                    break
                if not raw.strip():
                    continue
                reason, text = _record_text(raw, text_key)
                if reason:
                    result.skipped.setdefault(reason, []).append(line_no)
                else:
                    result.texts.append(text)
        except (EOFError, OSError, zlib.error):  # truncated / corrupt compressed file: keep what was read
            result.skipped["corrupt_file"] = [line_no + 1]
    return result


def _record_text(raw: bytes, text_key: str) -> tuple[str | None, str | None]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "invalid_utf8", None
    except json.JSONDecodeError:
        return "malformed_json", None
    if not isinstance(record, dict):
        return "not_a_json_object", None
    value = record.get(text_key)
    if value is None:
        return "missing_text", None
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return None, "\n".join(value)
    return (None, value) if isinstance(value, str) else ("bad_text_type", None)


def make_signer(config: DedupConfig) -> DedupSignature:
    """A `DedupSignature` for in-memory use (its output folder is never written to here)."""
    return DedupSignature(tempfile.gettempdir(), minhash_config(config), scope="global")


def shingle_sets(texts: list[str], signer: DedupSignature) -> list[np.ndarray]:
    return [np.unique(signer.get_shingles(text).ravel()) for text in texts]


def similar_pairs(sets: list[np.ndarray], threshold: float) -> dict[tuple[int, int], float]:
    """Every pair (i < j) of non-empty sets with Jaccard >= threshold, and its Jaccard (exact)."""
    frequency: dict[int, int] = defaultdict(int)
    for s in sets:
        for x in s.tolist():
            frequency[x] += 1
    python_sets = [set(s.tolist()) for s in sets]
    index: dict[int, list[int]] = defaultdict(list)
    pairs: dict[tuple[int, int], float] = {}
    for i in sorted(range(len(sets)), key=lambda k: len(sets[k])):
        size = len(python_sets[i])
        if size == 0:
            continue
        ordered = sorted(python_sets[i], key=lambda x: (frequency[x], x))
        prefix = ordered[: size - math.ceil(threshold * size - 1e-12) + 1]
        candidates = {j for x in prefix for j in index[x]}
        for j in candidates:
            inter = len(python_sets[i] & python_sets[j])
            jaccard = inter / (size + len(python_sets[j]) - inter)
            if jaccard >= threshold:
                pairs[(min(i, j), max(i, j))] = jaccard
        for x in prefix:
            index[x].append(i)
    return pairs


def lsh_candidate_pairs(
    signatures: np.ndarray, num_buckets: int, rows: int, valid: np.ndarray
) -> set[tuple[int, int]]:
    """Pairs of documents equal on at least one band of `rows` consecutive MinHash values."""
    candidates: set[tuple[int, int]] = set()
    ids = np.flatnonzero(valid)
    for b in range(num_buckets):
        band = np.ascontiguousarray(signatures[ids, b * rows : (b + 1) * rows])
        _, inverse, counts = np.unique(band, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        for group in np.flatnonzero(counts > 1).tolist():
            members = ids[inverse == group].tolist()
            candidates.update(combinations(sorted(members), 2))
    return candidates


@dataclass
class DedupQuality:
    threshold: float
    documents: int
    documents_with_shingles: int
    true_pairs: int
    flagged_pairs: int
    true_positives: int
    precision: float | None
    recall: float | None
    lsh_candidate_pairs: int
    lsh_precision: float | None
    lsh_recall: float | None
    identical_pairs: int
    identical_pairs_flagged: int
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def evaluate_near_dedup(texts: list[str], config: DedupConfig, threshold: float = 0.8) -> DedupQuality:
    """Precision / recall of the MinHash stage (LSH + verification) for pairs with exact Jaccard >= threshold."""
    if not texts:
        raise InputError("no documents to evaluate")
    signer = make_signer(config)
    clock = {}
    start = time.perf_counter()
    sets = shingle_sets(texts, signer)
    clock["shingles"] = time.perf_counter() - start

    start = time.perf_counter()
    truth = similar_pairs(sets, threshold)
    clock["ground_truth"] = time.perf_counter() - start

    start = time.perf_counter()
    valid = np.array([len(s) > 0 for s in sets])
    k = config.num_buckets * config.hashes_per_bucket
    signatures = np.zeros((len(texts), k), dtype=signer.config.hash_config.np_dtype)
    shingled = np.flatnonzero(valid)
    if len(shingled):
        signatures[shingled] = signer.signatures([sets[i].reshape(-1, 1) for i in shingled])
    candidates = lsh_candidate_pairs(signatures, config.num_buckets, config.hashes_per_bucket, valid)
    if config.threshold > 0:
        flagged = {(i, j) for i, j in candidates if (signatures[i] == signatures[j]).mean() >= config.threshold}
    else:
        flagged = candidates
    clock["minhash"] = time.perf_counter() - start

    true_set = set(truth)
    identical = {p for p, j in truth.items() if j >= 1.0}
    tp = len(flagged & true_set)
    lsh_tp = len(candidates & true_set)
    return DedupQuality(
        threshold=threshold,
        documents=len(texts),
        documents_with_shingles=int(valid.sum()),
        true_pairs=len(true_set),
        flagged_pairs=len(flagged),
        true_positives=tp,
        precision=_ratio(tp, len(flagged)),
        recall=_ratio(tp, len(true_set)),
        lsh_candidate_pairs=len(candidates),
        lsh_precision=_ratio(lsh_tp, len(candidates)),
        lsh_recall=_ratio(lsh_tp, len(true_set)),
        identical_pairs=len(identical),
        identical_pairs_flagged=len(identical & flagged),
        seconds={k: round(v, 2) for k, v in clock.items()},
    )
