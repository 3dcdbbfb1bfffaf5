"""Stages 3 and 4 of dedup: duplicate clusters (one kept document each, removal lists, dedup-rate table), filter."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.logging import logger

from deepseek_hf.data.dedup.buckets import VERIFICATION_FILE
from deepseek_hf.data.dedup.files import (
    EDGE_DTYPE,
    REMOVE_DTYPE,
    SET_WIDTH,
    SUMMARY_FILE,
    ShardTables,
    read_array,
)
from deepseek_hf.data.dedup.shingles import SET_PAD, splitmix64


def connected_components(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """Component label (its smallest node id) of each of `n` nodes given edges u-v (min-label propagation)."""
    labels = np.arange(n, dtype=np.int64)
    if len(u) == 0:
        return labels
    while True:
        smaller = np.minimum(labels[u], labels[v])
        before = labels.copy()
        np.minimum.at(labels, u, smaller)
        np.minimum.at(labels, v, smaller)
        labels = labels[labels]  # pointer jumping
        if np.array_equal(labels, before):
            return labels


def set_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of row pairs of whole shingle sets (sorted distinct values padded with SET_PAD,
    as `DedupSignature` writes them): one row sort of the two sets side by side, equal neighbours are the shared
    values (the padding forms one run of its own). The second set goes in reversed: numpy's row sort takes 4x
    longer on two ascending runs than on an ascending and a descending one (1.9 vs 0.46 us per pair at 128)."""
    size_a = np.count_nonzero(a != SET_PAD, axis=1)
    size_b = np.count_nonzero(b != SET_PAD, axis=1)
    merged = np.sort(np.concatenate([a, b[:, ::-1]], axis=1), axis=1)
    equal = np.count_nonzero(merged[:, 1:] == merged[:, :-1], axis=1)
    shared = equal - np.maximum(2 * a.shape[1] - size_a - size_b - 1, 0)
    return shared / np.maximum(size_a + size_b - shared, 1)


class _Verifier:
    """The check of candidate pairs, `SLICE` pairs at a time (bounded memory): the exact Jaccard similarity of their
    shingle sets when both are whole (fewer than SET_WIDTH distinct shingles: most documents), else the share of
    equal MinHash values, an unbiased estimate of it. Rejected pairs are remembered in a direct-mapped table of
    fixed size (`MEMORY_BITS`: 2^22 pair keys, 32 MB), a newer key overwriting an older one in its slot: a pair
    found there is not compared again, and one that was overwritten is only compared again, never decided
    differently. A lookup is one gather, so the memory costs the same at any size (sorted runs of rejected keys and
    their binary searches took a third of this stage's time at 8 copies of the corpus)."""

    SLICE = 16384
    MEMORY_BITS = 22
    SET_WIDTHS = (32, 64, SET_WIDTH)

    def __init__(self, signatures_folder, edges_folder):
        if not edges_folder.exists(VERIFICATION_FILE):
            raise FileNotFoundError(f"{VERIFICATION_FILE} missing next to the candidate pairs: rerun the bucket stage")
        with edges_folder.open(VERIFICATION_FILE) as f:
            settings = json.load(f)
        self.threshold = float(settings["threshold"])
        dtype = np.uint32 if settings["precision"] == 32 else np.uint64
        self.tables = ShardTables(signatures_folder, int(settings["num_hashes"]), dtype)
        self.rejected = np.zeros(1 << self.MEMORY_BITS, dtype=np.uint64)  # 0: empty (no pair has key 0)

    def check(self, edges: np.ndarray, a: np.ndarray, b: np.ndarray, step: PipelineStep) -> np.ndarray:
        """Mask of the pairs (rows of `edges`, global document indices `a`, `b`) that pass verification."""
        key = (np.minimum(a, b).astype(np.uint64) << np.uint64(32)) | np.maximum(a, b).astype(np.uint64)
        slot = (splitmix64(key) >> np.uint64(64 - self.MEMORY_BITS)).astype(np.int64)
        fresh = self.rejected[slot] != key
        step.stat_update("skipped_rejected", value=int((~fresh).sum()), unit="run")
        passed = np.zeros(len(edges), dtype=bool)
        todo = np.flatnonzero(fresh)
        for lo in range(0, len(todo), self.SLICE):
            part = todo[lo : lo + self.SLICE]
            passed[part] = self._similar(edges[part], step)
        step.stat_update("compared_pairs", value=len(todo), unit="run")
        step.stat_update("verified_pairs", value=int(passed.sum()), unit="run")
        rejected = todo[~passed[todo]]
        self.rejected[slot[rejected]] = key[rejected]
        return passed

    def _similar(self, edges: np.ndarray, step: PipelineStep) -> np.ndarray:
        """Exact Jaccard for pairs of whole sets, by widths (`SET_WIDTHS`: a row sort costs ~2x per doubling of
        the width, most sets are short), the MinHash estimate for the rest."""
        ranks_a, docs_a, ranks_b, docs_b = (edges[:, i].astype(np.int64) for i in range(4))
        out = np.zeros(len(edges), dtype=bool)
        rest = np.arange(len(edges))
        for width in self.SET_WIDTHS:
            sets_a = self.tables.gather(ranks_a[rest], docs_a[rest], "sets", width)
            sets_b = self.tables.gather(ranks_b[rest], docs_b[rest], "sets", width)
            whole = (sets_a[:, -1] == SET_PAD) & (sets_b[:, -1] == SET_PAD)
            out[rest[whole]] = set_jaccard(sets_a[whole], sets_b[whole]) >= self.threshold
            rest = rest[~whole]
        if len(rest):
            mine = self.tables.gather(ranks_a[rest], docs_a[rest])
            theirs = self.tables.gather(ranks_b[rest], docs_b[rest])
            out[rest] = np.count_nonzero(mine == theirs, axis=1) / mine.shape[1] >= self.threshold
        step.stat_update("exact_jaccard_pairs", value=len(edges) - len(rest), unit="run")
        step.stat_update("estimated_jaccard_pairs", value=len(rest), unit="run")
        return out


@dataclass
class _Nodes:
    rank: np.ndarray
    doc: np.ndarray
    dump: np.ndarray  # index into the sorted dump labels
    key: np.ndarray
    exact: np.ndarray


class DedupClusters(PipelineStep):
    """Stage 3: candidate pairs verified (each distinct pair once), components -> one kept document each; removal
    lists + dedup summary."""

    type = "🫂 - DEDUP"
    name = "🎯 duplicate clusters"

    def __init__(
        self,
        signatures_folder: DataFolderLike,
        edges_folder: DataFolderLike,
        output_folder: DataFolderLike,
        scope: str = "global",
    ):
        super().__init__()
        self.signatures_folder = get_datafolder(signatures_folder)
        self.edges_folder = get_datafolder(edges_folder)
        self.output_folder = get_datafolder(output_folder)
        self.scope = scope

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError(f"{self.name} runs as a single task, got world_size={world_size}")
        tables = ShardTables(self.signatures_folder, 1, np.uint64)
        with self.track_time("run"):
            shard_ranks = tables.ranks()
            shard_dumps = {r: tables.dumps(r) for r in shard_ranks}
            labels = sorted({d for dumps in shard_dumps.values() for d in dumps})
            position = {d: i for i, d in enumerate(labels)}
            counts = np.array([len(tables.docs(r)) for r in shard_ranks], dtype=np.int64)
            offsets = dict(zip(shard_ranks, np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()))
            totals = np.zeros(len(labels), dtype=np.int64)
            chars = np.zeros(len(labels), dtype=np.int64)
            for r in shard_ranks:
                remap = np.array([position[d] for d in shard_dumps[r]], dtype=np.int64)
                docs = tables.docs(r)
                if len(docs):
                    totals += np.bincount(remap[docs["dump"]], minlength=len(labels))
                    chars += np.bincount(remap[docs["dump"]], weights=docs["chars"], minlength=len(labels)).astype(
                        np.int64
                    )

            # union the edge files one at a time: memory is one file plus a label per document, whatever the edges
            total = int(counts.sum())
            base = np.zeros(int(max(shard_ranks, default=0)) + 1, dtype=np.int64)
            base[shard_ranks] = [offsets[r] for r in shard_ranks]
            root, n_edges = self._union_files(total, base)
            self.stat_update("edges", value=n_edges, unit="run")
            nodes = np.flatnonzero(np.bincount(root, minlength=total)[root] > 1)  # documents with a duplicate
            is_root = np.zeros(total, dtype=bool)
            is_root[root[nodes]] = True
            component = (np.cumsum(is_root) - 1)[root[nodes]]  # 0 .. components - 1, in root order: no sort
            info = self._node_info(nodes, shard_ranks, offsets, tables, shard_dumps, position)

            # representative: smallest (dump, id hash) in each component
            order = np.lexsort((info.key, info.dump, component))
            first = np.ones(len(order), dtype=bool)
            first[1:] = component[order][1:] != component[order][:-1]
            rep_of = np.empty(len(nodes), dtype=np.int64)
            rep_of[order] = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
            rep_of = order[rep_of]  # node index of each node's representative
            sizes = np.bincount(component, minlength=len(nodes))[component]
            removed = rep_of != np.arange(len(nodes))
            kind = (info.exact != info.exact[rep_of]).astype(np.uint8)  # 0 exact, 1 near
            self._write_removals(shard_ranks, info, removed, kind, sizes, rep_of)
            summary = self._summary(labels, totals, chars, info, component, removed, kind, sizes)
            with self.output_folder.open(SUMMARY_FILE, "w") as f:
                json.dump(summary, f, indent=2)
            self.stat_update("removed_exact", value=int((removed & (kind == 0)).sum()), unit="run")
            self.stat_update("removed_near", value=int((removed & (kind == 1)).sum()), unit="run")
            logger.info(
                f"dedup ({self.scope}): {summary['removed']} of {summary['documents']} documents removed "
                f"({summary['removed_exact']} exact, {summary['removed_near']} near)"
            )

    def _union_files(self, total: int, base: np.ndarray) -> tuple[np.ndarray, int]:
        """Cluster root of every document: the edges (`.dups`: exact hashes) unioned as they are, then the
        candidate pairs (`.cand`, one file per band and link step) verified and unioned one file at a time.

        Verification: the fraction of equal MinHash values (an unbiased estimate of the Jaccard similarity) must
        reach the threshold. A candidate pair whose documents are already in one cluster is skipped (comparing it
        cannot change the clusters), and a rejected pair is remembered and never compared again, so each distinct
        pair is compared at most once and a cluster of k near-copies costs about k - 1 comparisons in all, however
        many bands its members share. The clusters are the connected components of the candidate pairs that pass,
        whatever the file order (skipping only drops pairs inside a component), hence the same for any sharding.
        """
        root = np.arange(total, dtype=np.int64)
        n_edges = 0
        files = sorted(self.edges_folder.list_files(glob_pattern="*.dups"))
        candidates = sorted(self.edges_folder.list_files(glob_pattern="*.cand"))
        verifier = _Verifier(self.signatures_folder, self.edges_folder) if candidates else None
        if total >= 1 << 32 and candidates:
            raise ValueError(f"{self.name}: {total} documents; pair keys hold at most 2**32")
        for path in files + candidates:
            edges = read_array(self.edges_folder, path, EDGE_DTYPE, (4,))
            if not len(edges):
                continue
            a = base[edges[:, 0]] + edges[:, 1]
            b = base[edges[:, 2]] + edges[:, 3]
            u, v = root[a], root[b]
            keep = u != v
            if path.endswith(".cand"):
                self.stat_update("candidate_pairs", value=len(edges), unit="run")
                self.stat_update("skipped_connected", value=int((~keep).sum()), unit="run")
                keep[keep] = verifier.check(edges[keep], a[keep], b[keep], self)
            else:
                n_edges += len(edges)
            if keep.any():
                root = connected_components(u[keep], v[keep], total)[root]
        return root, n_edges

    @staticmethod
    def _node_info(nodes, shard_ranks, offsets, tables, shard_dumps, position) -> _Nodes:
        starts = np.array([offsets[r] for r in shard_ranks], dtype=np.int64)
        which = np.searchsorted(starts, nodes, side="right") - 1
        rank = np.array(shard_ranks, dtype=np.int64)[which] if len(nodes) else np.zeros(0, np.int64)
        doc = nodes - starts[which] if len(nodes) else np.zeros(0, np.int64)
        dump = np.zeros(len(nodes), dtype=np.int64)
        key = np.zeros(len(nodes), dtype=np.uint64)
        exact = np.zeros(len(nodes), dtype=np.uint64)
        for r in np.unique(rank).tolist():
            mask = rank == r
            records = tables.docs(r)[doc[mask]]
            remap = np.array([position[d] for d in shard_dumps[r]], dtype=np.int64)
            dump[mask], key[mask], exact[mask] = remap[records["dump"]], records["key"], records["exact"]
        return _Nodes(rank, doc, dump, key, exact)

    def _write_removals(self, shard_ranks, info: _Nodes, removed, kind, sizes, rep_of) -> None:
        for r in shard_ranks:
            mask = removed & (info.rank == r)
            out = np.zeros(int(mask.sum()), dtype=REMOVE_DTYPE)
            out["doc"], out["kind"], out["cluster_size"] = info.doc[mask], kind[mask], sizes[mask]
            out["kept_rank"], out["kept_doc"] = info.rank[rep_of[mask]], info.doc[rep_of[mask]]
            out = out[np.argsort(out["doc"], kind="stable")]  # a sort of the integer field, not of records
            with self.output_folder.open(f"{r:05d}.remove", "wb") as f:
                f.write(out.tobytes())

    def _summary(self, labels, totals, chars, info: _Nodes, component, removed, kind, sizes) -> dict:
        n_dumps = len(labels)
        # members and components present in the first k dumps (sorted labels) -> rate of deduplicating them together
        members = np.bincount(info.dump, minlength=n_dumps)
        comp_first_dump = np.full(len(info.dump), n_dumps, dtype=np.int64)
        np.minimum.at(comp_first_dump, component, info.dump)
        comp_first_dump = comp_first_dump[: int(component.max()) + 1] if len(component) else comp_first_dump[:0]
        firsts = np.bincount(comp_first_dump, minlength=n_dumps)[:n_dumps]
        removed_cumulative = np.cumsum(members) - np.cumsum(firsts)
        docs_cumulative = np.cumsum(totals)
        # each dump deduplicated alone: members of the dump minus components with a member in it
        pairs = np.unique(component * n_dumps + info.dump)  # distinct (component, dump)
        alone = members - np.bincount(pairs % n_dumps, minlength=n_dumps) if len(pairs) else members
        removed_by_dump = np.bincount(info.dump[removed], minlength=n_dumps)
        exact_by_dump = np.bincount(info.dump[removed & (kind == 0)], minlength=n_dumps)
        cluster_sizes = np.bincount(sizes[~removed]) if len(sizes) else np.zeros(0, int)
        return {
            "scope": self.scope,
            "documents": int(totals.sum()),
            "removed": int(removed.sum()),
            "removed_exact": int((removed & (kind == 0)).sum()),
            "removed_near": int((removed & (kind == 1)).sum()),
            "dumps": [
                {
                    "dump": label,
                    "documents": int(totals[i]),
                    "characters": int(chars[i]),
                    "removed": int(removed_by_dump[i]),
                    "removed_exact": int(exact_by_dump[i]),
                    "rate_alone": float(alone[i] / totals[i]) if totals[i] else 0.0,
                }
                for i, label in enumerate(labels)
            ],
            "rate_vs_dumps": [
                {
                    "dumps": k + 1,
                    "documents": int(docs_cumulative[k]),
                    "removed": int(removed_cumulative[k]),
                    "rate": float(removed_cumulative[k] / docs_cumulative[k]) if docs_cumulative[k] else 0.0,
                }
                for k in range(n_dumps)
            ],
            "cluster_sizes": {str(s): int(c) for s, c in enumerate(cluster_sizes.tolist()) if c and s > 1},
        }


class DocDedupFilter(BaseFilter):
    """Stage 4: drops the documents listed by `DedupClusters` for this shard (reading order = stage 1's)."""

    name = "🎯 dedup filter"

    def __init__(self, input_folder: DataFolderLike, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self.input_folder = get_datafolder(input_folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        path = f"{rank:05d}.remove"
        removals = read_array(self.input_folder, path, REMOVE_DTYPE) if self.input_folder.exists(path) else []
        self._removals = {int(r["doc"]): (int(r["kind"]), int(r["cluster_size"])) for r in removals}
        self._index = -1
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        self._index += 1
        hit = self._removals.get(self._index)
        if hit is None:
            return True
        doc.metadata["duplicate_cluster_size"] = hit[1]
        return False, "exact_duplicate" if hit[0] == 0 else "near_duplicate"
