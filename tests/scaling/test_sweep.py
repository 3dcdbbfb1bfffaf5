"""The sweep driver with a stand-in pretraining script (tests/scaling/fake_pretrain.py): resume after a kill, no run
redone, whole rows only, failures reported, the prediction written before the predicted run, clear config errors."""

import json
import multiprocessing
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from deepseek_hf.scaling.results import read_results
from deepseek_hf.scaling.sweep import load_config, plan_runs, pretrain_command, run_sweep

sys.path.insert(0, str(Path(__file__).parent))
import fake_pretrain  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FAKE = str(Path(__file__).parent / "fake_pretrain.py")
SPACE = {"head_dim": 32, "ffn_multiple_of": 32, "max_layers": 8, "max_width": 512, "aspect_ratio": [16, 128]}


def write_configs(tmp_path: Path, **overrides) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"model_preset": "deepseek-llm-tiny", "dataset_path": "unused", "seed": 1}))
    sweep = {
        "base_config": str(base),
        "output_dir": str(tmp_path / "study"),
        "budgets": [3e11, 1e12],
        "num_shapes": 4,
        "span": 16,
        "pretrain_script": FAKE,
        **SPACE,
        **overrides,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def in_process_runner(calls: list[str]):
    """Run the fake recipe in this process (fast), as `local_runner` would run it in a subprocess."""

    def run(command, log_path, timeout, env=None):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("fake run\n")
        argv = command[command.index(FAKE) + 1 :]
        calls.append(Path(argv[argv.index("--output_dir") + 1]).name)
        return fake_pretrain.main(argv)

    return run


def _sweep_in_child(config_path):
    """The sweep in a forked process (torch already imported: no interpreter start-up), real subprocess runs."""
    run_sweep(load_config(config_path))


def test_killed_sweep_resumes_without_redoing_runs(tmp_path, monkeypatch):
    config_path = write_configs(tmp_path, run_env={"FAKE_ENV_PROBE": "set by run_env"})
    names = [spec.name for spec in plan_runs(load_config(config_path))]
    assert len(names) >= 6
    victim = names[2]
    calls_file = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls_file))
    monkeypatch.setenv("FAKE_KILL_SWEEP", victim)  # the fake run SIGKILLs its parent: the sweep dies mid-run
    child = multiprocessing.get_context("fork").Process(target=_sweep_in_child, args=(config_path,))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    results = tmp_path / "study" / "results.jsonl"
    assert [row["run"] for row in read_results(results)] == names[:2]  # whole rows only, the table reads back
    assert read_results(results.with_suffix(".csv")) == read_results(results)

    monkeypatch.delenv("FAKE_KILL_SWEEP")
    report = run_sweep(load_config(config_path))  # the real local runner: one subprocess per run
    assert report.skipped == names[:2] and report.trained == names[2:] and not report.failed
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
    runs = [call["run"] for call in calls]
    assert runs == names[:3] + names[2:]  # the victim twice, nobody else
    assert [call["resumed"] for call in calls if call["run"] == victim] == [False, True]  # from its checkpoint
    assert {call["env"] for call in calls} == {"set by run_env"}
    rows = read_results(results)
    assert sorted(row["run"] for row in rows) == sorted(names)
    for row in rows:
        assert row["flops"] == row["model_scale"] * row["tokens"] and row["vocab_size"] == 2048
        assert row["tokens"] * row["model_scale"] >= row["budget"]  # whole steps: at least the budget
        assert row["eval_bpb"] == fake_pretrain.loss_surface(row["model_scale"], row["tokens"])
    assert "$ " in (tmp_path / "study" / "logs" / f"{victim}.log").read_text()  # the command is logged


def test_finished_run_is_collected_not_retrained(tmp_path):
    config = load_config(write_configs(tmp_path))
    first = plan_runs(config)[0]
    assert fake_pretrain.main(pretrain_command(config, first)[2:]) == 0  # finished, but the sweep died before its row
    calls: list[str] = []
    report = run_sweep(config, runner=in_process_runner(calls))
    assert report.collected == [first.name] and first.name not in calls
    assert len(report.trained) == report.planned - 1 and not report.failed
    again = run_sweep(config, runner=in_process_runner(calls))
    assert len(again.skipped) == report.planned and not again.trained and len(calls) == report.planned - 1


@pytest.mark.parametrize("on_failure", ["stop", "continue"])
def test_failed_run_is_reported(tmp_path, monkeypatch, on_failure):
    config = load_config(write_configs(tmp_path, on_failure=on_failure))
    names = [spec.name for spec in plan_runs(config)]
    monkeypatch.setenv("FAKE_FAIL", names[1])
    report = run_sweep(config, runner=in_process_runner([]))
    (failure,) = report.failed
    assert failure.run == names[1] and "exit code 3" in failure.reason
    assert failure.log == str(tmp_path / "study" / "logs" / f"{names[1]}.log") and Path(failure.log).is_file()
    if on_failure == "stop":
        assert report.trained == names[:1] and report.not_started == names[2:]
    else:
        assert report.trained == names[:1] + names[2:] and not report.not_started
    assert names[1] in report.summary() and failure.log in report.summary()
    monkeypatch.delenv("FAKE_FAIL")
    retry = run_sweep(config, runner=in_process_runner([]))
    assert names[1] in retry.trained and not retry.failed


def test_run_without_validation_metrics_is_a_failure(tmp_path, monkeypatch):
    config = load_config(write_configs(tmp_path, on_failure="continue"))
    name = plan_runs(config)[0].name
    monkeypatch.setenv("FAKE_NO_EVAL", name)
    report = run_sweep(config, runner=in_process_runner([]))
    assert [f.run for f in report.failed] == [name] and "eval_loss" in report.failed[0].reason
    assert name not in {row["run"] for row in read_results(config.results_path)}


def test_cli_failure_exit_code_and_message(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(REPO / "recipes"))
    import scaling_sweep

    config_path = write_configs(tmp_path, budgets=[3e11])
    monkeypatch.setenv("FAKE_FAIL", "isoflop")
    monkeypatch.setattr("deepseek_hf.scaling.sweep.local_runner", in_process_runner([]))
    assert scaling_sweep.cli(["--config", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert "run(s) failed" in err and "logs/isoflop-C3e11" in err


def test_prediction_is_written_before_the_run(tmp_path):
    config = load_config(write_configs(tmp_path, budgets=[3e11, 1e12, 3e12], predict_budget=1e13, fit_bootstrap=20))
    seen = {}
    inner = in_process_runner([])

    def runner(command, log_path, timeout):
        if "predict-" in str(log_path):
            seen["prediction"] = json.loads((tmp_path / "study" / "prediction.json").read_text())
        return inner(command, log_path, timeout)

    report = run_sweep(config, runner=runner)
    assert not report.failed
    before = seen["prediction"]
    assert "actual_bpb" not in before and before["budget"] == 1e13
    rows = {row["run"]: row for row in read_results(config.results_path)}
    predicted = rows["predict-C1e13"]
    assert predicted["kind"] == "predict" and predicted["budget"] == 1e13
    assert report.prediction["actual_bpb"] == predicted["eval_bpb"]
    assert abs(report.prediction["relative_error"]) < 0.05  # the fake surface is smooth: the law extrapolates
    again = run_sweep(config, runner=runner)  # resumed: nothing re-predicted or re-run
    assert not again.trained and again.prediction["written_before_the_run"] == before["written_before_the_run"]


def test_changed_config_is_refused(tmp_path):
    config = load_config(write_configs(tmp_path, budgets=[3e11]))
    run_sweep(config, runner=in_process_runner([]))
    changed = load_config(write_configs(tmp_path, budgets=[3e11], learning_rates=[1e-3]))
    with pytest.raises(ValueError, match="changes run"):
        run_sweep(changed, runner=in_process_runner([]))


def test_dry_run_writes_one_command_per_run(tmp_path):
    config = load_config(
        write_configs(tmp_path, dry_run=True, launcher="accelerate", num_processes=2, run_env={"OMP_NUM_THREADS": 1})
    )
    report = run_sweep(config, runner=in_process_runner([]))
    lines = (tmp_path / "study" / "commands.sh").read_text().splitlines()[1:]
    assert len(lines) == report.planned == len(report.not_started)
    assert all("accelerate.commands.launch --num_processes 2" in line and "--compute_budget" in line for line in lines)
    assert all(line.startswith("OMP_NUM_THREADS=1 ") for line in lines)
    assert not (tmp_path / "study" / "results.jsonl").exists()


def test_grid_sweep(tmp_path):
    config = load_config(
        write_configs(tmp_path, kind="grid", budgets=[1e12], batch_tokens=[1024, 4096], learning_rates=[1e-3, 1e-2])
    )
    report = run_sweep(config, runner=in_process_runner([]))
    rows = read_results(config.results_path)
    assert len(rows) == 4 == len(report.trained) and {row["kind"] for row in rows} == {"grid"}
    assert {(row["batch_size"], row["learning_rate"]) for row in rows} == {(1024, 1e-3), (1024, 1e-2), (4096, 1e-3),
                                                                          (4096, 1e-2)}  # fmt: skip


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"budget": [1e12]}, ValueError, "unknown sweep config key 'budget'; did you mean 'budgets'"),
        ({"budgets": [1e3]}, ValueError, "too small"),
        ({"budgets": []}, ValueError, "budgets must be a non-empty list"),
        ({"launcher": "slurm"}, ValueError, "launcher must be"),
        ({"predict_budget": 1e11}, ValueError, "must be larger than every budget"),
        ({"pretrain_args": {"max_tokens": 5}}, ValueError, "pretrain_args sets max_tokens"),
        ({"base_config": "/nonexistent.yaml"}, FileNotFoundError, "base_config"),
        ({"pretrain_script": "/nonexistent.py"}, FileNotFoundError, "pretrain_script"),
    ],
)
def test_bad_config(tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        config = load_config(write_configs(tmp_path), overrides)
        run_sweep(config, runner=in_process_runner([]))


def test_base_config_with_per_run_keys_is_refused(tmp_path):
    config = load_config(write_configs(tmp_path))
    Path(config.base_config).write_text(yaml.safe_dump({"max_tokens": 1e6, "learning_rate": 1e-3}))
    with pytest.raises(ValueError, match="sets learning_rate, max_tokens, which the sweep sets"):
        run_sweep(config, runner=in_process_runner([]))


def _cli_in_child(config_path):
    sys.path.insert(0, str(REPO / "recipes"))
    import scaling_sweep

    sys.exit(scaling_sweep.cli(["--config", str(config_path)]))


def test_sigterm_stops_the_running_run(tmp_path, monkeypatch):
    """A scheduler's SIGTERM to the sweep ends the pretraining process it launched too (no orphan)."""
    pidfile = tmp_path / "run.pid"
    monkeypatch.setenv("FAKE_HANG_PIDFILE", str(pidfile))
    child = multiprocessing.get_context("fork").Process(target=_cli_in_child, args=(write_configs(tmp_path),))
    child.start()
    for _ in range(600):
        if pidfile.is_file() and pidfile.read_text():
            break
        time.sleep(0.05)
    run_pid = int(pidfile.read_text())
    os.kill(child.pid, signal.SIGTERM)
    child.join(timeout=30)
    assert child.exitcode == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(run_pid, 0)


@pytest.mark.parametrize("name", ["isoflop_cpu.yaml", "ci.yaml"])
def test_shipped_study_configs(name, monkeypatch):
    """The CPU study's configs plan their runs, and every run's command line passes the pretraining recipe's own
    strict parser (unknown or contradictory keys would fail here, not half-way through the study)."""
    import importlib.util

    monkeypatch.chdir(REPO)
    config = load_config(REPO / "recipes" / "tiny" / "scaling" / name)
    specs = plan_runs(config)
    assert len(specs) >= 6 and len(config.budgets) >= 2 and config.predict_budget > max(config.budgets)
    assert config.tokenizer_corpus.startswith("package://")  # runs on what the package ships
    spec = importlib.util.spec_from_file_location("pretrain_recipe", REPO / "recipes" / "pretrain.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    for run in (specs[0], specs[-1]):
        command = pretrain_command(config, run, tokenizer="outputs/tok")
        data_args, training_args, model_args = recipe.make_parser().parse_args_and_config(command[2:])
        assert training_args.compute_budget == run.budget and data_args.seq_length == run.seq_len
        assert training_args.global_batch_size == run.batch_sequences
        assert data_args.validation_fraction > 0 and data_args.dataset_path.startswith("package://")
        assert f"hidden_size={run.shape.d_model}" in model_args.config_overrides


def test_cluster_flow_dry_run_then_collect(tmp_path):
    """dry_run writes the commands (one job each elsewhere); collect_only appends the finished ones, trains none."""
    config = load_config(write_configs(tmp_path, dry_run=True))
    run_sweep(config, runner=in_process_runner([]))
    lines = (tmp_path / "study" / "commands.sh").read_text().splitlines()[1:]
    for line in lines[:3]:  # three "jobs" finish
        argv = shlex.split(line)
        assert fake_pretrain.main(argv[argv.index(FAKE) + 1 :]) == 0
    calls: list[str] = []
    collect = load_config(write_configs(tmp_path, collect_only=True))
    report = run_sweep(collect, runner=in_process_runner(calls))
    assert not calls and len(report.collected) == 3 and len(report.not_started) == len(lines) - 3
    assert len(read_results(collect.results_path)) == 3


def test_prediction_without_bootstrap_when_too_few_runs(tmp_path):
    """3 shapes per budget: most bootstrap resamples lose a curve; the prediction is made without an interval, and
    says so in prediction.json (not silently)."""
    config = load_config(
        write_configs(tmp_path, budgets=[3e11, 1e12, 3e12], num_shapes=3, predict_budget=1e13, fit_bootstrap=200)
    )
    report = run_sweep(config, runner=in_process_runner([]))
    assert not report.failed and report.prediction["actual_bpb"] > 0
    assert any(w.startswith("no bootstrap interval") for w in report.prediction["warnings"])
    assert report.prediction["predicted"]["std"] is None
