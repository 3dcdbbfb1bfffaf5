"""PretrainTrainer in-process: the paper's optimizer, the logged LR, the stage-1 checkpoint and its continuation,
atomic checkpoints, and the model sized to the tokenizer."""

import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from deepseek_hf.training import PretrainConfig, PretrainTrainer, build_model, build_model_config, build_packed_dataset
from deepseek_hf.training.schedules import multi_step_lr_factor, schedule_phase

TINY = "num_hidden_layers=2,hidden_size=64,intermediate_size=128,num_attention_heads=4,num_key_value_heads=4"
SEQ, BATCH = 32, 4
TOKENS_PER_STEP = SEQ * BATCH


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tokenizer, corpus_slice):
    return build_packed_dataset(corpus_slice, tokenizer, SEQ, cache_dir=tmp_path_factory.mktemp("tokenized"))


def make_trainer(output_dir, dataset, tokenizer, **kwargs):
    defaults = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        report_to="none",
        seed=0,
        per_device_train_batch_size=BATCH,
        global_batch_size=BATCH,
        learning_rate=1e-3,
        warmup_steps=2,
        logging_steps=1,
        save_steps=1000,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    args = PretrainConfig(**{**defaults, **kwargs})
    torch.manual_seed(0)
    model = build_model(tokenizer, preset="deepseek-llm-tiny", overrides=TINY)
    return PretrainTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def losses_and_lrs(trainer):
    entries = [e for e in trainer.state.log_history if "loss" in e]
    return {e["step"]: e for e in entries}


def test_optimizer_and_init_are_the_papers(tmp_path, dataset, tokenizer):
    trainer = make_trainer(tmp_path, dataset, tokenizer, max_steps=4)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    decayed = [names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.1 for p in g["params"]]
    undecayed = [names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]]
    assert all(g["betas"] == (0.9, 0.95) for g in optimizer.param_groups)
    assert undecayed and all("norm" in name for name in undecayed)  # RMSNorm weights (there are no biases)
    assert "model.layers.0.self_attn.q_proj.weight" in decayed and "lm_head.weight" in decayed
    assert len(decayed) + len(undecayed) == len(names)
    assert trainer.args.max_grad_norm == 1.0
    weight = trainer.model.model.layers[0].mlp.gate_proj.weight
    assert weight.std().item() == pytest.approx(0.006, rel=0.1)  # init std 0.006 (config.initializer_range)


def test_logged_lr_follows_the_multi_step_schedule(tmp_path, dataset, tokenizer):
    trainer = make_trainer(
        tmp_path, dataset, tokenizer, max_steps=20, save_stage1_checkpoint=False, plot_loss_curve=False
    )
    trainer.train()
    logs = losses_and_lrs(trainer)
    assert sorted(logs) == list(range(1, 21))
    for step, entry in logs.items():  # entry `step` = steps done; its LR is the one of step index step - 1
        tokens_before = (step - 1) * TOKENS_PER_STEP
        factor = multi_step_lr_factor(step - 1, tokens_before, warmup_steps=2, total_tokens=20 * TOKENS_PER_STEP)
        assert entry["learning_rate"] == pytest.approx(1e-3 * factor, rel=1e-12, abs=0)
        assert entry["tokens_seen"] == step * TOKENS_PER_STEP == entry["num_input_tokens_seen"]
        assert entry["lr_phase"] == schedule_phase(
            step - 1, tokens_before, warmup_steps=2, total_tokens=20 * TOKENS_PER_STEP
        )
    assert [logs[s]["lr_phase"] for s in (1, 3, 16, 17, 18, 19)] == [0, 1, 1, 2, 2, 3]
    plan = json.loads((tmp_path / "training_plan.json").read_text())
    assert plan["batch_size_tokens"] == TOKENS_PER_STEP and plan["max_steps"] == 20


def test_stage1_checkpoint_continues_with_a_larger_budget(tmp_path, dataset, tokenizer):
    """Run A (budget 20 steps) keeps stage1-checkpoint-16; run B continues from it with twice the budget:
    its LR is back at the peak (the new budget's stage 1), drops at 32 and 36, and its first step is A's."""
    run_a = make_trainer(tmp_path / "a", dataset, tokenizer, max_tokens=20 * TOKENS_PER_STEP)
    run_a.train()
    stage1 = tmp_path / "a" / "stage1-checkpoint-16"
    assert stage1.is_dir()
    assert json.loads((stage1 / "trainer_state.json").read_text())["global_step"] == 16
    assert (tmp_path / "a" / "loss_curve.png").stat().st_size > 10_000
    logs_a = losses_and_lrs(run_a)
    assert logs_a[17]["learning_rate"] == pytest.approx(1e-3 * 0.316)

    run_b = make_trainer(tmp_path / "b", dataset, tokenizer, max_tokens=40 * TOKENS_PER_STEP)
    run_b.train(resume_from_checkpoint=str(stage1))
    logs_b = losses_and_lrs(run_b)
    assert sorted(logs_b) == list(range(1, 41))  # the log history of run A's first 16 steps comes along
    assert all(logs_b[s] == logs_a[s] for s in range(1, 17))
    assert logs_b[17]["loss"] == logs_a[17]["loss"]  # same weights, same batch: it really continues run A
    assert all(logs_b[s]["learning_rate"] == 1e-3 for s in range(17, 33))
    assert all(logs_b[s]["learning_rate"] == pytest.approx(1e-3 * 0.316) for s in range(33, 37))
    assert all(logs_b[s]["learning_rate"] == pytest.approx(1e-3 * 0.1) for s in range(37, 41))
    assert logs_b[40]["tokens_seen"] == 40 * TOKENS_PER_STEP
    assert (tmp_path / "b" / "stage1-checkpoint-32").is_dir()  # the longer run's own stage 1


def test_checkpoints_are_atomic(tmp_path, dataset, tokenizer, monkeypatch):
    trainer = make_trainer(tmp_path, dataset, tokenizer, max_steps=6, save_steps=2, plot_loss_curve=False)
    real_save_rng_state = trainer._save_rng_state

    def crash_on_step_4(output_dir):
        if trainer.state.global_step == 4:
            raise OSError("disk full")
        real_save_rng_state(output_dir)

    monkeypatch.setattr(trainer, "_save_rng_state", crash_on_step_4)
    with pytest.raises(OSError, match="disk full"):
        trainer.train()
    checkpoints = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2"]  # the half-written checkpoint-4 never appeared under its name
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= set(
        os.listdir(tmp_path / "checkpoint-2")
    )
    assert (tmp_path / ".staging").exists()  # what the crash left, outside the checkpoint-* namespace
    make_trainer(tmp_path, dataset, tokenizer, max_steps=6)
    assert not (tmp_path / ".staging").exists()  # cleaned by the next run


def test_final_model_and_rotation(tmp_path, dataset, tokenizer):
    trainer = make_trainer(
        tmp_path, dataset, tokenizer, max_steps=6, save_steps=2, save_total_limit=1, plot_loss_curve=False
    )
    trainer.train()
    trainer.save_model()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-6"]
    assert not list(tmp_path.glob(".*"))  # no staging or deletion leftovers
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(model).__name__ == "DeepseekLLMForCausalLM"
    assert len(AutoTokenizer.from_pretrained(tmp_path)) == len(tokenizer)
    torch.testing.assert_close(model.state_dict()["lm_head.weight"], trainer.model.state_dict()["lm_head.weight"])


def test_model_vocab_comes_from_the_tokenizer(tokenizer):
    config = build_model_config(tokenizer, preset="deepseek-llm-tiny", overrides=TINY)
    assert len(tokenizer) == 515 and config.vocab_size == 640  # padded_vocab_size: next multiple of 128
    assert (config.bos_token_id, config.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert config.num_hidden_layers == 2 and config.hidden_size == 64 and config.head_dim == 16
    assert build_model_config(tokenizer, preset="deepseek-llm-tiny", overrides="vocab_size=1024").vocab_size == 1024


def test_tokenizer_larger_than_the_model_vocab_is_an_error(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="the tokenizer has 515 tokens but the model config sets vocab_size=512"):
        build_model_config(tokenizer, preset="deepseek-llm-tiny", overrides="vocab_size=512")
    config_json = tmp_path / "config.json"
    config_json.write_text(json.dumps({"model_type": "deepseek_llm", "vocab_size": 256, "hidden_size": 64}))
    with pytest.raises(ValueError, match="vocab_size=256"):
        build_model_config(tokenizer, config_path=str(config_json))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(), ValueError, "no model"),
        (dict(preset="deepseek-llm-tiny", overrides="num_hidden_layers"), ValueError, "key=value"),
        (dict(config_path="/nonexistent/config.json"), FileNotFoundError, "not found"),
    ],
)
def test_bad_model_settings(tokenizer, kwargs, error, message):
    with pytest.raises(error, match=message):
        build_model_config(tokenizer, **kwargs)


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    from deepseek_hf.training import load_tokenizer

    with pytest.raises(ValueError, match="no tokenizer: set tokenizer_name_or_path"):
        load_tokenizer(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(str(tmp_path / "outputs" / "demo" / "tokenizer"))
