"""Verification of candidate pairs: exact Jaccard from the stored shingle sets when both are whole, the MinHash
estimate otherwise; exact copies chained once; a bounded memory of rejected pairs that changes work, never clusters."""

import numpy as np
import pytest

from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup import clusters as clusters_module
from deepseek_hf.data.dedup.clusters import set_jaccard
from deepseek_hf.data.dedup.files import SET_WIDTH
from deepseek_hf.data.dedup.quality import make_signer, shingle_sets
from deepseek_hf.data.dedup.shingles import SET_PAD, smallest_distinct

# one line of a real poem of shared/data/corpus varied by its first character: every pair shares 25 of 31 shingles
POEM = "花舞\n{}客之名从此有。\n多谢风流，飞驭陪尊酒。\n持此一卮同劝后。\n愿花长在人长寿。"
VARIANTS = "贵嘉素佳宾远旧新上雅众"


def test_smallest_distinct_values_equal_numpy_unique(rng):
    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    sizes = [0, 1, 5, SET_WIDTH - 1, SET_WIDTH, SET_WIDTH + 1, 400]
    sets = [np_rng.integers(0, 1 << 64, size, dtype=np.uint64, endpoint=False) for size in sizes]
    sets[3] = np.concatenate([sets[3], sets[3][:40]])  # repeated shingles count once
    sets[2][0] = np.uint64(0xFFFFFFFF_FFFFFFFF)  # the largest value stays below the padding
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])])
    rows, counts = smallest_distinct(np.concatenate(sets), offsets, SET_WIDTH)
    for row, count, values in zip(rows, counts, sets):
        expected = np.unique(np.minimum(values >> np.uint64(32), 0xFFFFFFFE)).astype(np.uint32)
        assert count == len(expected)
        assert row[: min(count, SET_WIDTH)].tolist() == expected[:SET_WIDTH].tolist()
        assert (row[count:] == SET_PAD).all()
    assert [row[-1] == SET_PAD for row in rows] == [n < SET_WIDTH for n in counts]  # "whole" is visible in the row


@pytest.mark.parametrize("width", [32, 64, SET_WIDTH])
def test_set_jaccard_is_the_exact_jaccard_of_whole_sets(rng, width):
    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    rows_a, rows_b, expected = [], [], []
    for _ in range(300):
        size_a, size_b = np_rng.integers(1, width, 2)
        pool = np_rng.choice(1 << 31, size_a + size_b, replace=False).astype(np.uint32)
        shared = np_rng.integers(0, min(size_a, size_b) + 1)
        a, b = pool[:size_a], np.concatenate([pool[:shared], pool[size_a : size_a + size_b - shared]])
        expected.append(len(set(a.tolist()) & set(b.tolist())) / len(set(a.tolist()) | set(b.tolist())))
        for values, rows in ((a, rows_a), (b, rows_b)):
            rows.append(np.concatenate([np.sort(values), np.full(width - len(values), SET_PAD, np.uint32)]))
    rows_a[0], rows_b[0] = rows_a[1], rows_a[1]  # identical sets: 1.0
    expected[0] = 1.0
    assert np.allclose(set_jaccard(np.stack(rows_a), np.stack(rows_b)), expected)


def test_pairs_just_above_the_threshold_are_all_found_where_the_estimate_misses_them(tmp_path):
    """11 variants of a real poem, every pair at exact J = 25/31 = 0.806: the MinHash estimate of most pairs falls
    below 0.8 (an unbiased estimate of a value 0.006 above the threshold), their exact Jaccard does not."""
    texts = [POEM.format(c) for c in VARIANTS]
    signer = make_signer(DedupConfig())
    sets = shingle_sets(texts, signer)
    jaccards = [len(np.intersect1d(a, b)) / len(np.union1d(a, b)) for i, a in enumerate(sets) for b in sets[i + 1 :]]
    assert np.allclose(jaccards, 25 / 31)
    rows = np.stack([signer.signature(s) for s in sets])
    estimates = [(rows[i] == rows[j]).mean() for i in range(11) for j in range(i + 1, 11)]
    assert np.mean(np.array(estimates) < 0.8) > 0.3  # what estimate-only verification would reject
    labels, clusters = _stages(texts, tmp_path)
    assert len(set(labels.tolist())) == 1  # one cluster of the 11
    assert clusters.stats["exact_jaccard_pairs"].total >= 10 and clusters.stats["estimated_jaccard_pairs"].total == 0


def _stages(texts: list[str], folder, tasks: int = 1, exact: bool = True):
    """The dedup stages in-process; the cluster label of each document and the cluster stage (its counters)."""
    from datatrove.data import Document

    from deepseek_hf.data.dedup import DedupBuckets, DedupClusters, DedupSignature, minhash_config
    from deepseek_hf.data.dedup.files import REMOVE_DTYPE

    config = minhash_config(DedupConfig())
    bounds = np.linspace(0, len(texts), tasks + 1).astype(int)
    for rank in range(tasks):
        docs = (Document(text=texts[i], id=str(i)) for i in range(bounds[rank], bounds[rank + 1]))
        DedupSignature(str(folder / "sig"), config).run(docs, rank, tasks)
    buckets = DedupBuckets(str(folder / "sig"), str(folder / "edges"), config, exact=exact)
    for band in range(buckets.num_bands):
        buckets.run(None, band, buckets.num_bands)
    clusters = DedupClusters(str(folder / "sig"), str(folder / "edges"), str(folder / "out"))
    clusters.run(None, 0, 1)
    labels = np.arange(len(texts))
    for rank in range(tasks):
        removals = np.fromfile(folder / "out" / f"{rank:05d}.remove", dtype=REMOVE_DTYPE)
        labels[bounds[rank] + removals["doc"]] = bounds[removals["kept_rank"]] + removals["kept_doc"]
    return labels, clusters


def test_long_documents_are_verified_by_estimate_short_ones_exactly(tmp_path, dh, rng):
    from deepseek_hf.data.dedup import DedupClusters

    long_text, short_text = dh.make_text(rng, 300), dh.make_text(rng, 100)  # 296 and 96 shingles
    texts = [long_text] + [dh.near_copy(long_text, rng) for _ in range(4)]
    texts += [short_text] + [dh.near_copy(short_text, rng) for _ in range(4)]
    labels, clusters = _stages(texts, tmp_path)
    assert len(set(labels[:5].tolist())) == len(set(labels[5:].tolist())) == 1
    stats = {k: clusters.stats[k].total for k in ("exact_jaccard_pairs", "estimated_jaccard_pairs", "verified_pairs")}
    assert stats["exact_jaccard_pairs"] >= 4 and stats["estimated_jaccard_pairs"] >= 4, stats
    assert clusters.stats["removed_near"].total == 8  # each group of five is one cluster
    (tmp_path / "sig" / "sets" / "00000.set").unlink()  # signatures of an older version: a clear error
    with pytest.raises(FileNotFoundError, match="rerun the signature stage"):
        DedupClusters(str(tmp_path / "sig"), str(tmp_path / "edges"), str(tmp_path / "out2")).run(None, 0, 1)


def test_exact_copies_join_the_chains_once_with_the_same_clusters(tmp_path, dh, rng):
    """Copies of one text are linked by the exact band: with it, one copy per text is chained (fewer candidate
    pairs); without it, every copy is chained. The clusters are the same, for 1 and 3 shards."""
    originals = [dh.make_text(rng) for _ in range(30)]
    texts = [t for t in originals for _ in range(6)] + [dh.near_copy(t, rng) for t in originals[:20]]
    runs = {
        (exact, tasks): _stages(texts, tmp_path / f"{exact}{tasks}", tasks, exact)
        for exact in (True, False)
        for tasks in (1, 3)
    }
    labels = runs[True, 1][0]
    assert len(set(labels.tolist())) == 30
    for other, _ in runs.values():
        assert np.array_equal(other, labels)
    pairs = {key: step.stats["candidate_pairs"].total for key, (_, step) in runs.items()}
    assert pairs[True, 1] < pairs[False, 1] / 3


def test_a_tiny_memory_of_rejected_pairs_changes_the_work_never_the_clusters(tmp_path, dh, rng, monkeypatch):
    base = [dh.make_text(rng) for _ in range(15)]  # copies with 1 to 6 changes: some pairs pass, many do not
    texts = [dh.near_copy(t, rng, changes=k) for t in base for k in (1, 1, 2, 2, 3, 4, 6)]
    default, default_step = _stages(texts, tmp_path / "default")
    monkeypatch.setattr(clusters_module._Verifier, "MEMORY_BITS", 1)  # two slots: nearly every rejection forgotten
    tiny, tiny_step = _stages(texts, tmp_path / "tiny")
    assert np.array_equal(default, tiny) and 15 <= len(set(default.tolist())) < len(texts)
    compared = [step.stats["compared_pairs"].total for step in (default_step, tiny_step)]
    assert default_step.stats["skipped_rejected"].total > 0 and compared[0] < compared[1]
