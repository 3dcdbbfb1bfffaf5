"""Stage 2 of near-dedup: candidate pairs from equal band keys, edges from equal exact hashes; integer work only."""

from __future__ import annotations

import json

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig

from deepseek_hf.data.dedup.files import BAND_DTYPE, EDGE_DTYPE, ShardTables, read_array, shard_rank

_TOP = 1 << 64  # band keys and exact hashes are uniform 64-bit values
LINK_STEPS = 2  # candidate pairs per group member: the next member and the one after (see `candidate_links`)
VERIFICATION_FILE = "verification.json"


def group_starts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and sizes of runs of equal values in an already-sorted array."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return starts, np.diff(np.concatenate([starts, [n]]))


def first_of_runs(values: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal values."""
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return first


def id_order(keys: np.ndarray, id_keys: np.ndarray) -> np.ndarray:
    """Order of all documents by (band key, id hash): groups are runs of equal keys, their members in id-hash
    order whatever the sharding. Two stable radix sorts of 64-bit integers (numpy's for integer keys), the second
    by (group number, top 32 bits of the id hash), ~10x faster than `np.lexsort` of the two 64-bit keys; a full
    lexsort only when two members of one group share those 32 bits. Work per document, not per group member."""
    order = np.argsort(keys, kind="stable")
    group = np.cumsum(first_of_runs(keys[order])) - 1
    top = id_keys[order] >> np.uint64(32)
    combined = (group.astype(np.uint64) << np.uint64(32)) | top
    second = np.argsort(combined, kind="stable")
    if len(second) > 1 and (combined[second][1:] == combined[second][:-1]).any():
        return np.lexsort((id_keys, keys))
    return order[second]


def candidate_links(group: np.ndarray, member_rank: np.ndarray, member_doc: np.ndarray) -> list[np.ndarray]:
    """Candidate pairs of groups laid out contiguously (`group` sorted): for step s = 1 .. LINK_STEPS, each member
    with the member s places after it in the same group; one (E, 4) array of (rank_a, doc_a, rank_b, doc_b) per
    step. A group of k gives k - 1 pairs at step 1 (a chain: enough when all are near-copies) and k - 2 at step 2."""
    out = []
    for step in range(1, LINK_STEPS + 1):
        a = np.flatnonzero(group[step:] == group[:-step]) if len(group) > step else np.zeros(0, dtype=np.int64)
        b = a + step
        out.append(np.stack([member_rank[a], member_doc[a], member_rank[b], member_doc[b]], axis=1))
    return out


def star_edges(group: np.ndarray, member_rank: np.ndarray, member_doc: np.ndarray) -> np.ndarray:
    """Edges of groups laid out contiguously (`group` sorted), each member with its group's first: exact hashes."""
    first = first_of_runs(group)
    leader = np.maximum.accumulate(np.where(first, np.arange(len(group)), 0))[~first]
    other = np.flatnonzero(~first)
    return np.stack([member_rank[leader], member_doc[leader], member_rank[other], member_doc[other]], axis=1)


def write_verification(folder, config: MinhashConfig, threshold: float) -> None:
    """What `DedupClusters` needs to verify the candidate pairs: written next to them by task 0."""
    settings = {
        "threshold": threshold,
        "num_hashes": config.num_buckets * config.hashes_per_bucket,
        "precision": config.hash_config.precision,
    }
    with folder.open(VERIFICATION_FILE, "w") as f:
        json.dump(settings, f)


class DedupBuckets(PipelineStep):
    """Stage 2: candidate pairs from equal band keys; exact-hash groups become edges directly.

    Task `rank` handles band `rank // bucket_workers` (the last band is the exact hash when `exact`) and the
    `rank % bucket_workers`-th slice of the 64-bit key range. Members of a candidate group are ordered by id hash
    (so the result does not depend on the sharding). A group of k documents with one band key gives 2k - 3
    candidate pairs, each member with the next and the one after (the second link bridges one dissimilar member
    between two near-copies), written to `<band>_<worker>.<step>.cand`; `DedupClusters` verifies them by
    estimated Jaccard, each distinct pair once and only while its two documents are not already in one cluster.
    Verifying here instead (the previous version) compared the same near-copies once per band they share: the
    work grew with candidate memberships, which rise faster than the corpus under heavy duplication (1.65M at
    4 copies of the corpus, 5.12M at 8), while the distinct pairs that need a comparison grow with the duplicates.
    This stage reads no signatures: one sort of the band's documents and integer work per member. Ties of the id
    hash (64 bits) inside a group would fall back on reading order, the one sharding-dependent case.
    Exact-hash groups (and every group when `threshold` is 0) need no verification: a star around the first
    member, written as edges (`.dups`).
    """

    type = "🫂 - DEDUP"
    name = "🎯 LSH buckets"

    def __init__(
        self,
        input_folder: DataFolderLike,
        output_folder: DataFolderLike,
        config: MinhashConfig,
        threshold: float = 0.8,
        exact: bool = True,
        near: bool = True,
        bucket_workers: int = 1,
    ):
        super().__init__()
        self.input_folder = get_datafolder(input_folder)
        self.output_folder = get_datafolder(output_folder)
        self.config = config
        self.threshold = threshold
        self.exact = exact
        self.near = near
        self.bucket_workers = bucket_workers

    @property
    def num_bands(self) -> int:
        return (self.config.num_buckets if self.near else 0) + int(self.exact)

    def _key_range(self, worker: int) -> tuple[int, int]:
        step = -(-_TOP // self.bucket_workers)
        return worker * step, min(_TOP, (worker + 1) * step)

    def _tables(self) -> ShardTables:
        num_hashes = self.config.num_buckets * self.config.hashes_per_bucket
        return ShardTables(
            self.input_folder, num_hashes, np.uint32 if self.config.hash_config.precision == 32 else np.uint64
        )

    @staticmethod
    def _in_range(keys: np.ndarray, lo: int, hi: int, is_sorted: bool) -> np.ndarray | slice:
        if is_sorted:
            end = len(keys) if hi >= _TOP else int(np.searchsorted(keys, np.uint64(hi), "left"))
            return slice(int(np.searchsorted(keys, np.uint64(lo), "left")), end)
        mask = keys >= np.uint64(lo)
        if hi < _TOP:
            mask &= keys < np.uint64(hi)
        return np.flatnonzero(mask)

    def _candidates(self, tables: ShardTables, band: int | None, lo: int, hi: int):
        """(key, shard, document) of every document of the key range; band None: the exact hashes."""
        keys, ranks, docs = [], [], []
        if band is None:
            sources = [(r, tables.docs(r)["exact"], None) for r in tables.ranks()]
        else:
            paths = self.input_folder.list_files(f"bucket_{band:03d}", glob_pattern="*.minhash.sig")
            sources = []
            for path in sorted(paths, key=shard_rank):
                records = read_array(self.input_folder, path, BAND_DTYPE)
                sources.append((shard_rank(path), records["key"], records["doc"]))
        for rank, key, doc in sources:
            take = self._in_range(np.asarray(key), lo, hi, is_sorted=doc is not None)
            keys.append(np.asarray(key[take]))
            docs.append(np.arange(len(key), dtype=np.uint32)[take] if doc is None else np.asarray(doc[take]))
            ranks.append(np.full(len(keys[-1]), rank, dtype=np.uint32))
        if not keys:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        return np.concatenate(keys), np.concatenate(ranks), np.concatenate(docs)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != self.num_bands * self.bucket_workers:
            raise ValueError(f"{self.name}: needs {self.num_bands * self.bucket_workers} tasks, got {world_size}")
        band, worker = divmod(rank, self.bucket_workers)
        is_exact = self.exact and band == self.num_bands - 1
        tables = self._tables()
        with self.track_time("band"):
            keys, ranks, docs = self._candidates(tables, None if is_exact else band, *self._key_range(worker))
            order = id_order(keys, tables.gather(ranks.astype(np.int64), docs.astype(np.int64), "key"))
            keys, ranks, docs = keys[order], ranks.astype(np.int64)[order], docs.astype(np.int64)[order]
            sizes = group_starts(keys)[1]
            self.stat_update("candidate_groups", value=int((sizes > 1).sum()), unit="band")
            self.stat_update("candidate_documents", value=int(sizes[sizes > 1].sum()), unit="band")
            verify = not is_exact and self.threshold > 0
            pairs = candidate_links(keys, ranks, docs) if verify else [star_edges(keys, ranks, docs)]
            if rank == 0 and self.near and self.threshold > 0:
                write_verification(self.output_folder, self.config, self.threshold)
            for step, links in enumerate(pairs, 1):
                name = f"{band:05d}_{worker:02d}.{step}.cand" if verify else f"{band:05d}_{worker:02d}.dups"
                with self.output_folder.open(name, mode="wb") as f:
                    f.write(links.astype(EDGE_DTYPE).tobytes())
                self.stat_update("candidate_pairs" if verify else "edges", value=len(links), unit="band")
