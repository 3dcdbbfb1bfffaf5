"""Resumes are exact or refused: a checkpoint that lacks what an exact continuation needs (weights, optimizer,
scheduler, RNG, trainer state, tokens seen) is an error naming it, before any step; `restart_optimizer` is the
deliberate exception, and continues the weights and the LR schedule with a fresh optimizer."""

import json
import logging
import shutil

import pytest
import torch

from deepseek_hf.training import (
    CheckpointError,
    PretrainConfig,
    PretrainTrainer,
    build_model,
    build_packed_dataset,
    check_resumable,
)

TINY = "num_hidden_layers=2,hidden_size=64,intermediate_size=128,num_attention_heads=4,num_key_value_heads=4"
SEQ, BATCH, STEPS = 32, 4, 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tokenizer, corpus_slice):
    return build_packed_dataset(corpus_slice, tokenizer, SEQ, cache_dir=tmp_path_factory.mktemp("tokenized"))


def make_trainer(output_dir, dataset, tokenizer, **kwargs):
    args = PretrainConfig(
        **{
            **dict(
                output_dir=str(output_dir),
                use_cpu=True,
                report_to="none",
                seed=0,
                per_device_train_batch_size=BATCH,
                global_batch_size=BATCH,
                learning_rate=1e-3,
                warmup_steps=2,
                max_tokens=STEPS * SEQ * BATCH,  # multi-step: x0.316 from step 8, x0.1 from step 9
                logging_steps=1,
                save_steps=5,
                disable_tqdm=True,
                dataloader_num_workers=0,
                save_stage1_checkpoint=False,
                plot_loss_curve=False,
            ),
            **kwargs,
        }
    )
    torch.manual_seed(0)
    model = build_model(tokenizer, preset="deepseek-llm-tiny", overrides=TINY)
    return PretrainTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def make_args_only(output_dir, **kwargs):
    return PretrainConfig(output_dir=str(output_dir), use_cpu=True, report_to="none", max_tokens=1e4, **kwargs)


def logged(trainer) -> dict[int, dict]:
    return {entry["step"]: entry for entry in trainer.state.log_history if "loss" in entry}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dataset, tokenizer):
    """An uninterrupted run of 10 steps, with checkpoint-5 (complete) kept."""
    output_dir = tmp_path_factory.mktemp("reference")
    trainer = make_trainer(output_dir, dataset, tokenizer)
    trainer.train()
    return output_dir, logged(trainer)


def copy_checkpoint(reference, tmp_path, *drop: str):
    checkpoint = tmp_path / "out" / "checkpoint-5"
    shutil.copytree(reference[0] / "checkpoint-5", checkpoint)
    for name in drop:
        (checkpoint / name).unlink()
    return checkpoint


def test_a_complete_checkpoint_is_resumable(reference):
    args = make_args_only(reference[0])
    progress = check_resumable(reference[0] / "checkpoint-5", args)
    assert (progress.global_step, progress.tokens_seen, progress.has_optimizer) == (5, 5 * SEQ * BATCH, True)


def test_resume_without_the_optimizer_state_is_refused_before_any_step(reference, tmp_path, dataset, tokenizer):
    """Today transformers would start it with a fresh optimizer and a fresh schedule (warm-up again at step 5)."""
    checkpoint = copy_checkpoint(reference, tmp_path, "optimizer.pt")
    trainer = make_trainer(tmp_path / "out", dataset, tokenizer)
    with pytest.raises(CheckpointError, match=r"lacks the optimizer state \(optimizer.pt\).*restart_optimizer: true"):
        trainer.train(resume_from_checkpoint=str(checkpoint))
    assert trainer.state.global_step == 0 and not list((tmp_path / "out").glob("checkpoint-1*"))
    with pytest.raises(CheckpointError, match="optimizer state"):  # found in output_dir: the same
        make_trainer(tmp_path / "out", dataset, tokenizer).train(resume_from_checkpoint=True)


def test_a_missing_trainer_state_is_the_same_clear_error(reference, tmp_path, dataset, tokenizer):
    """Before: a raw FileNotFoundError from inside transformers."""
    checkpoint = copy_checkpoint(reference, tmp_path, "trainer_state.json")
    with pytest.raises(CheckpointError, match=r"lacks the trainer state \(trainer_state.json"):
        make_trainer(tmp_path / "out", dataset, tokenizer).train(resume_from_checkpoint=str(checkpoint))


@pytest.mark.parametrize(
    "drop, named",
    [
        (("trainer_state.json",), r"the trainer state \(trainer_state.json"),  # was a raw FileNotFoundError
        (("scheduler.pt",), r"the LR scheduler state \(scheduler.pt\)"),
        (("rng_state.pth",), r"the RNG state \(rng_state.pth\)"),
        (("model.safetensors",), r"the model weights"),
        (("optimizer.pt", "rng_state.pth"), r"the optimizer state \(optimizer.pt\); the RNG state"),  # all of it
    ],
)
def test_every_missing_part_is_named(reference, tmp_path, drop, named):
    checkpoint = copy_checkpoint(reference, tmp_path, *drop)
    with pytest.raises(CheckpointError, match=f"cannot resume exactly from {checkpoint}: it lacks {named}"):
        check_resumable(checkpoint, make_args_only(tmp_path))


def test_rng_state_of_another_process_count_is_named(reference, tmp_path):
    checkpoint = copy_checkpoint(reference, tmp_path)
    (checkpoint / "rng_state.pth").rename(checkpoint / "rng_state_0.pth")
    shutil.copy(checkpoint / "rng_state_0.pth", checkpoint / "rng_state_1.pth")
    with pytest.raises(CheckpointError, match="rng_state.pth; it has rng_state_0.pth, rng_state_1.pth"):
        check_resumable(checkpoint, make_args_only(tmp_path))
    assert check_resumable(checkpoint, make_args_only(tmp_path), world_size=2).global_step == 5


def test_tokens_seen_are_required_by_a_token_schedule(reference, tmp_path):
    checkpoint = copy_checkpoint(reference, tmp_path)
    scheduler = torch.load(checkpoint / "scheduler.pt", weights_only=True)
    del scheduler["tokens_seen"]
    torch.save(scheduler, checkpoint / "scheduler.pt")
    with pytest.raises(CheckpointError, match="tokens seen"):
        check_resumable(checkpoint, make_args_only(tmp_path))
    # a step-based schedule counts the tokens in the trainer state instead
    args = make_args_only(tmp_path, lr_scheduler_type="linear")
    assert check_resumable(checkpoint, args).tokens_seen == 5 * SEQ * BATCH


def test_restart_optimizer_continues_weights_and_schedule(reference, tmp_path, dataset, tokenizer, caplog):
    checkpoint = copy_checkpoint(reference, tmp_path, "optimizer.pt")
    trainer = make_trainer(tmp_path / "out", dataset, tokenizer, restart_optimizer=True)
    with caplog.at_level(logging.INFO, logger="deepseek_hf"):
        trainer.train(resume_from_checkpoint=str(checkpoint))
    assert "restart_optimizer: AdamW starts afresh at step 5 (the checkpoint's optimizer state is missing)" in (
        caplog.text
    )
    assert "starting in stage 1 (peak LR) at step 5, 640 tokens seen" in caplog.text
    assert trainer.optimizer_restarted_at == 5
    expected, got = reference[1], logged(trainer)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(6, STEPS + 1):  # the schedule continues: peak, then x0.316 and x0.1 at 80% / 90%
        assert got[step]["learning_rate"] == expected[step]["learning_rate"], step
        assert got[step]["tokens_seen"] == expected[step]["tokens_seen"], step
    assert got[6]["loss"] == expected[6]["loss"]  # same weights and rows; the fresh optimizer shows from step 6 on
    assert got[7]["loss"] != expected[7]["loss"]
    state = json.loads((tmp_path / "out" / "checkpoint-10" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
