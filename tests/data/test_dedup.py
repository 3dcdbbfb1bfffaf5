import json
from pathlib import Path

import numpy as np
import pytest
import xxhash
from datatrove.utils.text import TextNormConfig
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_hf.data.config import DedupConfig
from deepseek_hf.data.dedup import DedupBuckets, DedupSignature, connected_components, minhash_config
from deepseek_hf.data.pipeline import run_pipeline


def signer(tmp_path, **kwargs) -> DedupSignature:
    return DedupSignature(str(tmp_path), minhash_config(DedupConfig(**kwargs)))


def test_chinese_gets_character_ngrams_and_english_word_ngrams(tmp_path):
    s = signer(tmp_path)
    assert s.shingler.unit_strings(s.normalize("床前明月光，疑是")) == list("床前明月光疑是")
    poem = s.get_shingles("床前明月光，疑是")
    assert len(poem) == 3 and set(poem[:2]) == set(s.get_shingles("床前明月光疑"))  # 5-character shingles
    words = s.get_shingles("The river, the CITY and 3 bridges")
    assert len(words) == 3 and (words == s.get_shingles("the river the city and 7 bridges")).all()
    assert not set(words) & set(s.get_shingles("the river the town and 7 bridges"))  # each shingle has "city"
    assert s.get_shingles("太短").size == 0  # fewer than 5 units: left to exact dedup


def test_units_and_normalization_equal_the_reference_on_real_text(shared_data):
    """The vectorized units are `CJKWordTokenizer`'s and `normalize` is datatrove's `simplify_text`, on web-like
    English and Chinese text; a shingle hash stands for exactly one n-gram of units."""
    import gzip

    from datatrove.utils.text import simplify_text

    from deepseek_hf.data.dedup.shingles import Shingler, normalize
    from deepseek_hf.data.text import CJKWordTokenizer

    with gzip.open(shared_data / "corpus" / "pretrain_mix.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(3000), f)][::6]
    texts += ["l'été d'un homme’s ''a b'' x'", "naïve café — Ⅻ ½ ⁂ 🙂 ab_c", "tab\tand\u3000ideographic space"]
    shingler, tokenizer, seen = Shingler(5), CJKWordTokenizer(), {}
    for text in texts:
        assert normalize(text) == simplify_text(text)
        for raw in (text, normalize(text)):  # raw text keeps punctuation and apostrophes
            units = shingler.unit_strings(raw)
            assert units == tokenizer.word_tokenize(raw)
            hashes, _ = shingler([raw])
            grams = [" ".join(units[i : i + 5]) for i in range(len(units) - 4)]
            assert len(hashes) == len(grams)
            for gram, value in zip(grams, hashes.tolist()):
                assert seen.setdefault(value, gram) == gram  # no two n-grams share a hash
    assert len(seen) > 50_000


NORM_CONFIGS = [
    TextNormConfig(),
    TextNormConfig(norm_whitespace=False),
    TextNormConfig(remove_punctuation=False),
    TextNormConfig(lowercase=False, norm_numbers=False, norm_unicode_diacritics=False),
]
NORM_CHARACTERS = list(
    " \t\n\r\x0b\x1c\u3000\u00a0\u2028.,!?;:'’\"()-—_，。！？、「」·aAbZ19２٣éÉΣσςİ床前明月\u0301\u0308"
)


@pytest.mark.parametrize("config", NORM_CONFIGS, ids=["default", "spaces kept", "punctuation kept", "case kept"])
@settings(max_examples=300, deadline=None)
@given(text=st.text(st.one_of(st.sampled_from(NORM_CHARACTERS), st.characters()), max_size=40))
def test_normalize_equals_simplify_text_on_any_text(config, text):
    """Punctuation and whitespace are normalized in one regex pass; it must stay `simplify_text`, character for
    character, whatever the text and the normalization switches."""
    from datatrove.utils.text import simplify_text

    from deepseek_hf.data.dedup.shingles import normalize

    assert normalize(text, config) == simplify_text(text, config)


def test_signature_estimates_jaccard(tmp_path):
    for bits in (32, 64):
        s = signer(tmp_path, num_buckets=64, hashes_per_bucket=8, hash_precision=bits)  # 512 values: std ~0.02
        rng = np.random.default_rng(0)
        a = rng.integers(0, 2**63, size=400, dtype=np.uint64)
        b = np.concatenate([a[:300], rng.integers(0, 2**63, size=100, dtype=np.uint64)])
        assert abs((s.signature(a) == s.signature(b)).mean() - 300 / 500) < 0.08
        assert (s.signature(a) == s.signature(a[::-1])).all()  # a set function: order does not matter
        long = rng.integers(0, 2**63, size=10_000, dtype=np.uint64)
        assert (s.signature(long) == s.signature(long[::-1])).all()  # chunked minimum == whole minimum
        assert s.signature(a).dtype == np.dtype(f"uint{bits}")


def test_batched_signatures_equal_one_document_at_a_time(tmp_path):
    s = signer(tmp_path)
    rng = np.random.default_rng(0)
    sizes = [1, 7, 0, 300, 5000, 40, 4096, 0, 3, 9000, 1]  # empty sets, sets across and larger than a block
    hashes = rng.integers(0, 2**64, size=sum(sizes), dtype=np.uint64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    batched = s.signatures(hashes, offsets)
    for i, size in enumerate(sizes):
        expected = s.signature(hashes[offsets[i] : offsets[i + 1]]) if size else np.zeros(s.num_hashes)
        assert (batched[i] == expected).all()
    brute = (s.hasher.a[None, :] * s.hasher.values(hashes[:300])[:, None] + s.hasher.b[None, :]).min(axis=0)
    assert (s.signature(hashes[:300]) == brute).all()  # the definition: min over elements of a*x + b mod 2^bits


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


def test_candidate_links_chain_each_group():
    from deepseek_hf.data.dedup.buckets import candidate_links

    group = np.array([0, 0, 0, 0, 1, 2, 2])  # groups of 4, 1 and 2 members, laid out contiguously
    docs = np.arange(7) * 10
    links = candidate_links(group, np.zeros(7, dtype=np.int64), docs)
    assert links[:, [1, 3]].tolist() == [[0, 10], [10, 20], [20, 30], [50, 60]]  # k - 1 per group
    assert (links[:, [0, 2]] == 0).all()


def test_near_copies_are_compared_once_not_once_per_band(tmp_path, dh, rng):
    """200 near-copies of one document share most of the 40 bands: thousands of candidate pairs, but the
    clusters stage compares only pairs not yet in one cluster (about one per copy) and never a pair twice."""
    from datatrove.data import Document

    from deepseek_hf.data.dedup import DedupClusters

    text = dh.make_text(rng, 400)
    docs = [Document(text=dh.near_copy(text, rng, changes=2), id=f"c{i}", metadata={"dump": "d"}) for i in range(200)]
    config = minhash_config(DedupConfig())
    DedupSignature(str(tmp_path / "sig"), config).run(iter(docs), 0, 1)
    step = DedupBuckets(str(tmp_path / "sig"), str(tmp_path / "edges"), config, threshold=0.8)
    for band in range(step.num_bands):
        step.run(None, band, step.num_bands)
    clusters = DedupClusters(str(tmp_path / "sig"), str(tmp_path / "edges"), str(tmp_path / "clusters"))
    clusters.run(None, 0, 1)
    stats = {k: clusters.stats[k].total for k in ("candidate_pairs", "compared_pairs", "verified_pairs")}
    assert step.stats["candidate_pairs"].total == stats["candidate_pairs"] > 20 * 200  # ~ 1 per member per band
    assert 199 <= stats["verified_pairs"] <= stats["compared_pairs"] < 2 * 200
    summary = json.loads((tmp_path / "clusters" / "dedup_summary.json").read_text())
    assert summary["removed_near"] == 199 and summary["cluster_sizes"] == {"200": 1}
    (tmp_path / "edges" / "verification.json").unlink()  # candidates without their threshold: a clear error
    with pytest.raises(FileNotFoundError, match="verification.json missing"):
        DedupClusters(str(tmp_path / "sig"), str(tmp_path / "edges"), str(tmp_path / "c2")).run(None, 0, 1)


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
