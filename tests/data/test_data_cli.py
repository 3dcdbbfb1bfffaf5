import glob
import json
import os
import runpy
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from deepseek_hf.cli import main
from deepseek_hf.data import load_output
from deepseek_hf.data.cli import main as data_main
from deepseek_hf.data.cli import make_parser
from deepseek_hf.data.config import DataPipelineConfig, DedupConfig
from deepseek_hf.data.dedup.quality import evaluate_near_dedup
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
    assert DataPipelineConfig.from_yaml(str(DEMO)).to_dict() == DataPipelineConfig.demo().to_dict()
    (config,) = make_parser().parse_args_and_config(["--config", str(DEMO), "--output_dir", "/tmp/x"])
    assert config.output_dir == "/tmp/x" and config.dedup.scope == "global"
    (config,) = make_parser().parse_args_and_config([])  # no --config: the demo
    assert config.to_dict() == DataPipelineConfig.demo().to_dict()


def test_defaults_are_neutral_and_the_demo_spells_out_its_own_choices(tmp_path):
    from deepseek_hf.data.pipeline import build_stages

    minimal = DataPipelineConfig(output_dir=str(tmp_path / "run"), inputs=[{"path": "corpus.jsonl"}])
    assert "language" not in minimal.filters  # no language restriction
    assert minimal.ingest.pseudo_dumps == 1 and not minimal.remix.active  # one dump, no up- or down-sampling
    assert "remix" not in [stage.name for stage in build_stages(minimal)]
    assert minimal.filters == {"c4": {}, "repetition": {}, "quality": {}}  # the literature's thresholds
    demo = yaml.safe_load(DEMO.read_text())  # the demo's choices are written in its file, not inherited
    assert demo["filters"]["language"]["languages"] == ["en", "zh"] and demo["ingest"]["pseudo_dumps"] == 4
    assert demo["remix"]["temperature"] == 2.0 and demo["filters"]["quality"] == {"min_doc_words": 10}
    readme = (REPO / "deepseek_hf/data/README.md").read_text()
    assert "The defaults are the demo" not in readme and "`pseudo_dumps` (1)" in readme


def test_config_typos_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dedup:\n  treshold: 0.8\n")
    with pytest.raises(ValueError, match=r"dedup: unknown key\(s\) \['treshold'\]"):
        DataPipelineConfig.from_yaml(str(bad))
    bad.write_text("dedupe: {}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key\(s\) \['dedupe'\]; allowed keys: \['output_dir'"):
        make_parser().parse_args_and_config(["--config", str(bad)])
    with pytest.raises(ValueError, match="dedup.scope must be one of"):
        DataPipelineConfig(dedup={"scope": "per-dump"})
    with pytest.raises(ValueError, match="executor.partition is required"):
        DataPipelineConfig(executor={"type": "slurm"})


def test_config_values_are_type_checked_naming_the_key(tmp_path):
    def error(text: str) -> str:
        path = tmp_path / "c.yaml"
        path.write_text(f"output_dir: {tmp_path / 'run'}\ninputs: [{{path: x.jsonl}}]\n{text}\n")
        with pytest.raises(TypeError) as info:
            DataPipelineConfig.from_yaml(str(path))
        return str(info.value)

    assert error("executor: {tasks: two}") == "executor.tasks: expected an integer, got 'two' (str)"
    assert error("ingest: {pseudo_dumps: 1.5}").startswith("ingest.pseudo_dumps: expected an integer")
    assert error("dedup: {threshold: high}").startswith("dedup.threshold: expected a number")
    assert error("remix: {temperature: hot}").startswith("remix.temperature: expected a number or null")
    assert error("overwrite: maybe").startswith("overwrite: expected true or false")
    assert error("filters: {quality: {min_doc_words: ten}}").startswith("filters.quality.min_doc_words: expected a")
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: out\ninputs: [{path: x.jsonl, limit: '5'}]\n")
    with pytest.raises(TypeError, match=r"inputs\[0\]\.limit: expected an integer, got '5'"):
        DataPipelineConfig.from_yaml(str(path))
    with pytest.raises(ValueError, match="inputs is required"):
        DataPipelineConfig(output_dir="out")


def _config_file(tmp_path: Path, **data) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run"), **data}))
    return str(path)


def test_user_errors_end_in_one_message_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_HF_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    bad_type = _config_file(tmp_path, inputs=[{"path": "x.jsonl"}], executor={"tasks": "two"})
    assert data_main(["run", "--config", bad_type]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: executor.tasks: expected an integer, got 'two'" in err

    missing = _config_file(tmp_path, inputs=[{"path": "does_not_exist.jsonl"}])
    assert data_main(["run", "--config", missing]) == 1
    err = capsys.readouterr().err
    assert "error: input does_not_exist.jsonl: no files match" in err and "[d]" not in err
    assert err.count("\n") == 2 and "Traceback" not in err  # the message and the --debug hint

    assert data_main(["run", "--config", missing, "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("DEEPSEEK_HF_DEBUG", "1")
    assert data_main(["run", "--config", missing]) == 1
    assert "InputNotFoundError: input does_not_exist.jsonl" in capsys.readouterr().err


def test_an_empty_input_gives_an_empty_reported_run_without_tracebacks(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    config = _config_file(tmp_path, inputs=[{"path": str(empty)}], ingest={"progress": False})
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_HF_DEBUG"}
    cli = [sys.executable, "-m", "deepseek_hf.cli", "data", "run", "--config", config]  # 2 workers: the default
    done = subprocess.run(cli, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "No files found" not in done.stderr
    assert "warning: the run kept no documents" in done.stderr
    report = json.loads((tmp_path / "run/report.json").read_text())
    assert report["totals"]["documents_in"] == report["totals"]["documents_out"] == 0
    with pytest.raises(ValueError, match="kept no documents"):
        load_output(str(tmp_path / "run"))


def test_every_flag_takes_dashes_or_underscores_and_help_shows_dashes(tmp_path, capsys, dh, rng):
    for flag in ("--output-dir", "--output_dir"):
        (config,) = make_parser().parse_args_and_config(["--config", str(DEMO), flag, "/tmp/x", "--keep-intermediate"])
        assert config.output_dir == "/tmp/x" and config.keep_intermediate
    with pytest.raises(SystemExit):
        make_parser("deepseek-hf data run").parse_args_and_config(["--help"])
    out = capsys.readouterr().out
    assert "[--output-dir OUTPUT_DIR]" in out and "--line-dedup LINE_DEDUP, --line_dedup LINE_DEDUP" in out

    text = dh.make_text(rng, 100)
    path = dh.write_jsonl(tmp_path / "p.jsonl", [{"body": text}, {"body": dh.near_copy(text, rng)}])
    for spelling in (["--text-key", "body", "--num-buckets", "20"], ["--text_key", "body", "--num_buckets", "20"]):
        assert data_main(["eval-dedup", "--input", str(path), *spelling]) == 0
        assert json.loads(capsys.readouterr().out)["true_pairs"] == 1
    with pytest.raises(SystemExit):
        data_main(["eval-dedup", "--help"])
    assert "--text-key TEXT_KEY, --text_key TEXT_KEY" in capsys.readouterr().out


def test_eval_dedup_refuses_no_documents_and_names_bad_records(tmp_path, capsys, dh, rng):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert data_main(["eval-dedup", "--input", str(empty)]) == 1
    assert "no documents to evaluate" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no documents"):
        evaluate_near_dedup([], DedupConfig())

    text = dh.make_text(rng, 100)
    records = [{"text": text}, {"id": "no text here"}, b"{broken\n", {"text": dh.near_copy(text, rng)}, {"text": 3}]
    path = dh.write_jsonl(tmp_path / "x.jsonl", records)
    assert data_main(["eval-dedup", "--input", str(path)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["documents"] == 2 and result["true_pairs"] == 1
    assert result["skipped_records"] == {"missing_text": 1, "malformed_json": 1, "bad_text_type": 1}
    assert "missing_text: 1 (line 2)" in captured.err and "malformed_json: 1 (line 3)" in captured.err

    assert data_main(["eval-dedup", "--input", str(path), "--text-key", "body"]) == 1
    err = capsys.readouterr().err
    assert "missing_text: 4 (lines 1, 2, 4, 5); malformed_json: 1 (line 3); no documents to evaluate" in err


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


@pytest.mark.slow
def test_demo_output_keeps_its_size_with_neutral_defaults(demo_run):
    report = json.loads((demo_run / "report.json").read_text())
    # 5773 out before issue 13
    assert (report["totals"]["documents_in"], report["totals"]["documents_out"]) == (6450, 5771)
