"""recipes/pretrain.py refuses a bad configuration before it tokenizes anything (and leaves nothing behind), falls
back to another corpus only when the config asks by name, refuses a resume it cannot make exactly, and reports user
errors as one message with a non-zero exit code (the traceback with --debug)."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepseek_hf.training import CheckpointError

REPO_ROOT = Path(__file__).resolve().parents[2]
PRETRAIN_RECIPE = REPO_ROOT / "recipes" / "pretrain.py"

TINY = "num_hidden_layers=2,hidden_size=64,intermediate_size=128"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe_checks", PRETRAIN_RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def config(tmp_path, tokenizer_dir, corpus_slice):
    """A tiny run whose tokenized cache is the default one, `<output_dir>/tokenized`."""
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset_path": str(corpus_slice),
                "seq_length": 32,
                "tokenizer_name_or_path": str(tokenizer_dir),
                "model_preset": "deepseek-llm-tiny",
                "config_overrides": TINY,
                "use_cpu": True,
                "per_device_train_batch_size": 4,
                "learning_rate": 1e-3,
                "warmup_steps": 1,
                "max_steps": 4,
                "logging_steps": 1,
                "save_steps": 2,
                "report_to": "none",
                "disable_tqdm": True,
                "dataloader_num_workers": 0,
                "output_dir": str(tmp_path / "out"),
            }
        )
    )
    return path


def run(recipe, *argv):
    """The recipe's `main` in this process, on parsed arguments (user errors propagate)."""
    return recipe.main(*recipe.make_parser().parse_args_and_config([str(a) for a in argv]))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model_preset", "deepseek-llm-8b"], "Unknown preset 'deepseek-llm-8b'"),
        (["--config_overrides", f"{TINY},vocab_size=256"], "the tokenizer has 515 tokens but .* vocab_size=256"),
        (["--max_steps", "-1", "--max_tokens", "100"], "token budget 100 is less than one batch of 128 tokens"),
        (["--lr_scheduler_kwargs", '{"milestones": [0.9, 0.8], "factors": [0.3, 0.1]}'], "milestones must be"),
        (["--dataset_path", "corpus-that-is-not-there.jsonl"], "does not exist"),
    ],
    ids=["unknown-preset", "tokenizer-larger-than-vocab", "budget-below-one-step", "bad-milestones", "no-data"],
)
def test_a_bad_configuration_is_found_before_tokenizing(recipe, config, tmp_path, flags, message, caplog):
    with caplog.at_level(logging.INFO), pytest.raises((ValueError, OSError), match=message):
        run(recipe, "--config", config, *flags)
    assert "tokenizing" not in caplog.text.lower()
    assert not (tmp_path / "out").exists()  # no tokenized/ (nor anything else) left behind


def test_the_shipped_demo_config_does_not_fall_back_to_the_sample(recipe, tokenizer_dir, tmp_path):
    """A mistyped dataset_path in the demo config is an error, not a run on the shipped sample corpus."""
    with pytest.raises(FileNotFoundError, match="dataset_path .*outputs/demo/dta' does not exist"):
        run(
            recipe,
            "--config",
            REPO_ROOT / "recipes/tiny/pretrain/config_cpu.yaml",
            "--dataset_path",
            tmp_path / "outputs/demo/dta",
            "--tokenizer_name_or_path",
            tokenizer_dir,
            "--output_dir",
            tmp_path / "out",
            "--max_tokens",
            "3e4",
            "--use_cpu",
            "true",
        )
    assert not (tmp_path / "out").exists()


def test_dataset_path_if_missing_is_repeated_in_the_final_summary(recipe, config, corpus_slice, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        metrics = run(
            recipe,
            "--config",
            config,
            "--dataset_path",
            tmp_path / "outputs/data",
            "--dataset_path_if_missing",
            corpus_slice,
            "--max_steps",
            "2",
        )
    note = f"dataset_path '{tmp_path}/outputs/data' does not exist: trained on dataset_path_if_missing '{corpus_slice}' instead"
    assert metrics["notes"] == [note] and metrics["dataset"] == str(corpus_slice)
    assert json.loads((tmp_path / "out" / "all_results.json").read_text())["notes"] == [note]
    assert caplog.records[-1].getMessage() == f"Note: {note}"  # the last line of the run


def test_a_resume_it_cannot_make_exactly_is_refused(recipe, config, tmp_path, caplog):
    run(recipe, "--config", config)
    (tmp_path / "out" / "checkpoint-4" / "optimizer.pt").unlink()
    for resume in ([], ["--resume_from_checkpoint", tmp_path / "out" / "checkpoint-4"]):  # found in output_dir, given
        with pytest.raises(CheckpointError, match=r"checkpoint-4: it lacks the optimizer state \(optimizer.pt\)"):
            run(recipe, "--config", config, "--max_steps", "6", *resume)
        assert not (tmp_path / "out" / "checkpoint-6").exists()

    with caplog.at_level(logging.INFO):
        metrics = run(recipe, "--config", config, "--max_steps", "6", "--restart_optimizer", "true")
    assert metrics["optimizer_restarted_at_step"] == 4
    assert "restart_optimizer: AdamW starts afresh at step 4" in caplog.text
    assert (
        caplog.records[-1].getMessage().startswith("Note: restart_optimizer: the optimizer started afresh at step 4")
    )
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 6


def test_report_to_a_missing_tracker_names_the_extra(monkeypatch, tmp_path):
    import transformers.integrations

    from deepseek_hf.training import PretrainConfig

    monkeypatch.setattr(transformers.integrations, "is_tensorboard_available", lambda: False)
    with pytest.raises(ValueError, match=r'tensorboard is not installed; pip install "deepseek-hf\[tracking\]"'):
        PretrainConfig(output_dir=str(tmp_path), use_cpu=True, report_to="tensorboard")


def test_an_unfinished_data_run_is_named_before_tokenizing(recipe, config, tmp_path):
    run_dir = tmp_path / "data-run"  # what `deepseek-hf data run` has written while its stages still run
    (run_dir / "logs" / "ingest").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"fingerprint": "0", "config": {}}))
    (run_dir / "logs" / "ingest" / "executor.json").write_text(json.dumps({"_launched": True, "tasks": 1}))
    with pytest.raises(FileNotFoundError, match=f"run has not finished.*read from {run_dir}/output"):
        run(recipe, "--config", config, "--dataset_path", run_dir)
    assert not (tmp_path / "out").exists()


def test_user_errors_are_one_message_and_exit_code_1(recipe, config, capsys, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_HF_DEBUG", raising=False)
    assert recipe.cli(["--config", str(config), "--model_preset", "nope"]) == 1
    assert capsys.readouterr().err.startswith("recipes/pretrain.py: error: Unknown preset 'nope'")
    assert recipe.cli(["--config", str(config), "--lerning_rate", "1"]) == 1  # a typo'd flag too
    assert "--lerning_rate" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Unknown preset"):  # --debug: the traceback
        recipe.cli(["--config", str(config), "--model_preset", "nope", "--debug"])
    monkeypatch.setenv("DEEPSEEK_HF_DEBUG", "1")
    with pytest.raises(ValueError, match="Unknown preset"):
        recipe.cli(["--config", str(config), "--model_preset", "nope"])


def test_the_script_exits_1_without_a_traceback(config, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_HF_DEBUG"}
    result = subprocess.run(
        [sys.executable, str(PRETRAIN_RECIPE), "--config", str(config), "--model_preset", "nope"],
        env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "recipes/pretrain.py: error: Unknown preset 'nope'" in result.stderr
    assert not (tmp_path / "out").exists()
