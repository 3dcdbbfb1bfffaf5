"""Stage 2 of near-dedup: candidate groups from equal band keys (or equal exact hashes), verified in linear work."""

from __future__ import annotations

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.logging import logger

from deepseek_hf.data.dedup.files import BAND_DTYPE, EDGE_DTYPE, ShardTables, read_array, shard_rank

_TOP = 1 << 64  # band keys and exact hashes are uniform 64-bit values


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


class DedupBuckets(PipelineStep):
    """Stage 2: candidate pairs from equal band keys (or equal exact hashes), verified by estimated Jaccard.

    Task `rank` handles band `rank // bucket_workers` (the last band is the exact hash when `exact`) and the
    `rank % bucket_workers`-th slice of the 64-bit key range. Members of a candidate group are ordered by id hash
    (so the result does not depend on the sharding). Verification works in rounds, all groups of the band at once:
    every pending member is compared with its group's leader (its first pending member); a match becomes an edge
    leader-member and leaves the group, the leader leaves too, and the members that matched nobody form the next
    round's groups. A group of near-copies is done in one round, so the work is (members x rounds), rounds being
    the number of mutually dissimilar documents sharing one band value (1-3 in practice; capped at `MAX_ROUNDS`,
    what is left then is counted as `unverified_candidates` and logged). Comparing with every earlier kept
    representative instead (the first version) cost (near-copies per group)^2 comparisons and one Python step per
    member. Rows are gathered `SLICE` candidates at a time, so memory is bounded whatever the group sizes.
    """

    type = "🫂 - DEDUP"
    name = "🎯 LSH buckets + verification"
    MAX_ROUNDS = 64
    SLICE = 16384

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
            order = np.argsort(keys, kind="stable")  # ties stay in (shard, document) order
            keys, ranks, docs = keys[order], ranks[order], docs[order]
            starts, sizes = group_starts(keys)
            verify = not is_exact and self.threshold > 0
            edges = self._group_edges(starts, sizes, ranks, docs, tables, verify)
            with self.output_folder.open(f"{band:05d}_{worker:02d}.dups", mode="wb") as f:
                f.write(edges.astype(EDGE_DTYPE).tobytes())
            self.stat_update("edges", value=len(edges), unit="band")

    def _group_edges(self, starts, sizes, ranks, docs, tables: ShardTables, verify: bool) -> np.ndarray:
        """Edges (rank_a, doc_a, rank_b, doc_b) of all candidate groups of one band, shape (E, 4)."""
        multi = sizes > 1
        starts, sizes = starts[multi], sizes[multi]
        if len(starts) == 0:
            return np.zeros((0, 4), dtype=np.int64)
        self.stat_update("candidate_groups", value=len(starts), unit="band")
        self.stat_update("candidate_documents", value=int(sizes.sum()), unit="band")
        group = np.repeat(np.arange(len(sizes)), sizes)
        position = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
        member_rank, member_doc = ranks[position].astype(np.int64), docs[position].astype(np.int64)
        id_key = tables.gather(member_rank, member_doc, "key")
        order = np.lexsort((member_doc, member_rank, id_key, group))  # id-hash order within each group
        group, member_rank, member_doc = group[order], member_rank[order], member_doc[order]
        if not verify:  # exact hashes: a star around the first member
            first = first_of_runs(group)
            leader = np.maximum.accumulate(np.where(first, np.arange(len(group)), 0))[~first]
            other = np.flatnonzero(~first)
            return np.stack([member_rank[leader], member_doc[leader], member_rank[other], member_doc[other]], axis=1)
        return self._verified_edges(group, member_rank, member_doc, tables)

    def _verified_edges(self, group, member_rank, member_doc, tables: ShardTables) -> np.ndarray:
        """Round-based verification against each group's current leader (see the class docstring)."""
        pending = np.arange(len(group))
        edges = [np.zeros((0, 4), dtype=np.int64)]
        for _ in range(self.MAX_ROUNDS):
            first = first_of_runs(group[pending])
            leader = pending[np.maximum.accumulate(np.where(first, np.arange(len(pending)), 0))]
            candidates = np.flatnonzero(~first)
            if len(candidates) == 0:
                break
            matched = np.zeros(len(candidates), dtype=bool)
            for lo in range(0, len(candidates), self.SLICE):
                part = candidates[lo : lo + self.SLICE]
                mine = tables.gather(member_rank[pending[part]], member_doc[pending[part]])
                theirs = tables.gather(member_rank[leader[part]], member_doc[leader[part]])
                matched[lo : lo + self.SLICE] = (
                    np.count_nonzero(mine == theirs, axis=1) / mine.shape[1] >= self.threshold
                )
            a, b = leader[candidates[matched]], pending[candidates[matched]]
            edges.append(np.stack([member_rank[a], member_doc[a], member_rank[b], member_doc[b]], axis=1))
            self.stat_update("verified_pairs", value=int(matched.sum()), unit="band")
            self.stat_update("rejected_candidates", value=int((~matched).sum()), unit="band")
            pending = pending[candidates[~matched]]
        else:
            left = int((~first_of_runs(group[pending])).sum())
            if left:
                self.stat_update("unverified_candidates", value=left, unit="band")
                logger.warning(f"{self.name}: {left} candidates left unverified after {self.MAX_ROUNDS} rounds")
        return np.concatenate(edges)
