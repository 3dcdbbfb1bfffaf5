"""Batch size, learning rate and length of a run: explicit, from the scaling laws, and contradictions."""

import math

import pytest

from deepseek_hf.modeling import DeepseekLLMConfig
from deepseek_hf.scaling import optimal_batch_tokens, optimal_lr
from deepseek_hf.training import PretrainConfig, resolve_training_plan

SEVEN_B = DeepseekLLMConfig.from_preset("deepseek-llm-7b")


def config(tmp_path, **kwargs):
    return PretrainConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)


def test_table_2_run_explicit(tmp_path):
    """The 7B config of Table 2: 2304 sequences of 4096, LR 4.2e-4, 2T tokens, 4 per device on 64 processes."""
    args = config(
        tmp_path, per_device_train_batch_size=4, global_batch_size=2304, learning_rate=4.2e-4, max_tokens=2e12
    )
    plan = resolve_training_plan(args, SEVEN_B, seq_length=4096, world_size=64)
    assert plan.gradient_accumulation_steps == 9 and plan.batch_size_tokens == 2304 * 4096
    assert plan.learning_rate == 4.2e-4 and plan.total_tokens == 2e12
    assert plan.max_steps == math.ceil(2e12 / (2304 * 4096)) == 211_928
    assert plan.compute_budget == pytest.approx(SEVEN_B.flops_per_token * 2e12)
    assert plan.sources["batch"] == "config (global_batch_size)"


def test_7b_from_the_scaling_laws(tmp_path):
    """Only the token budget given: ~2252 sequences (9.2M tokens) and LR 4.25e-4, as Table 2 (within 3% / 2%)."""
    args = config(tmp_path, per_device_train_batch_size=4, max_tokens=2e12)
    plan = resolve_training_plan(args, SEVEN_B, seq_length=4096, world_size=1)
    compute = SEVEN_B.flops_per_token * 2e12
    assert plan.global_batch_size == 2252 and plan.gradient_accumulation_steps == 563
    assert plan.batch_size_tokens == pytest.approx(optimal_batch_tokens(compute), rel=1e-3)
    assert plan.learning_rate == pytest.approx(optimal_lr(compute)) and plan.learning_rate == pytest.approx(
        4.25e-4, rel=2e-3
    )
    assert plan.global_batch_size == pytest.approx(2304, rel=0.03) and plan.learning_rate == pytest.approx(
        4.2e-4, rel=0.02
    )
    assert "scaling law" in plan.sources["batch"] and "scaling law" in plan.sources["learning_rate"]
    assert "B_opt" in plan.summary() and "eta_opt" in plan.summary()


def test_compute_budget_sets_tokens_batch_and_lr(tmp_path):
    model = DeepseekLLMConfig.from_scale(num_hidden_layers=8, hidden_size=512, max_position_embeddings=2048)
    args = config(tmp_path, per_device_train_batch_size=8, compute_budget=1e17)
    plan = resolve_training_plan(args, model, seq_length=2048, world_size=2)
    m = model.flops_per_token_at(2048)
    assert plan.flops_per_token == m and plan.total_tokens == pytest.approx(1e17 / m)
    assert plan.global_batch_size % 16 == 0  # whole steps of 8 per device x 2 processes
    assert abs(plan.batch_size_tokens - optimal_batch_tokens(1e17)) <= 8 * 2048  # rounded to the nearest step
    assert plan.learning_rate == pytest.approx(optimal_lr(1e17))
    assert plan.max_steps == math.ceil(plan.total_tokens / plan.batch_size_tokens)


def test_explicit_values_win_over_the_laws(tmp_path):
    args = config(
        tmp_path, per_device_train_batch_size=2, batch_size_tokens=64 * 4096, learning_rate=1e-3, max_tokens=1e9
    )
    plan = resolve_training_plan(args, SEVEN_B, seq_length=4096, world_size=4)
    assert plan.global_batch_size == 64 and plan.gradient_accumulation_steps == 8 and plan.learning_rate == 1e-3
    assert plan.scaling_law["learning_rate"] == pytest.approx(optimal_lr(SEVEN_B.flops_per_token * 1e9))  # logged


def test_max_steps_and_hf_batch(tmp_path):
    args = config(
        tmp_path, per_device_train_batch_size=4, gradient_accumulation_steps=3, learning_rate=1e-3, max_steps=10
    )
    plan = resolve_training_plan(args, SEVEN_B, seq_length=128, world_size=2)
    assert plan.global_batch_size == 24 and plan.total_tokens == 10 * 24 * 128 and plan.max_steps == 10
    assert plan.flops_per_token is None and plan.scaling_law is None  # nothing needed M


def test_max_steps_without_lr_uses_the_law_at_its_budget(tmp_path):
    args = config(tmp_path, per_device_train_batch_size=4, max_steps=100)
    plan = resolve_training_plan(args, SEVEN_B, seq_length=4096, world_size=1)
    assert plan.learning_rate == pytest.approx(optimal_lr(SEVEN_B.flops_per_token * 100 * 4 * 4096))


def test_resume_extends_to_the_new_budget(tmp_path):
    """A checkpoint at step 80 with 80 x 8 x 128 tokens seen, budget doubled (and the batch doubled)."""
    args = config(
        tmp_path, per_device_train_batch_size=8, global_batch_size=16, learning_rate=1e-3, max_tokens=200 * 8 * 128
    )
    plan = resolve_training_plan(args, SEVEN_B, seq_length=128, world_size=1, tokens_seen=80 * 8 * 128, steps_done=80)
    assert plan.max_steps == 80 + 60  # (200 - 80) x 1024 tokens left, 2048 tokens per step
    with pytest.raises(ValueError, match="more than the budget"):
        resolve_training_plan(args, SEVEN_B, seq_length=128, world_size=1, tokens_seen=10**9, steps_done=80)


@pytest.mark.parametrize(
    "kwargs, world_size, message",
    [
        (dict(global_batch_size=16, batch_size_tokens=32 * 128, max_steps=10), 1, "contradictory batch settings"),
        (dict(global_batch_size=18, max_steps=10), 1, "does not split into whole steps"),  # 4 per device
        (dict(global_batch_size=16, max_steps=10), 3, "does not split into whole steps"),  # 4 x 3 processes
        (dict(global_batch_size=16, gradient_accumulation_steps=2, max_steps=10), 1, "contradictory batch settings"),
        (dict(batch_size_tokens=1000, max_steps=10), 1, "not a whole number of sequences"),
        (dict(max_tokens=1e6, max_steps=10), 1, "contradictory run lengths"),
        (dict(max_tokens=1e6, compute_budget=1e17), 1, "contradictory run lengths"),
        (dict(), 1, "the run has no length"),
        (dict(max_tokens=100), 1, "less than one batch"),
    ],
)
def test_contradictory_settings(tmp_path, kwargs, world_size, message):
    args = config(tmp_path, per_device_train_batch_size=4, learning_rate=1e-3, **kwargs)
    with pytest.raises(ValueError, match=message):
        resolve_training_plan(args, SEVEN_B, seq_length=128, world_size=world_size)


def test_config_field_checks(tmp_path):
    with pytest.raises(ValueError, match="max_tokens"):
        config(tmp_path, max_tokens=-1.0)
    with pytest.raises(ValueError, match="global_batch_size"):
        config(tmp_path, global_batch_size=0)
    args = config(tmp_path)
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (0.9, 0.95, 0.1, 1.0)
    assert args.warmup_steps == 2000 and args.lr_scheduler_type == "multi_step" and args.uses_token_schedule
    assert args.bf16 is False  # fp32 on a CPU
    assert config(tmp_path, lr_scheduler_type="linear").uses_token_schedule is False


def test_trackers_only_when_installed(tmp_path):
    from transformers.integrations import is_tensorboard_available, is_trackio_available

    args = PretrainConfig(output_dir=str(tmp_path), use_cpu=True)  # report_to: auto
    expected = [
        name for name, ok in (("tensorboard", is_tensorboard_available()), ("trackio", is_trackio_available())) if ok
    ]
    assert args.report_to == expected
