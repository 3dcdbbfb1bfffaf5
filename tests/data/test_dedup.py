import json
import random
from pathlib import Path

import numpy as np
import pytest
import xxhash

from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup import DedupBuckets, DedupSignature, connected_components, minhash_config
from deepseek_hf.data.pipeline import run_pipeline


def signer(tmp_path, **kwargs) -> DedupSignature:
    return DedupSignature(str(tmp_path), minhash_config(DedupConfig(**kwargs)))


def test_chinese_gets_character_ngrams_and_english_word_ngrams(tmp_path):
    s = signer(tmp_path)
    expected = sorted(xxhash.xxh64_intdigest(" ".join(g)) for g in ["床前明月光", "前明月光疑", "明月光疑是"])
    assert sorted(s.get_shingles("床前明月光，疑是").ravel().tolist()) == expected
    words = "The river, the CITY and 3 bridges".lower().replace(",", "").replace("3", "0").split()
    expected = sorted(xxhash.xxh64_intdigest(" ".join(words[i : i + 5])) for i in range(len(words) - 4))
    assert sorted(s.get_shingles("The river, the CITY and 3 bridges").ravel().tolist()) == expected
    assert s.get_shingles("太短").size == 0  # fewer than 5 units: left to exact dedup


def test_signature_estimates_jaccard(tmp_path):
    s = signer(tmp_path, num_buckets=64, hashes_per_bucket=8)  # 512 hashes: std of the estimate ~0.02
    rng = random.Random(0)
    a = np.array([rng.getrandbits(63) for _ in range(400)], dtype=np.uint64).reshape(-1, 1)
    b = np.concatenate([a[:300], np.array([rng.getrandbits(63) for _ in range(100)], dtype=np.uint64).reshape(-1, 1)])
    jaccard = 300 / 500
    assert abs((s.signature(a) == s.signature(b)).mean() - jaccard) < 0.08
    assert (s.signature(a) == s.signature(a[::-1])).all()  # a set function: order does not matter
    long = np.array([rng.getrandbits(63) for _ in range(5000)], dtype=np.uint64).reshape(-1, 1)
    assert (s.signature(long) == s.signature(long[::-1])).all()  # chunked minimum == whole minimum


def test_batched_signatures_equal_one_document_at_a_time(tmp_path):
    s = signer(tmp_path)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 2**62, size=(int(n), 1), dtype=np.uint64) for n in (1, 7, 300, 2500, 40, 2048, 3)]
    batched = s.signatures(arrays)  # mixes short documents hashed together and one longer than a chunk
    for i, shingles in enumerate(arrays):
        assert (batched[i] == s.signature(shingles)).all()


def test_per_dump_salt_separates_dumps_and_keeps_equality_within_one(tmp_path):
    s = signer(tmp_path, scope="per_dump")
    sig = s.signature(s.get_shingles("one two three four five six seven eight nine ten"))
    a1, a2, b = sig ^ s.dump_salt("A"), sig ^ s.dump_salt("A"), sig ^ s.dump_salt("B")
    assert (a1 == a2).all() and not (a1 == b).any()


def test_connected_components_matches_union_find():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        u, v = rng.integers(0, n, size=(2, int(rng.integers(0, 80))))
        parent = list(range(n))

        def find(x, parent=parent):
            while parent[x] != x:
                x = parent[x]
            return x

        for a, b in zip(u.tolist(), v.tolist()):
            parent[find(a)] = find(b)
        labels = connected_components(u, v, n)
        for i in range(n):
            members = [j for j in range(n) if find(j) == find(i)]
            assert labels[i] == min(members)


def test_verification_links_only_similar_candidates():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**60, size=100, dtype=np.uint64)
    b, c = a.copy(), a.copy()
    b[:10] += 1  # 90% equal to a
    c[:50] += 1  # 50% equal to a and to b
    step = DedupBuckets("/tmp", "/tmp", minhash_config(DedupConfig()), threshold=0.8)
    members = np.array([[0, 0], [0, 1], [0, 2]])
    assert step._verified_edges(members, np.stack([a, b, c])) == [(0, 0, 0, 1)]
    assert step._verified_edges(members, None) == [(0, 0, 0, 1), (0, 0, 0, 2)]  # no verification: a star


def _corpus(dh, rng, tmp_path: Path):
    """Two dumps: A has 30 originals; B has exact copies (re-cased, re-punctuated), near copies, and its own docs."""
    originals = [dh.make_text(rng) for _ in range(30)]
    a = [{"id": f"a{i}", "text": t, "dump": "A"} for i, t in enumerate(originals)]
    b = [{"id": f"b-exact{i}", "text": originals[i].upper() + " !!", "dump": "B"} for i in range(8)]
    b += [{"id": f"b-near{i}", "text": dh.near_copy(originals[10 + i], rng), "dump": "B"} for i in range(8)]
    b += [{"id": f"b-own{i}", "text": dh.make_text(rng), "dump": "B"} for i in range(10)]
    b += [{"id": "b-twin", "text": b[-1]["text"], "dump": "B"}]  # duplicates inside dump B
    b += [{"id": "b-variant", "text": dh.near_copy(b[-3]["text"], rng), "dump": "B"}]  # of b-own8
    a += [{"id": "a-short", "text": "tiny doc", "dump": "A"}, {"id": "a-short2", "text": "Tiny doc!", "dump": "A"}]
    return dh.write_jsonl(tmp_path / "corpus.jsonl", a + b)


@pytest.mark.parametrize("scope, bucket_workers", [("global", 1), ("per_dump", 1), ("per_dump", 3)])
def test_scope_global_removes_cross_dump_copies_per_dump_does_not(tmp_path, dh, rng, scope, bucket_workers):
    path = _corpus(dh, rng, tmp_path)
    dedup = {"scope": scope, "bucket_workers": bucket_workers}  # 3: each band split into 3 hash ranges
    cfg = dh.fast_config(tmp_path, [{"path": str(path)}], filters={}, line_dedup={"enabled": False}, dedup=dedup)
    root = run_pipeline(cfg)
    kept = {r[0] for r in dh.output_records(root)}
    removed = {r["id"]: r["metadata"]["filter_reason"] for r in dh.excluded_records(root, "dedup")}
    # within a dump, the kept copy is the one with the smallest xxh64(id)
    twins = [sorted(pair, key=xxhash.xxh64_intdigest) for pair in (["b-own9", "b-twin"], ["a-short", "a-short2"])]
    variants = sorted(["b-own8", "b-variant"], key=xxhash.xxh64_intdigest)
    within = {dropped: "exact_duplicate" for _, dropped in twins} | {variants[1]: "near_duplicate"}
    cross = {f"b-exact{i}": "exact_duplicate" for i in range(8)} | {f"b-near{i}": "near_duplicate" for i in range(8)}
    if scope == "global":
        assert removed == within | cross
    else:
        assert removed == within
    assert kept.isdisjoint(removed) and {f"a{i}" for i in range(30)} <= kept
    assert {k for k, _ in twins} <= kept and variants[0] in kept

    summary = json.loads((Path(root) / "work/dedup/clusters/dedup_summary.json").read_text())
    table = {r["dumps"]: r for r in summary["rate_vs_dumps"]}
    assert table[1]["documents"] == 32 and table[1]["removed"] == 1  # dump A alone: the short twin
    assert table[2]["documents"] == 60 and table[2]["removed"] == len(removed)
    if scope == "global":
        assert table[2]["rate"] > table[1]["rate"]
        assert [d["rate_alone"] for d in summary["dumps"]] == [1 / 32, 2 / 28]
