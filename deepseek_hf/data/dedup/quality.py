"""Near-dedup quality against exact ground truth: precision and recall of the pipeline's own decisions.

Ground truth: every pair of documents whose shingle sets (the pipeline's own `DedupSignature.shingles`) have
Jaccard similarity >= `threshold`, found *exactly* with AllPairs prefix filtering (a pair with J >= t shares an
element among the first |A| - ceil(t |A|) + 1 elements of each set in a global rare-first order), so no O(n^2) scan.

Decisions: the dedup stages themselves (`DedupSignature` -> `DedupBuckets` for every band and the exact band ->
`DedupClusters` -> `DocDedupFilter`), run in-process on the texts split into `tasks` shards, as executor tasks
would run them. A pair is *flagged* when its two documents end in the same duplicate cluster (the removal lists
name each removed document's kept one); the documents the filter lets through are the output. Banding alone is
the same run with verification off (`threshold` 0). Documents too short for one shingle are left to exact dedup
and excluded from both sets. A ratio with nothing to count (no flagged pair for precision, no true pair for
recall) is `None`, not a perfect score; no documents at all is an error.

>>> from deepseek_hf.data.config import DedupConfig
>>> q = evaluate_near_dedup(["床前明月光疑是地上霜", "床前明月光疑是地上霜", "举头望明月低头思故乡"], DedupConfig())
>>> (q.true_pairs, q.flagged_pairs, q.recall, q.kept_documents)
(1, 1, 1.0, 2)
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
import time
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from datatrove.data import Document
from datatrove.utils.logging import logger

from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup.buckets import DedupBuckets
from deepseek_hf.data.dedup.clusters import DedupClusters, DocDedupFilter
from deepseek_hf.data.dedup.files import REMOVE_DTYPE, minhash_config
from deepseek_hf.data.dedup.signature import DedupSignature
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
    """The set (sorted unique hashes) of shingles of each text, as the pipeline computes them."""
    hashes, offsets = signer.shingles(texts)
    return [np.unique(hashes[a:b]) for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


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


@dataclass
class Decisions:
    """What the dedup stages decided for each document: kept or not, and its cluster (index of the kept one)."""

    kept: np.ndarray
    cluster: np.ndarray
    seconds: float


def run_dedup_stages(texts: list[str], config: DedupConfig, folder: str, tasks: int = 1) -> Decisions:
    """Run the four dedup stages in-process on `texts` (split into `tasks` contiguous shards) in `folder`."""
    mh = minhash_config(config)
    bounds = np.linspace(0, len(texts), tasks + 1).astype(int).tolist()

    def shard(rank: int):
        for i in range(bounds[rank], bounds[rank + 1]):
            yield Document(text=texts[i], id=str(i), metadata={"dump": "d"})

    start = time.perf_counter()
    for rank in range(tasks):
        DedupSignature(f"{folder}/sig", mh, config.scope, config.near).run(shard(rank), rank, tasks)
    buckets = DedupBuckets(f"{folder}/sig", f"{folder}/edges", mh, config.threshold, config.exact, config.near, 1)
    for band in range(buckets.num_bands):
        buckets.run(None, band, buckets.num_bands)
    DedupClusters(f"{folder}/sig", f"{folder}/edges", f"{folder}/clusters", config.scope).run(None, 0, 1)
    kept = np.zeros(len(texts), dtype=bool)
    for rank in range(tasks):
        for doc in DocDedupFilter(f"{folder}/clusters").run(shard(rank), rank, tasks):
            kept[int(doc.id)] = True
    seconds = time.perf_counter() - start
    cluster = np.arange(len(texts), dtype=np.int64)
    for rank in range(tasks):
        with open(f"{folder}/clusters/{rank:05d}.remove", "rb") as f:
            removals = np.frombuffer(f.read(), dtype=REMOVE_DTYPE)
        cluster[bounds[rank] + removals["doc"].astype(np.int64)] = (
            np.asarray(bounds)[removals["kept_rank"]] + removals["kept_doc"]
        )
    if not np.array_equal(kept, cluster == np.arange(len(texts))):
        raise RuntimeError("dedup stages disagree: the filter's output differs from the removal lists")
    return Decisions(kept, cluster, seconds)


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
    kept_documents: int
    missed_pairs: int
    """True pairs whose two documents are both in the output."""
    banding_flagged_pairs: int
    banding_precision: float | None
    banding_recall: float | None
    identical_pairs: int
    identical_pairs_flagged: int
    tasks: int = 1
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _pair_scores(cluster: np.ndarray, valid: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(flagged pairs among documents with shingles, true pairs among them): same cluster = flagged."""
    sizes = np.bincount(cluster[valid], minlength=len(cluster))
    flagged = int((sizes * (sizes - 1) // 2).sum())
    hits = int((cluster[truth[:, 0]] == cluster[truth[:, 1]]).sum()) if len(truth) else 0
    return flagged, hits


def evaluate_near_dedup(texts: list[str], config: DedupConfig, threshold: float = 0.8, tasks: int = 1) -> DedupQuality:
    """Precision / recall of the dedup stages' own clusters for pairs with exact Jaccard >= threshold."""
    if not texts:
        raise InputError("no documents to evaluate")
    signer = make_signer(config)
    clock = {}
    start = time.perf_counter()
    sets = shingle_sets(texts, signer)
    clock["shingles"] = time.perf_counter() - start
    start = time.perf_counter()
    truth_pairs = similar_pairs(sets, threshold)
    clock["ground_truth"] = time.perf_counter() - start
    truth = np.array(sorted(truth_pairs), dtype=np.int64).reshape(-1, 2)
    valid = np.array([len(s) > 0 for s in sets])

    with tempfile.TemporaryDirectory() as folder:
        decided = run_dedup_stages(texts, config, f"{folder}/verified", tasks)
        banding = run_dedup_stages(texts, replace(config, threshold=0.0), f"{folder}/banding", tasks)
    clock["pipeline"], clock["pipeline_banding_only"] = decided.seconds, banding.seconds
    flagged, tp = _pair_scores(decided.cluster, valid, truth)
    banding_flagged, banding_tp = _pair_scores(banding.cluster, valid, truth)
    identical = truth[[truth_pairs[tuple(p)] >= 1.0 for p in truth.tolist()]] if len(truth) else truth
    missed = int((decided.kept[truth[:, 0]] & decided.kept[truth[:, 1]]).sum()) if len(truth) else 0
    quality = DedupQuality(
        threshold=threshold,
        documents=len(texts),
        documents_with_shingles=int(valid.sum()),
        true_pairs=len(truth),
        flagged_pairs=flagged,
        true_positives=tp,
        precision=_ratio(tp, flagged),
        recall=_ratio(tp, len(truth)),
        kept_documents=int(decided.kept.sum()),
        missed_pairs=missed,
        banding_flagged_pairs=banding_flagged,
        banding_precision=_ratio(banding_tp, banding_flagged),
        banding_recall=_ratio(banding_tp, len(truth)),
        identical_pairs=len(identical),
        identical_pairs_flagged=_pair_scores(decided.cluster, valid, identical)[1],
        tasks=tasks,
        seconds={k: round(v, 2) for k, v in clock.items()},
    )
    logger.info(f"near-dedup quality: precision {quality.precision}, recall {quality.recall} at J >= {threshold}")
    return quality
