"""`kind: schedule` (the paper's Figure 1b): one shape, budget, batch and LR under several multi-step schedules; each
run gets its milestones as `lr_scheduler_kwargs`, its row keeps the training-loss curve, and one figure draws them."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from deepseek_hf.cli import main as deepseek_hf_main
from deepseek_hf.scaling.results import read_results
from deepseek_hf.scaling.shapes import schedule_label
from deepseek_hf.scaling.sweep import load_config, plan_runs, pretrain_command, run_sweep

sys.path.insert(0, str(Path(__file__).parent))
from test_sweep import REPO, in_process_runner, write_configs  # noqa: E402

SCHEDULES = [[0.8, 0.9], [0.9, 1.0], [0.7, 0.85]]
STUDY = {"kind": "schedule", "budgets": [1e12], "schedules": SCHEDULES, "n_layer": 2, "d_model": 64,
         "pretrain_args": {"logging_steps": 5}}  # fmt: skip


def test_schedule_labels_are_the_stage_proportions():
    assert [schedule_label(s) for s in SCHEDULES] == ["80/10/10", "90/10/0", "70/15/15"]


def test_plan_varies_only_the_milestones(tmp_path):
    config = load_config(write_configs(tmp_path, **STUDY))
    specs = plan_runs(config)
    assert [s.name for s in specs] == [
        f"schedule-C1e12-L2-d64-s{label}" for label in ("80-10-10", "90-10-0", "70-15-15")
    ]
    assert len({(s.shape, s.tokens, s.batch_sequences, s.learning_rate) for s in specs}) == 1
    assert [s.schedule["milestones"] for s in specs] == SCHEDULES
    assert all(s.schedule["factors"] == [0.316, 0.1] for s in specs)
    command = pretrain_command(config, specs[1])
    flag = json.loads(command[command.index("--lr_scheduler_kwargs") + 1])
    assert flag == {"milestones": [0.9, 1.0], "factors": [0.316, 0.1]}


def test_sweep_keeps_each_runs_loss_curve_and_plots_them(tmp_path, capsys):
    config = load_config(write_configs(tmp_path, **STUDY))
    report = run_sweep(config, runner=in_process_runner([]))
    assert len(report.trained) == 3 and not report.failed
    rows = read_results(config.results_path)
    assert {row["kind"] for row in rows} == {"schedule"}
    for row, milestones in zip(rows, SCHEDULES):
        curve = row["extra"]["loss_curve"]
        steps = row["extra"]["steps"]
        assert row["extra"]["schedule"]["milestones"] == milestones
        assert curve["step"] == list(range(5, steps + 1, 5)) and len(curve["loss"]) == len(curve["tokens"])
        # the logged LR drops where this run's milestones are (the fake recipe follows lr_scheduler_kwargs)
        dropped = [s for s, lr in zip(curve["step"], curve["learning_rate"]) if lr < row["learning_rate"]]
        assert dropped[0] / steps == pytest.approx(milestones[0], abs=5 / steps)
    assert read_results(config.results_path.with_suffix(".csv")) == rows
    plots = tmp_path / "plots"
    assert deepseek_hf_main(["scaling", "schedules", str(config.results_path), "--output-dir", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "80/10/10" in out and "90/10/0" in out and (plots / "schedule_curves.png").stat().st_size > 10_000


def test_plot_needs_schedule_rows(tmp_path, capsys):
    config = load_config(write_configs(tmp_path))  # an IsoFLOP study
    run_sweep(config, runner=in_process_runner([]))
    assert deepseek_hf_main(["scaling", "schedules", str(config.results_path), "--output-dir", str(tmp_path)]) == 1
    assert "no rows of kind 'schedule'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"schedules": None}, "kind 'schedule' needs `schedules`"),
        ({"schedules": []}, "kind 'schedule' needs `schedules`"),
        ({"schedules": [[0.9, 0.8]]}, r"schedules\[0\]: milestones must be increasing"),
        (
            {"schedules": [[0.8, 1.2]]},
            r"schedules\[0\]: milestones must be increasing fractions of the tokens in \(0, 1\]",
        ),
        ({"schedules": [[0.0, 0.9]]}, r"schedules\[0\]: expected a positive number"),
        ({"schedules": [[0.8, 0.9], [0.9]]}, r"schedules\[1\]: expected a list of 2 milestones"),
        ({"schedules": [[0.8, 0.9], [0.8, 0.9]]}, "listed twice"),
        ({"schedule_factors": [0.3, -0.1]}, "schedule_factors: expected a positive number"),
        ({"learning_rates": [1e-3, 1e-2]}, "kind 'schedule' takes one learning_rates value"),
        ({"pretrain_args": {"lr_scheduler_kwargs": {}}}, "pretrain_args sets lr_scheduler_kwargs"),
        ({"kind": "isoflop"}, "schedules is a sweep axis of kind 'schedule'"),
        ({"schedule": [[0.8, 0.9]]}, "unknown sweep config key 'schedule'; did you mean 'schedules'"),
    ],
)
def test_bad_schedule_config(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(write_configs(tmp_path, **STUDY), overrides)


@pytest.mark.parametrize(
    "base, message",
    [
        ({"lr_scheduler_kwargs": {"milestones": [0.5]}}, "sets lr_scheduler_kwargs, which kind 'schedule' sets"),
        ({"lr_scheduler_type": "cosine"}, "sets lr_scheduler_type 'cosine'"),
    ],
)
def test_base_config_that_fights_the_schedule_axis(tmp_path, base, message):
    config = load_config(write_configs(tmp_path, **STUDY))
    Path(config.base_config).write_text(yaml.safe_dump({"model_preset": "deepseek-llm-tiny", **base}))
    with pytest.raises(ValueError, match=message):
        run_sweep(config, runner=in_process_runner([]))


def test_shipped_schedule_config_passes_the_pretraining_parser(monkeypatch):
    """Every run's command line of schedule_cpu.yaml parses strictly, milestones included."""
    monkeypatch.chdir(REPO)
    config = load_config(REPO / "recipes/tiny/scaling/schedule_cpu.yaml")
    specs = plan_runs(config)
    assert [schedule_label(s.schedule["milestones"]) for s in specs] == ["80/10/10", "90/10/0", "70/15/15"]
    spec = importlib.util.spec_from_file_location("pretrain_recipe", REPO / "recipes" / "pretrain.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    for run in specs:
        command = pretrain_command(config, run, tokenizer="outputs/tok")
        _, training_args, _ = recipe.make_parser().parse_args_and_config(command[2:])
        assert training_args.lr_scheduler_kwargs == run.schedule and training_args.logging_steps == 5
