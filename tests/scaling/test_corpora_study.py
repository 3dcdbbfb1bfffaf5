"""`corpora:` (the paper's Table 4): the same study on each corpus, each a sub-study of its own folder (plan, results
table, resume, dry run, collect) on its own dataset path with one shared tokenizer, then fitted side by side."""

import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pytest

from deepseek_hf.cli import main as deepseek_hf_main
from deepseek_hf.scaling.results import read_results
from deepseek_hf.scaling.sweep import corpus_studies, load_config, plan_runs, pretrain_command, run_sweep

sys.path.insert(0, str(Path(__file__).parent))
import fake_pretrain  # noqa: E402
from test_sweep import FAKE, REPO, in_process_runner, write_configs  # noqa: E402


@pytest.fixture
def corpora(tmp_path):
    """Two corpus files; given to load_config as an override (write_configs' YAML would sort the names)."""
    paths = {}
    for name in ("low", "high"):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text('{"text": "a document"}\n')
    return {name: str(path) for name, path in paths.items()}


def test_each_corpus_is_a_study_of_its_own(tmp_path, corpora, monkeypatch, capsys):
    calls_file = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls_file))
    config = load_config(write_configs(tmp_path), {"corpora": corpora})
    studies = corpus_studies(config)
    names = [spec.name for spec in plan_runs(studies["low"])]
    assert list(studies) == ["low", "high"] and names == [spec.name for spec in plan_runs(studies["high"])]
    with pytest.raises(ValueError, match="plans one sub-study per corpus"):
        plan_runs(config)

    report = run_sweep(config, runner=lambda *args, **kw: fake_pretrain.main(_argv(args[0])))
    assert not report.failed and len(report.trained) == 2 * len(names) and report.planned == 2 * len(names)
    assert report.trained[0] == f"low/{names[0]}" and "corpus high: " in report.summary()
    study = Path(config.output_dir)
    for name, path in corpora.items():
        rows = read_results(study / name / "results.jsonl")
        assert [row["run"] for row in rows] == names
        assert all(row["output_dir"].startswith(str(study / name / "runs")) for row in rows)
        assert (study / name / "plan.json").is_file()
        command = pretrain_command(studies[name], plan_runs(studies[name])[0])
        assert command[command.index("--dataset_path") + 1] == path
        assert command[command.index("--tokenized_cache_dir") + 1] == str(study / name / "tokenized")
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
    assert [call["dataset"] for call in calls] == [corpora["low"]] * len(names) + [corpora["high"]] * len(names)
    listing = json.loads((study / "corpora.json").read_text())["corpora"]
    assert listing == {
        name: {"dataset_path": path, "results": f"{name}/results.jsonl"} for name, path in corpora.items()
    }

    again = run_sweep(config, runner=in_process_runner([]))  # resumed: nothing is run twice
    assert len(again.skipped) == 2 * len(names) and not again.trained

    capsys.readouterr()
    assert (
        deepseek_hf_main(["scaling", "fit", str(study), "--bootstrap", "20", "--table", str(tmp_path / "t.md")]) == 0
    )
    table = (tmp_path / "t.md").read_text()
    assert "| low | " in table and "| high | " in table and "- low -> high: a " in table


def _argv(command):
    return command[command.index(FAKE) + 1 :]


def test_shared_tokenizer_and_cluster_flow(tmp_path, corpora):
    config = load_config(write_configs(tmp_path, dry_run=True), {"corpora": corpora})
    studies = corpus_studies(config)
    assert {study.tokenizer_path for study in studies.values()} == {Path(config.output_dir) / "tokenizer"}
    run_sweep(config)
    lines = {}
    for name in corpora:
        lines[name] = (Path(config.output_dir) / name / "commands.sh").read_text().splitlines()[1:]
        assert all(f"--dataset_path {shlex.quote(corpora[name])}" in line for line in lines[name])
    for line in lines["high"][:2]:  # two "jobs" of one corpus finish
        assert fake_pretrain.main(_argv(shlex.split(line))) == 0
    collect = load_config(write_configs(tmp_path, collect_only=True), {"corpora": corpora})
    report = run_sweep(collect, runner=in_process_runner(calls := []))
    assert not calls and report.collected == [f"high/{Path(shlex.split(line)[shlex.split(line).index('--output_dir') + 1]).name}" for line in lines["high"][:2]]  # fmt: skip


def test_a_corpus_path_cannot_change_under_the_same_name(tmp_path, corpora):
    run_sweep(load_config(write_configs(tmp_path), {"corpora": corpora}), runner=in_process_runner([]))
    moved = {**corpora, "low": corpora["high"]}
    with pytest.raises(ValueError, match="gives corpus\\(es\\) low another dataset path"):
        run_sweep(load_config(write_configs(tmp_path), {"corpora": moved}), runner=in_process_runner([]))


def test_a_failed_corpus_stops_the_later_ones(tmp_path, corpora, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "L1")
    config = load_config(write_configs(tmp_path), {"corpora": corpora})
    report = run_sweep(config, runner=in_process_runner([]))
    assert report.failed and all(f.run.startswith("low/") for f in report.failed)
    assert report.not_started and all(run.startswith(("low/", "high/")) for run in report.not_started)
    assert not (Path(config.output_dir) / "high" / "results.jsonl").exists()


@pytest.mark.parametrize(
    "corpora, error, message",
    [
        ({}, ValueError, "corpora must be a non-empty mapping"),
        ([["a", "b"]], ValueError, "corpora must be a non-empty mapping"),
        ({"low": "/nonexistent/corpus.jsonl"}, FileNotFoundError, "the dataset path of corpus 'low'"),
        ({"bad/name": "CORPUS"}, ValueError, "'bad/name' is not a usable corpus name"),
        ({"tokenizer": "CORPUS"}, ValueError, "'tokenizer' is not a usable corpus name"),
        ({"low": ""}, ValueError, "corpus 'low' needs a dataset path"),
    ],
)
def test_bad_corpora(tmp_path, corpora, error, message):
    real = tmp_path / "c.jsonl"
    real.write_text('{"text": "x"}\n')
    corpora = (
        corpora if not isinstance(corpora, dict) else {k: v.replace("CORPUS", str(real)) for k, v in corpora.items()}
    )
    with pytest.raises(error, match=message):
        load_config(write_configs(tmp_path), {"corpora": corpora})


def test_corpora_and_a_dataset_path_of_ones_own_conflict(tmp_path, corpora):
    with pytest.raises(ValueError, match="pretrain_args sets dataset_path, which `corpora` sets"):
        load_config(write_configs(tmp_path, pretrain_args={"dataset_path": "x"}), {"corpora": corpora})


def test_shipped_quality_config_passes_the_pretraining_parser(monkeypatch, tmp_path):
    """quality_cpu.yaml: two corpora, the shipped one and its shuffled copy; every run's command parses strictly."""
    monkeypatch.chdir(REPO)
    path = REPO / "recipes/tiny/scaling/quality_cpu.yaml"
    import yaml

    values = yaml.safe_load(path.read_text())
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text('{"text": "x"}\n')  # the config's first command builds it; here a stand-in
    config = load_config(path, {"corpora": {**values["corpora"], "shuffled": str(shuffled)}})
    spec = importlib.util.spec_from_file_location("pretrain_recipe", REPO / "recipes" / "pretrain.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    for name, study in corpus_studies(config).items():
        specs = plan_runs(study)
        assert len(specs) >= 6 and len(study.budgets) >= 2
        data_args, _, _ = recipe.make_parser().parse_args_and_config(pretrain_command(study, specs[0], "tok")[2:])
        assert data_args.dataset_path == config.corpora[name] and data_args.validation_fraction > 0
    assert list(config.corpora) == ["shuffled", "shipped"]  # lower quality first
