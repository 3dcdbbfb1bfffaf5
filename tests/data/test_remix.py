import json
from pathlib import Path

import numpy as np
import pytest

from deepseek_hf.data.config import RemixConfig
from deepseek_hf.data.pipeline import run_pipeline
from deepseek_hf.data.remix import copies, remix_rates


def test_weights_redistribute_the_listed_sources_only():
    rates = remix_rates({"a": 100, "b": 300, "c": 600}, RemixConfig(weights={"a": 1, "b": 1}))
    assert rates == pytest.approx({"a": 2.0, "b": 200 / 300, "c": 1.0})
    capped = remix_rates({"a": 100, "b": 300}, RemixConfig(weights={"a": 1, "b": 1}, max_repeat=1.5))
    assert capped == pytest.approx({"a": 1.5, "b": 200 / 300})
    assert remix_rates({"a": 10, "b": 10}, RemixConfig(weights={"a": 0, "b": 1}))["a"] == 0.0


def test_temperature_flattens_the_mixture():
    rates = remix_rates({"a": 100, "b": 400}, RemixConfig(temperature=2.0))
    assert rates == pytest.approx({"a": (500 / 3) / 100, "b": (1000 / 3) / 400})  # shares 10:20
    assert remix_rates({"a": 100, "b": 400}, RemixConfig(temperature=1.0)) == pytest.approx({"a": 1.0, "b": 1.0})
    assert remix_rates({"a": 5, "b": 7}, RemixConfig()) == {"a": 1.0, "b": 1.0}


def test_copies_are_deterministic_and_unbiased():
    ids = [f"doc-{i}" for i in range(20_000)]
    for rate in (0.3, 2.5):
        counts = np.array([copies(i, rate, seed=0) for i in ids])
        assert set(counts.tolist()) == {int(rate), int(rate) + 1}
        assert abs(counts.mean() - rate) < 4 * np.sqrt((rate % 1) * (1 - rate % 1) / len(ids))
        assert counts.tolist() == [copies(i, rate, seed=0) for i in ids]
    assert [copies(i, 0.5, 0) for i in ids[:200]] != [copies(i, 0.5, 1) for i in ids[:200]]  # the seed matters


def test_remix_stage_reports_before_and_after(tmp_path, dh, rng):
    docs = [{"id": f"big{i}", "text": dh.make_text(rng, 50), "source": "big"} for i in range(60)]
    docs += [{"id": f"small{i}", "text": dh.make_text(rng, 50), "source": "small"} for i in range(10)]
    path = dh.write_jsonl(tmp_path / "in.jsonl", docs)
    cfg = dh.fast_config(
        tmp_path,
        [{"path": str(path)}],
        filters={},
        dedup={"enabled": False},
        line_dedup={"enabled": False},
        remix={"weights": {"big": 1, "small": 1}, "unit": "docs", "max_repeat": 5},
    )
    root = run_pipeline(cfg)
    ids = [r[0] for r in dh.output_records(root)]
    report = json.loads((Path(root) / "report.json").read_text())["remix"]
    assert report["before"] == {"big": 60, "small": 10}
    assert report["rates"] == pytest.approx({"big": 35 / 60, "small": 3.5})
    small = [i for i in ids if i.startswith("small")]
    assert 30 <= len(small) <= 40 and any("#remix3" in i for i in small)  # 3 or 4 copies of each
    assert report["after"]["small"] == len(small) and report["after"]["big"] == len(ids) - len(small)
    dropped = dh.excluded_records(root, "remix")
    assert len(dropped) == 60 - report["after"]["big"] and {r["metadata"]["filter_reason"] for r in dropped} == {
        "remix_downsampled"
    }
