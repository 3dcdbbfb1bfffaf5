"""recipes/pretrain.py with a validation split: eval_loss / eval_bits_per_byte every eval_steps (in the log history
and TensorBoard) and at the end, the final values with the tokens and FLOPs in all_results.json, and a resumed run
that reports the same validation values as the uninterrupted one."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from deepseek_hf.training.validation import ValidationDataset, score_validation

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYERS, WIDTH, SEQ, BATCH, STEPS = 2, 64, 32, 4, 6
RESULT_KEYS = ("eval_loss", "eval_bits_per_byte", "eval_tokens", "eval_bytes", "train_tokens", "flops_per_token")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe_validation", REPO_ROOT / "recipes" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(recipe, *argv):
    return recipe.main(*recipe.make_parser().parse_args_and_config([str(a) for a in argv]))


@pytest.fixture(scope="module")
def config(tmp_path_factory, tokenizer_dir, corpus_slice) -> Path:
    folder = tmp_path_factory.mktemp("validation-recipe")
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset_path": str(corpus_slice),
                "seq_length": SEQ,
                "tokenized_cache_dir": str(folder / "tokenized"),
                "validation_fraction": 0.05,
                "max_validation_tokens": 2000,
                "tokenizer_name_or_path": str(tokenizer_dir),
                "model_preset": "deepseek-llm-tiny",
                "config_overrides": f"num_hidden_layers={LAYERS},hidden_size={WIDTH},intermediate_size=128",
                "use_cpu": True,
                "per_device_train_batch_size": BATCH,
                "learning_rate": 2e-3,
                "warmup_steps": 1,
                "max_steps": STEPS,
                "logging_steps": 1,
                "eval_strategy": "steps",
                "eval_steps": 3,
                "save_steps": 3,
                "seed": 0,
                "report_to": "tensorboard",
                "disable_tqdm": True,
                "dataloader_num_workers": 0,
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def finished(recipe, config, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("run") / "out"
    run(recipe, "--config", config, "--output_dir", output_dir)
    return output_dir


def evaluations(output_dir: Path) -> dict[int, dict]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return {entry["step"]: entry for entry in state["log_history"] if "eval_loss" in entry}


def test_all_results_carry_the_validation_and_compute(finished):
    results = json.loads((finished / "all_results.json").read_text())
    assert set(RESULT_KEYS) | {"train_flops"} <= set(results)
    flops_per_token = 72 * LAYERS * WIDTH**2 + 12 * LAYERS * WIDTH * SEQ  # paper Eq. 2 at the training length
    assert results["train_tokens"] == STEPS * BATCH * SEQ
    assert results["flops_per_token"] == flops_per_token
    assert results["train_flops"] == flops_per_token * STEPS * BATCH * SEQ
    assert results["eval_tokens"] == results["validation"]["predicted_tokens"] > 0
    assert results["eval_bytes"] == results["validation"]["bytes"] > results["eval_tokens"]
    assert results["eval_bits_per_byte"] == pytest.approx(
        results["eval_loss"] * results["eval_tokens"] / math.log(2) / results["eval_bytes"], rel=1e-12
    )
    logged = evaluations(finished)
    assert sorted(logged) == [3, STEPS]  # every eval_steps; the final one is not scored twice
    assert results["eval_loss"] == logged[STEPS]["eval_loss"] < logged[3]["eval_loss"]
    assert all("eval_bits_per_byte" in entry and "tokens_seen" in entry for entry in logged.values())


def test_the_final_values_are_those_of_the_saved_model(finished, config):
    """Scoring the saved model again on the cached validation split gives all_results.json's numbers."""
    from transformers import AutoModelForCausalLM

    results = json.loads((finished / "all_results.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(finished)
    cache = Path(yaml.safe_load(config.read_text())["tokenized_cache_dir"])
    (corpus_dir,) = cache.glob("*-split-*/validation")
    valid = ValidationDataset(corpus_dir, SEQ, max_tokens=2000)
    nll, tokens = score_validation(model, valid, batch_size=8)
    assert tokens == results["eval_tokens"] and valid.num_bytes == results["eval_bytes"]
    assert nll / tokens == pytest.approx(results["eval_loss"], rel=1e-6)


def test_tensorboard_gets_the_validation_curves(finished):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = {path.parent for path in finished.glob("runs/*/events.out.tfevents.*")}
    events = EventAccumulator(str(run_dir))
    events.Reload()
    logged = evaluations(finished)
    for tag, key in (("eval/loss", "eval_loss"), ("eval/bits_per_byte", "eval_bits_per_byte")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == sorted(logged)
        assert [s.value for s in scalars] == pytest.approx([logged[s.step][key] for s in scalars], rel=1e-6)


def test_a_resumed_run_reports_the_same_validation(recipe, config, finished, tmp_path):
    """Resumed from checkpoint-3 with no periodic evaluation: the split comes from the cache, the end-of-run
    evaluation still runs, and it equals the uninterrupted run's (bit-identical training on CPU)."""
    output_dir = tmp_path / "resumed"
    metrics = run(
        recipe,
        "--config",
        config,
        "--output_dir",
        output_dir,
        "--resume_from_checkpoint",
        finished / "checkpoint-3",
        "--eval_strategy",
        "no",
        "--report_to",
        "none",
    )
    expected = json.loads((finished / "all_results.json").read_text())
    results = json.loads((output_dir / "all_results.json").read_text())
    assert metrics["eval_loss"] == results["eval_loss"] == expected["eval_loss"]
    assert results["eval_bits_per_byte"] == expected["eval_bits_per_byte"]
    assert results["train_tokens"] == expected["train_tokens"]
    assert evaluations(output_dir)[3] == evaluations(finished)[3]  # the checkpoint's history, carried on
