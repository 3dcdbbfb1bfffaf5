"""On-disk layout shared by the dedup stages: record types, bounded buffered writers, lazy per-shard tables."""

from __future__ import annotations

import json

import numpy as np
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.hashing import HashConfig

from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup.shingles import splitmix64

# per-shard document index, one record per document in reading order
DOCS_DTYPE = np.dtype([("key", "<u8"), ("exact", "<u8"), ("dump", "<u4"), ("chars", "<u8"), ("shingled", "u1")])
# per-shard shingle sets: the SET_WIDTH smallest distinct 32-bit shingle values of each document, sorted, padded
# with `shingles.SET_PAD` (real values stop below it). A row that ends in padding holds the whole set (fewer than SET_WIDTH
# values: 87% of the documents of shared/data/corpus, nearly all poems), so that the Jaccard similarity of two such
# documents is computed exactly (`DedupClusters`), not estimated
SET_WIDTH = 128
# one band of one shard: 64-bit key of the band's values, document index, the document's place in its band group
# (`member_order`); sorted by (key, doc)
BAND_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u4"), ("order", "<u4")])
# removal list of one shard: document index, kind (0 exact, 1 near), size of its duplicate cluster, kept document
REMOVE_DTYPE = np.dtype(
    [("doc", "<u4"), ("kind", "u1"), ("cluster_size", "<u4"), ("kept_rank", "<u4"), ("kept_doc", "<u4")]
)
EDGE_DTYPE = np.dtype("<u4")  # edges: (rank_a, doc_a, rank_b, doc_b), datatrove's `.dups` layout
SUMMARY_FILE = "dedup_summary.json"


def minhash_config(config: DedupConfig) -> MinhashConfig:
    """datatrove's MinHash settings (n-grams, bands, rows, seed, value width) from the `dedup:` config."""
    return MinhashConfig(
        n_grams=config.ngram,
        num_buckets=config.num_buckets,
        hashes_per_bucket=config.hashes_per_bucket,
        seed=config.seed,
        hash_config=HashConfig(precision=config.hash_precision),
    )


def read_array(folder, path: str, dtype, shape_tail: tuple = ()) -> np.ndarray:
    """A whole binary file as an array: memory-mapped on a local disk, read into memory otherwise."""
    if folder.is_local():
        if folder.size(path) == 0:
            return np.zeros((0, *shape_tail), dtype=dtype)
        array = np.memmap(folder.resolve_paths(path), dtype=dtype, mode="r")
    else:
        with folder.open(path, "rb") as f:
            array = np.frombuffer(f.read(), dtype=dtype)
    return array.reshape(-1, *shape_tail) if shape_tail else array


class Buffered:
    """Appends fixed-size records to a binary file, flushed every `chunk` records (bounded memory)."""

    def __init__(self, file, dtype, chunk: int = 65536):
        self.file, self.dtype, self.chunk, self.rows = file, dtype, chunk, []

    def append(self, row) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.file.write(np.array(self.rows, dtype=self.dtype).tobytes())
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.file.close()


def member_order(hashes: np.ndarray, band: int) -> np.ndarray:
    """Order of documents inside a group of equal band keys: a 64-bit hash of (a document's hash, band). The band
    files hold the top 32 bits of it for the exact hash, so copies of one text are adjacent; with no exact band,
    the id hash breaks their ties. It depends on the document alone (so the candidate pairs do not depend on the
    sharding) and differs from band to band, so that the chains of a group of near-copies link different
    neighbours in different bands."""
    return splitmix64(hashes ^ np.uint64(band))


def shard_rank(path: str) -> int:
    return int(path.split("/")[-1].split(".")[0])


class ShardTables:
    """Lazy per-shard access to the document index, full signatures and shingle sets written by `DedupSignature`."""

    def __init__(self, folder, num_hashes: int, hash_dtype):
        self.folder, self.num_hashes, self.hash_dtype = folder, num_hashes, np.dtype(hash_dtype)
        self._docs: dict[int, np.ndarray] = {}
        self._full: dict[int, np.ndarray] = {}
        self._sets: dict[int, np.ndarray] = {}

    def ranks(self) -> list[int]:
        return sorted(shard_rank(p) for p in self.folder.list_files("docs", glob_pattern="*.docs"))

    def docs(self, rank: int) -> np.ndarray:
        if rank not in self._docs:
            self._docs[rank] = read_array(self.folder, f"docs/{rank:05d}.docs", DOCS_DTYPE).view(np.ndarray)
        return self._docs[rank]

    def dumps(self, rank: int) -> list[str]:
        with self.folder.open(f"docs/{rank:05d}.dumps.json") as f:
            return json.load(f)

    def full(self, rank: int) -> np.ndarray:
        if rank not in self._full:
            full = read_array(self.folder, f"full/{rank:05d}.sig", self.hash_dtype, (self.num_hashes,))
            self._full[rank] = full.view(np.ndarray)
        return self._full[rank]

    def sets(self, rank: int) -> np.ndarray:
        if rank not in self._sets:
            path = f"sets/{rank:05d}.set"
            if not self.folder.exists(path):
                raise FileNotFoundError(
                    f"{path} missing in {self.folder.path}: signatures written before shingle sets were kept; "
                    "rerun the signature stage"
                )
            self._sets[rank] = read_array(self.folder, path, np.uint32, (SET_WIDTH,)).view(np.ndarray)
        return self._sets[rank]

    def gather(self, ranks: np.ndarray, docs: np.ndarray, field: str | None = None, width: int = SET_WIDTH):
        """Of documents (rank, doc): signature rows (field None), the first `width` values of their shingle sets
        ("sets") or one index field; one read per shard."""
        if field is None:
            out, table = np.empty((len(ranks), self.num_hashes), dtype=self.hash_dtype), self.full
        elif field == "sets":
            out, table = np.empty((len(ranks), width), dtype=np.uint32), lambda r: self.sets(r)[:, :width]
        else:
            out, table = np.empty(len(ranks), dtype=DOCS_DTYPE[field]), lambda r: self.docs(r)[field]
        for r in np.flatnonzero(np.bincount(ranks)).tolist() if len(ranks) else []:  # no sort: O(n)
            mask = ranks == r
            out[mask] = table(r)[docs[mask]]
        return out
