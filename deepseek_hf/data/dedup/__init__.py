"""Document-level deduplication: exact (normalized-text hash) and MinHash LSH near-dedup, as datatrove stages.

Four stages, like datatrove's `examples/minhash_deduplication.py`, each run by any executor (local, Ray, Slurm):

1. `DedupSignature` (one task per shard, `signature.py`) — CJK-aware shingles (a CJK character or a word is one
   unit, so Chinese gets character n-grams) hashed in numpy over whole batches of documents (`shingles.py`), their
   MinHash signature, one 64-bit key per band (written sorted, per band and shard, with each document's place in
   its band group), the full signature, the shingle set (its 128 smallest distinct 32-bit values: the whole set for
   most documents) and a small index (id hash, exact hash, dump, length).
2. `DedupBuckets` (one task per band, plus one for the exact hash; `buckets.py`) — groups documents with equal
   band keys (or exact hashes) by one sort of the band's records, and writes each group's candidate pairs: a chain
   of its distinct texts in an order that changes from band to band (copies of one text are left to the exact
   band); integer work only, no signature read.
3. `DedupClusters` (one task, `clusters.py`) — *verifies* the candidate pairs and takes the connected components of
   those that pass and of the exact-hash edges, one file at a time. Verification is the exact Jaccard similarity of
   the two shingle sets when both are whole (fewer than 128 distinct shingles: 87% of the documents of the web-like
   corpus, nearly all poems), else the fraction of equal MinHash values (an unbiased estimate); it must reach
   `threshold`. A pair whose documents are already in one component is skipped and a rejected pair is remembered
   (a fixed-size table), so each distinct pair is compared about once (not once per band it shares) and a cluster
   of k near-copies costs about k - 1 comparisons. On the Tang-poem ground truth banding alone cannot reach 0.95
   precision and recall at J >= 0.8 for any band layout up to 1024 hashes; with verification 40 x 8 does. It keeps
   one document per component, the one with the smallest (dump, xxh64(id)), so the result does not depend on how
   the input was sharded; writes the removal lists and the dedup-rate table (paper Table 1).
4. `DocDedupFilter` (one task per shard, same sharding as stage 1) — drops the listed documents, reason
   `exact_duplicate` / `near_duplicate`, into its exclusion writer.

Scope: `global` compares all documents; `per_dump` XORs every signature value (and salts the exact hash) with a
per-dump salt, so documents of different dumps can never collide while equalities within a dump are unchanged.
`quality.py` scores these decisions against exact Jaccard ground truth (`deepseek-hf data eval-dedup`).
"""

from deepseek_hf.data.dedup.buckets import DedupBuckets
from deepseek_hf.data.dedup.clusters import DedupClusters, DocDedupFilter, connected_components
from deepseek_hf.data.dedup.files import (
    BAND_DTYPE,
    DOCS_DTYPE,
    EDGE_DTYPE,
    REMOVE_DTYPE,
    SUMMARY_FILE,
    minhash_config,
)
from deepseek_hf.data.dedup.signature import DedupSignature

__all__ = [
    "BAND_DTYPE",
    "DOCS_DTYPE",
    "EDGE_DTYPE",
    "REMOVE_DTYPE",
    "SUMMARY_FILE",
    "DedupBuckets",
    "DedupClusters",
    "DedupSignature",
    "DocDedupFilter",
    "connected_components",
    "minhash_config",
]
