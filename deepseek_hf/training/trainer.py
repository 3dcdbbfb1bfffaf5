"""`PretrainTrainer`: transformers' `Trainer` with the paper's schedule, token budgets and atomic checkpoints.

What it adds to `transformers.Trainer` (5.24):

* **Plan.** At construction it resolves batch size, learning rate and length (`deepseek_hf.training.plan`) and
  writes them into its `args` (`gradient_accumulation_steps`, `learning_rate`, `max_steps`); a resumed run
  recomputes `max_steps` from the tokens its checkpoint has seen, so a larger token budget extends the run.
  (The LR follows tokens even if the batch size changes at a resume; the position in the data, however, is
  restored by transformers as a number of steps, so with a different batch it is approximate.)
* **Schedule.** `create_scheduler` builds the token-based multi-step (or cosine) scheduler; the Trainer saves
  and restores it with every checkpoint. AdamW (0.9, 0.95), weight decay 0.1 and clipping 1.0 are the
  `PretrainConfig` defaults; weight decay skips biases and norm weights (transformers'
  `get_decay_parameter_names`; embeddings are decayed, as in Megatron-LM).
* **Logs.** Each log line also carries `tokens_seen` (the scheduler's count) and `lr_phase` (0 = warm-up,
  1 = stage 1, 2 = after 80% of the tokens, 3 = after 90%).
* **Atomic checkpoints.** transformers 5.24 writes `checkpoint-N` in place, so a crash mid-save leaves a folder
  that `get_last_checkpoint` would pick up. Here every process writes into `<output_dir>/.staging/checkpoint-N`,
  then (after a barrier) the saving process renames it to `checkpoint-N`; old checkpoints are deleted by renaming
  them out of the `checkpoint-*` namespace first. The final model is written file by file with the same
  write-then-rename rule.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from transformers import Trainer, default_data_collator
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, sort_checkpoints

from .args import PretrainConfig
from .callbacks import LossCurveCallback, SchedulePhaseCallback, Stage1CheckpointCallback
from .plan import TrainingPlan, resolve_training_plan
from .schedules import get_token_scheduler

__all__ = ["PretrainTrainer", "read_checkpoint_progress"]

logger = logging.getLogger(__name__)

STAGING_DIR = ".staging"
PLAN_FILE = "training_plan.json"


def read_checkpoint_progress(checkpoint: str | os.PathLike) -> tuple[int, int]:
    """`(global_step, tokens_seen)` of a checkpoint written by `PretrainTrainer`."""
    checkpoint = Path(checkpoint)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    scheduler_file = checkpoint / "scheduler.pt"
    tokens_seen = 0
    if scheduler_file.is_file():
        tokens_seen = int(torch.load(scheduler_file, weights_only=True).get("tokens_seen", 0))
    return int(state["global_step"]), tokens_seen


class PretrainTrainer(Trainer):
    """A `Trainer` for pretraining on packed sequences (`PackedDataset`); see the module docstring.

    `train_dataset` must expose `seq_length` (rows of that many tokens, no padding). The default callbacks
    (phase logging, end-of-stage-1 checkpoint, loss-curve PNG) are added unless `add_default_callbacks=False`.
    """

    def __init__(
        self,
        model=None,
        args: PretrainConfig | None = None,
        train_dataset=None,
        *,
        add_default_callbacks: bool = True,
        **kwargs,
    ):
        if not isinstance(args, PretrainConfig):
            raise TypeError(f"PretrainTrainer needs a PretrainConfig, got {type(args).__name__}")
        seq_length = getattr(train_dataset, "seq_length", None)
        if seq_length is None:
            raise ValueError("train_dataset must have a `seq_length` (use deepseek_hf.training.PackedDataset)")
        self.seq_length = int(seq_length)
        self._requested = copy.copy(args)  # the config as given; `args` gets the resolved values
        self.plan: TrainingPlan = resolve_training_plan(
            self._requested, model.config, seq_length=self.seq_length, world_size=args.world_size
        )
        self._apply_plan(args, self.plan)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if add_default_callbacks:
            callbacks += [SchedulePhaseCallback(), Stage1CheckpointCallback(), LossCurveCallback()]
        kwargs.setdefault("data_collator", default_data_collator)  # rows are packed: stack them, never pad
        self._staging = False
        super().__init__(model=model, args=args, train_dataset=train_dataset, callbacks=callbacks, **kwargs)
        if self.args.should_save:  # leftovers of a save or a deletion that a crash interrupted
            for pattern in (".deleting-*", f"{STAGING_DIR}*"):
                for leftover in Path(self.args.output_dir).glob(pattern):
                    shutil.rmtree(leftover, ignore_errors=True)

    @staticmethod
    def _apply_plan(args: PretrainConfig, plan: TrainingPlan) -> None:
        args.gradient_accumulation_steps = plan.gradient_accumulation_steps
        args.learning_rate = plan.learning_rate
        args.max_steps = plan.max_steps

    # ------------------------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"no checkpoint to resume from in {self.args.output_dir}")
        if resume_from_checkpoint:
            steps_done, tokens_seen = read_checkpoint_progress(resume_from_checkpoint)
            self.plan = resolve_training_plan(
                self._requested,
                self.model.config,
                seq_length=self.seq_length,
                world_size=self.args.world_size,
                tokens_seen=tokens_seen,
                steps_done=steps_done,
            )
            self._apply_plan(self.args, self.plan)
            logger.info(
                "Resuming from %s (step %d, %.4g tokens seen)", resume_from_checkpoint, steps_done, tokens_seen
            )
        logger.info("Training plan:\n%s", self.plan.summary())
        if self.args.should_save:
            os.makedirs(self.args.output_dir, exist_ok=True)
            _write_atomic(os.path.join(self.args.output_dir, PLAN_FILE), self.plan.to_json())
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None and self.args.uses_token_schedule:
            self.lr_scheduler = get_token_scheduler(
                self.args.lr_scheduler_type,
                self.optimizer if optimizer is None else optimizer,
                warmup_steps=self.args.get_warmup_steps(num_training_steps),
                total_tokens=self.plan.total_tokens,
                tokens_per_step=self.plan.batch_size_tokens,
                **(self.args.lr_scheduler_kwargs or {}),
            )
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        scheduler = self.lr_scheduler
        if "loss" in logs and hasattr(scheduler, "tokens_seen"):
            logs["tokens_seen"] = scheduler.tokens_seen  # after the logged step
            logs["lr_phase"] = scheduler.last_step_phase  # of the logged step, like its `learning_rate`
        super().log(logs, start_time)

    def loss_summary(self) -> dict[str, float]:
        """The last logged training loss next to the unigram entropy of the training tokens (both in nats).

        A model that only learned token frequencies stops at the unigram entropy; a language model goes well below.
        """
        summary: dict[str, float] = {}
        losses = [entry["loss"] for entry in self.state.log_history if "loss" in entry]
        if losses:
            summary["final_loss"] = float(losses[-1])
        entropy = getattr(self.train_dataset, "unigram_entropy", None)
        if entropy is not None:
            summary["unigram_entropy"] = entropy()
        return summary

    # ------------------------------------------------------------------------------------------------------------
    # Atomic checkpoints
    # ------------------------------------------------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING_DIR) if self._staging else run_dir

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)  # every process writes into <run_dir>/.staging/checkpoint-N
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            _replace_dir(os.path.join(run_dir, STAGING_DIR, name), os.path.join(run_dir, name))
            _rotate_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if _internal_call:  # a checkpoint: already inside the staging folder
            return super().save_model(output_dir, _internal_call=True)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        staging = os.path.join(output_dir, STAGING_DIR, "final-model")
        super().save_model(staging, _internal_call=False)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            _move_files_into(staging, output_dir)
        self.accelerator.wait_for_everyone()


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(source: str, target: str) -> None:
    """Rename `source` to `target`; an existing `target` (same step saved twice) is moved aside first."""
    if os.path.exists(target):
        trash = os.path.join(os.path.dirname(target), f".deleting-{os.path.basename(target)}-{os.getpid()}")
        os.replace(target, trash)
        os.replace(source, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(source, target)
    _fsync_dir(os.path.dirname(target))


def _move_files_into(staging: str, target: str) -> None:
    """Move every file of `staging` into `target`, each by an atomic rename; configs last, then drop `staging`."""
    names = sorted(os.listdir(staging), key=lambda name: name.endswith(".json"))
    for name in names:
        destination = os.path.join(target, name)
        if os.path.isdir(os.path.join(staging, name)):
            _replace_dir(os.path.join(staging, name), destination)
        else:
            os.replace(os.path.join(staging, name), destination)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(staging))  # the .staging folder, when nothing else is in it
    except OSError:
        pass
    _fsync_dir(target)


def _rotate_checkpoints(run_dir: str, save_total_limit: int | None, best: str | None) -> None:
    """transformers' rotation, except that a checkpoint leaves the `checkpoint-*` namespace before deletion."""
    if not save_total_limit or save_total_limit <= 0:
        return
    checkpoints = sort_checkpoints(run_dir, best_model_checkpoint=best)
    for checkpoint in checkpoints[: max(0, len(checkpoints) - save_total_limit)]:
        trash = os.path.join(run_dir, f".deleting-{os.path.basename(checkpoint)}")
        logger.info("Deleting older checkpoint [%s] due to save_total_limit", checkpoint)
        os.replace(checkpoint, trash)
        shutil.rmtree(trash, ignore_errors=True)
