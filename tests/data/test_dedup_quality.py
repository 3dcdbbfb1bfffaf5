"""The key check: the dedup stages' own decisions against exact Jaccard ground truth on real poems with copies."""

import gzip
import json
from itertools import combinations

import numpy as np
import pytest

from deepseek_hf.data.config import DedupConfig, resolve_path
from deepseek_hf.data.dedup.quality import (
    evaluate_near_dedup,
    make_signer,
    run_dedup_stages,
    shingle_sets,
    similar_pairs,
)


def _poems(path: str, limit: int | None = None) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return ["\n".join(r["paragraphs"]) for r in rows[:limit]]


def test_prefix_filtered_ground_truth_equals_brute_force():
    texts = _poems(resolve_path("package://demo/tangshi_dedup_sample.jsonl.gz"), 700)
    sets = shingle_sets(texts, make_signer(DedupConfig()))
    python_sets = [set(s.tolist()) for s in sets]
    for threshold in (0.5, 0.8):
        brute = {
            (i, j)
            for i, j in combinations(range(len(sets)), 2)
            if python_sets[i]
            and len(python_sets[i] & python_sets[j]) / len(python_sets[i] | python_sets[j]) >= threshold
        }
        assert set(similar_pairs(sets, threshold)) == brute
    assert len(brute) > 20  # the sample is dense in duplicates


def test_stage_decisions_are_the_clusters_of_the_verified_pairs(tmp_path):
    """The scored decisions are the pipeline's: every removed document's kept one is a true near-copy (or linked
    through one), the output keeps exactly one document per cluster, and 1 or 3 shards decide the same."""
    texts = _poems(resolve_path("package://demo/tangshi_dedup_sample.jsonl.gz"), 1500)
    one = run_dedup_stages(texts, DedupConfig(), str(tmp_path / "one"), tasks=1)
    three = run_dedup_stages(texts, DedupConfig(), str(tmp_path / "three"), tasks=3)
    assert np.array_equal(one.kept, three.kept) and np.array_equal(one.cluster, three.cluster)
    assert 0 < (~one.kept).sum() < len(texts) // 2
    assert np.array_equal(np.unique(one.cluster), np.flatnonzero(one.kept))  # one kept document per cluster


@pytest.mark.slow
def test_pipeline_precision_and_recall_on_quan_tang_shi(shared_data):
    texts = _poems(str(shared_data / "dedup_demo" / "quantangshi_files00-19.jsonl.gz"))
    quality = evaluate_near_dedup(texts, DedupConfig(), threshold=0.8, tasks=2)
    print(json.dumps(quality.to_dict()))
    assert quality.documents == 20011 and quality.true_pairs > 500
    assert quality.recall >= 0.95 and quality.precision >= 0.95  # the README's figures, on the output's clusters
    assert quality.missed_pairs <= 0.05 * quality.true_pairs  # true pairs with both documents in the output
    assert quality.identical_pairs_flagged == quality.identical_pairs > 300  # every exact copy is caught
    assert quality.banding_precision < 0.8  # banding alone is not enough: the verification step earns its place
