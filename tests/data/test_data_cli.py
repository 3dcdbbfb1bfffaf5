import glob
import json
import runpy
import sys
import unicodedata
from pathlib import Path

import pytest

from deepseek_hf.cli import main
from deepseek_hf.data import load_output
from deepseek_hf.data.cli import make_parser
from deepseek_hf.data.config import DataPipelineConfig
from deepseek_hf.data.text import normalize

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recipes/tiny/data/config_demo.yaml"


def test_data_command_help(capsys):
    assert main(["data", "--help"]) == 0
    assert "eval-dedup" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "run", "--help"])
    assert exit_info.value.code == 0 and "--output_dir" in capsys.readouterr().out
    assert main(["data", "frobnicate"]) == 2


@pytest.mark.parametrize("path", sorted(glob.glob(str(REPO / "recipes/*/data/*.yaml"))))
def test_shipped_configs_parse_strictly(path):
    (config,) = make_parser().parse_args_and_config(["--config", path])
    assert isinstance(config, DataPipelineConfig) and config.inputs


def test_demo_config_is_the_embedded_default():
    assert DataPipelineConfig.from_yaml(str(DEMO)).to_dict() == DataPipelineConfig().to_dict()
    (config,) = make_parser().parse_args_and_config(["--config", str(DEMO), "--output_dir", "/tmp/x"])
    assert config.output_dir == "/tmp/x" and config.dedup.scope == "global"


def test_config_typos_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dedup:\n  treshold: 0.8\n")
    with pytest.raises(ValueError, match=r"dedup: unknown key\(s\) \['treshold'\]"):
        DataPipelineConfig.from_yaml(str(bad))
    bad.write_text("dedupe: {}\n")
    with pytest.raises(ValueError, match="Unknown arguments from config file"):
        make_parser().parse_args_and_config(["--config", str(bad)])
    with pytest.raises(ValueError, match="dedup.scope must be one of"):
        DataPipelineConfig(dedup={"scope": "per-dump"})
    with pytest.raises(ValueError, match="executor.partition is required"):
        DataPipelineConfig(executor={"type": "slurm"})


def test_eval_dedup_command(tmp_path, capsys, dh, rng):
    text = dh.make_text(rng, 100)
    records = [{"text": text}, {"text": dh.near_copy(text, rng)}, {"text": dh.make_text(rng, 100)}]
    path = dh.write_jsonl(tmp_path / "x.jsonl", records)
    assert main(["data", "eval-dedup", "--input", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["true_pairs"], result["true_positives"], result["flagged_pairs"]) == (1, 1, 1)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The embedded demo, run once through the recipe script (as `python recipes/prepare_data.py --config ...`)."""
    out = tmp_path_factory.mktemp("demo") / "data"
    argv = sys.argv
    sys.argv = ["prepare_data.py", "--config", str(DEMO), "--output_dir", str(out)]
    try:
        runpy.run_path(str(REPO / "recipes/prepare_data.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return out


@pytest.mark.slow
def test_demo_keeps_most_of_the_corpus_and_removes_every_exact_copy(demo_run):
    ds = load_output(str(demo_run))
    originals = [row for row in ds if "#remix" not in row["id"]]
    corpus = [row for row in originals if not row["metadata"]["source"].startswith("zh_tangshi")]
    assert len(corpus) >= 0.9 * 3450 and sum(len(row["text"]) for row in ds) > 1_000_000
    texts = [unicodedata.normalize("NFC", normalize(row["text"])) for row in originals]
    assert len(set(texts)) == len(texts)  # no two kept documents have the same normalized text
    report = json.loads((demo_run / "report.json").read_text())
    assert report["dedup"]["removed_exact"] >= 332  # the Tang sample alone holds 332 exact extra copies


@pytest.mark.slow
def test_demo_report_shows_dedup_rate_rising_with_dumps(demo_run):
    report = json.loads((demo_run / "report.json").read_text())
    rates = [row["rate"] for row in report["dedup"]["rate_vs_dumps"]]
    assert len(rates) == 4 and all(a < b for a, b in zip(rates, rates[1:]))
    assert {d["dump"] for d in report["dedup"]["dumps"]} == {"dump-0", "dump-1", "dump-2", "dump-3"}
    assert set(report["remix"]["before"]) == set(report["remix"]["after"]) and len(report["remix"]["rates"]) == 13
    for name in ("report.md", "report.png"):
        assert (demo_run / name).stat().st_size > 1000
