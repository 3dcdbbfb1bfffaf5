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
* **Validation.** With a `ValidationDataset` as `eval_dataset`, `evaluate` (every `eval_steps` under
  `eval_strategy: steps`, and `final_evaluation` at the end) logs `eval_loss` (nats per predicted token) and
  `eval_bits_per_byte`, summed over all processes without scoring a row twice (`deepseek_hf.training.validation`).
  `run_summary` gives the tokens trained on and the compute C = M x D; `save_metrics` writes atomically.
* **Atomic checkpoints.** transformers 5.24 writes `checkpoint-N` in place, so a crash mid-save leaves a folder
  that `get_last_checkpoint` would pick up. Here every process writes into `<output_dir>/.staging/checkpoint-N`,
  then (after a barrier) the saving process renames it to `checkpoint-N`; old checkpoints are deleted by renaming
  them out of the `checkpoint-*` namespace first. The final model is written file by file with the same
  write-then-rename rule.
* **Annealed data.** With an `AnnealedDataset` (`anneal_sources`, `deepseek_hf.training.annealing`) the order of
  the rows lives in the dataset: it is laid out from the plan (and, on a resume, the checkpoint's layout), read with
  a sequential sampler, and the mixture seen per LR stage goes to `<output_dir>/data_mixture.json`
  (`data_mixture`).
* **Checked resumes.** Before a resumed run takes a step, `check_resumable` makes sure the checkpoint holds all
  that an exact continuation needs: weights, optimizer, scheduler, RNG and trainer state, and the tokens seen.
  transformers would otherwise start a checkpoint without `optimizer.pt` with a fresh optimizer *and* a fresh LR
  schedule (warm-up again at step N), and say nothing. `restart_optimizer: true` is the deliberate way to resume
  the weights and the schedule with fresh AdamW moments; the run then says so at the start and in its summary.
"""

from __future__ import annotations

import copy
import glob
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer, default_data_collator
from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME, TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, sort_checkpoints, speed_metrics
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from deepseek_hf.scaling import model_flops_per_token
from deepseek_hf.utils import write_text_atomic

from .annealing import MIXTURE_FILE, AnnealedDataset, AnnealedMixtureCallback, describe_plan
from .args import PretrainConfig
from .callbacks import LossCurveCallback, SchedulePhaseCallback, Stage1CheckpointCallback
from .plan import TrainingPlan, resolve_training_plan
from .schedules import get_token_scheduler
from .validation import ValidationDataset, ValidationResult, score_validation

__all__ = [
    "CheckpointError",
    "CheckpointProgress",
    "PretrainTrainer",
    "check_resumable",
    "check_schedule",
    "read_checkpoint_progress",
]

logger = logging.getLogger(__name__)

STAGING_DIR = ".staging"
PLAN_FILE = "training_plan.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed exactly (a user error: the message names what is missing)."""


@dataclass(frozen=True)
class CheckpointProgress:
    """Where a checkpoint stands: what a resume continues from."""

    path: str
    global_step: int
    tokens_seen: int
    has_optimizer: bool


def _trainer_state(checkpoint: Path) -> dict | None:
    try:
        state = json.loads((checkpoint / TRAINER_STATE_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("global_step"), int) else None


def _scheduler_state(checkpoint: Path) -> dict | None:
    try:
        state = torch.load(checkpoint / SCHEDULER_NAME, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):  # missing, truncated or not a torch file
        return None
    return state if isinstance(state, dict) else None


def _has_weights(checkpoint: Path) -> bool:
    names = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME, "pytorch_model_fsdp.bin")
    return (
        any((checkpoint / name).is_file() for name in names)
        or any(p.is_dir() for p in checkpoint.glob("pytorch_model_fsdp*"))  # FSDP sharded state dict
        or bool(glob.glob(str(checkpoint / "global_step*" / "*model_states.pt")))  # DeepSpeed
    )


def _has_optimizer(checkpoint: Path) -> bool:
    return (
        (checkpoint / OPTIMIZER_NAME).is_file()
        or (checkpoint / "optimizer.bin").is_file()  # FSDP full state dict
        or any(p.is_dir() for p in checkpoint.glob("optimizer*"))  # FSDP sharded state dict
        or bool(glob.glob(str(checkpoint / "global_step*" / "*optim_states.pt")))  # DeepSpeed
    )


def _missing_rng(checkpoint: Path, world_size: int) -> str | None:
    """What is missing of the RNG state the Trainer restores with `world_size` processes (None: complete)."""
    wanted = ["rng_state.pth"] if world_size == 1 else [f"rng_state_{rank}.pth" for rank in range(world_size)]
    missing = [name for name in wanted if not (checkpoint / name).is_file()]
    if not missing:
        return None
    present = sorted(p.name for p in checkpoint.glob("rng_state*.pth"))
    saved_by = f"; it has {', '.join(present)} (saved by another number of processes)" if present else ""
    return f"RNG state ({', '.join(missing)}{saved_by})"


def check_resumable(checkpoint: str | os.PathLike, args: PretrainConfig, *, world_size: int | None = None):
    """The `CheckpointProgress` of `checkpoint`, or a `CheckpointError` naming all that an exact resume lacks.

    An exact resume needs the weights, the optimizer state (unless `args.restart_optimizer`), the scheduler state,
    the RNG state of every process, the trainer state, and, for a token schedule or budget, the tokens seen.
    """
    path = Path(checkpoint)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {os.fspath(checkpoint)!r} does not exist or is not a folder")
    world_size = args.world_size if world_size is None else world_size
    state, scheduler = _trainer_state(path), _scheduler_state(path)
    has_optimizer = _has_optimizer(path)
    missing = []
    if not _has_weights(path):
        missing.append(f"model weights ({SAFE_WEIGHTS_NAME} or a sharded / FSDP / DeepSpeed equivalent)")
    no_optimizer = f"optimizer state ({OPTIMIZER_NAME})"
    if not has_optimizer and not args.restart_optimizer:
        missing.append(no_optimizer)
    if scheduler is None:
        missing.append(f"LR scheduler state ({SCHEDULER_NAME})")
    rng = _missing_rng(path, world_size)
    if rng:
        missing.append(rng)
    if state is None:
        missing.append(f"trainer state ({TRAINER_STATE_NAME}, with global_step)")
    tokens_seen = _tokens_seen(state, scheduler, token_schedule=args.uses_token_schedule)
    token_run = args.uses_token_schedule or args.max_tokens is not None or args.compute_budget is not None
    if token_run and tokens_seen is None and state is not None and scheduler is not None:
        where = f"tokens_seen in {SCHEDULER_NAME}" if args.uses_token_schedule else "num_input_tokens_seen"
        missing.append(f"tokens seen ({where}; was it saved with another lr_scheduler_type?)")
    if missing:
        hint = "; resume from a complete checkpoint"
        if missing == [no_optimizer]:
            hint += (
                ", or set restart_optimizer: true to continue these weights and the LR schedule with a fresh optimizer"
            )
        raise CheckpointError(f"cannot resume exactly from {path}: it lacks the " + "; the ".join(missing) + hint)
    return CheckpointProgress(
        path=str(path),
        global_step=int(state["global_step"]),
        tokens_seen=tokens_seen or 0,
        has_optimizer=has_optimizer,
    )


def _tokens_seen(state: dict | None, scheduler: dict | None, *, token_schedule: bool) -> int | None:
    """Training tokens before the checkpoint: the token scheduler's count, else the Trainer's input-token count."""
    if scheduler is not None and "tokens_seen" in scheduler:
        return int(scheduler["tokens_seen"])
    if token_schedule or state is None:
        return None
    if state.get("num_input_tokens_seen") or state["global_step"] == 0:
        return int(state.get("num_input_tokens_seen", 0))
    return None


def read_checkpoint_progress(checkpoint: str | os.PathLike) -> tuple[int, int]:
    """`(global_step, tokens_seen)` of a checkpoint written by `PretrainTrainer` (`check_resumable` checks it)."""
    path = Path(checkpoint)
    state = _trainer_state(path)
    if state is None:
        raise CheckpointError(f"{path} is not a training checkpoint: no readable {TRAINER_STATE_NAME}")
    return int(state["global_step"]), _tokens_seen(state, _scheduler_state(path), token_schedule=False) or 0


def check_schedule(args: PretrainConfig, plan: TrainingPlan) -> None:
    """Build the run's token-based LR schedule on a throw-away optimizer: bad `lr_scheduler_kwargs` fail now."""
    if args.uses_token_schedule:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=plan.learning_rate)
        get_token_scheduler(
            args.lr_scheduler_type,
            optimizer,
            warmup_steps=args.get_warmup_steps(plan.max_steps),
            total_tokens=plan.total_tokens,
            tokens_per_step=plan.batch_size_tokens,
            **(args.lr_scheduler_kwargs or {}),
        )


class AtomicSavesMixin:
    """Checkpoints are written into `<run>/.staging/checkpoint-N` by every process and renamed into place; the final
    model is staged too, so a folder that looks complete is complete. For any `Trainer` subclass (pretraining, and
    TRL's SFT / DPO trainers); `_save_final_model` is what a subclass changes (e.g. a LoRA adapter merged)."""

    _staging = False

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
        self._save_final_model(staging)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            _move_files_into(staging, output_dir)
        self.accelerator.wait_for_everyone()

    def _save_final_model(self, staging: str) -> None:
        super().save_model(staging, _internal_call=False)


class PretrainTrainer(AtomicSavesMixin, Trainer):
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
        if isinstance(train_dataset, AnnealedDataset):
            train_dataset.lay_out(self.plan, args)  # bad entry points fail now, before any step
            callbacks.append(AnnealedMixtureCallback())  # needed for exact resumes: not a default to leave out
        self.data_mixture: dict | None = None  # the annealed mixture seen (`data_mixture.json`), after train()
        kwargs.setdefault("data_collator", default_data_collator)  # rows are packed: stack them, never pad
        self.optimizer_restarted_at: int | None = None  # the step of a `restart_optimizer` resume
        self._last_evaluation: tuple[int, dict] | None = None  # (global step, metrics) of the latest evaluate()
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
        self.optimizer_restarted_at = None
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"no checkpoint to resume from in {self.args.output_dir}")
        if resume_from_checkpoint:
            progress = check_resumable(resume_from_checkpoint, self.args)
            if self.args.restart_optimizer and self.is_deepspeed_enabled:
                raise ValueError("restart_optimizer is not supported with DeepSpeed: its engine loads the optimizer")
            self.plan = resolve_training_plan(
                self._requested,
                self.model.config,
                seq_length=self.seq_length,
                world_size=self.args.world_size,
                tokens_seen=progress.tokens_seen,
                steps_done=progress.global_step,
            )
            self._apply_plan(self.args, self.plan)
            logger.info(
                "Resuming from %s (step %d, %.4g tokens seen)",
                resume_from_checkpoint,
                progress.global_step,
                progress.tokens_seen,
            )
            if self.args.restart_optimizer:
                self.optimizer_restarted_at = progress.global_step
                logger.warning(
                    "restart_optimizer: AdamW starts afresh at step %d (the checkpoint's optimizer state is %s); "
                    "the weights, the LR schedule and the data order continue from the checkpoint",
                    progress.global_step,
                    "not loaded" if progress.has_optimizer else "missing",
                )
        logger.info("Training plan:\n%s", self.plan.summary())
        if self.args.should_save:
            os.makedirs(self.args.output_dir, exist_ok=True)
            write_text_atomic(os.path.join(self.args.output_dir, PLAN_FILE), self.plan.to_json())
        annealed = isinstance(self.train_dataset, AnnealedDataset)
        if annealed:
            self._lay_out_annealing(resume_from_checkpoint)
        elif resume_from_checkpoint and AnnealedMixtureCallback.__name__ in (
            (_trainer_state(Path(resume_from_checkpoint)) or {}).get("stateful_callbacks") or {}
        ):
            logger.warning(
                "%s was trained with anneal_sources and this run has none: it continues on the main corpus alone, "
                "in the Trainer's order",
                resume_from_checkpoint,
            )
        result = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        if annealed:
            self._report_mixture()
        return result

    def _mixture_callback(self) -> AnnealedMixtureCallback:
        return next(cb for cb in self.callback_handler.callbacks if isinstance(cb, AnnealedMixtureCallback))

    def _lay_out_annealing(self, checkpoint: str | None) -> None:
        """The annealed layout of this plan; a resume keeps the checkpoint's layout (and tally) up to its step."""
        callback, previous, step = self._mixture_callback(), None, 0
        if checkpoint:
            state = _trainer_state(Path(checkpoint)) or {}
            previous = callback.restore((state.get("stateful_callbacks") or {}).get(type(callback).__name__))
            step = int(state.get("global_step", 0))
            if previous is None and step:
                logger.warning(
                    "%s holds no annealed-data layout (saved by a run without anneal_sources): its %d steps read "
                    "the main corpus in the Trainer's order; from here on the annealed order is used, so some main "
                    "rows of this pass may be read again",
                    checkpoint,
                    step,
                )
        else:
            callback.restore(None)
        self.train_dataset.lay_out(self.plan, self.args, resume_step=step, previous=previous)
        logger.info("Annealed data (the rest of the rows: the main corpus):\n%s", describe_plan(self.train_dataset))

    def _report_mixture(self) -> None:
        """The mixture seen, per LR stage: logged, kept in `data_mixture`, written to `data_mixture.json`."""
        report = self._mixture_callback().report(self.train_dataset, self.state.global_step)
        self.data_mixture = report
        for stage, shares in report["share_by_stage"].items():
            tokens = report["tokens_by_stage"][stage]
            logger.info(
                "Mixture seen in %s: %s",
                stage,
                ", ".join(f"{name} {tokens[name]:,} tokens ({share:.1%})" for name, share in shares.items()),
            )
        for name, passes in report["passes"].items():
            if passes > 1:
                logger.warning("%s was read %d times: re-cycled in a fresh seeded order each time", name, passes)
        if self.args.should_save:
            write_text_atomic(os.path.join(self.args.output_dir, MIXTURE_FILE), json.dumps(report, indent=2))

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, AnnealedDataset):  # the order lives in the dataset; step t reads [t*G, (t+1)*G)
            return SequentialSampler(dataset)
        return super()._get_train_sampler(train_dataset)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None or not self.args.restart_optimizer:
            return super()._load_optimizer_and_scheduler(checkpoint)
        # A fresh optimizer, but the schedule where the checkpoint left it: its LR goes into the new param groups
        # (transformers loads the scheduler only together with an optimizer state).
        self.lr_scheduler.load_state_dict(torch.load(os.path.join(checkpoint, SCHEDULER_NAME), weights_only=True))
        for group, lr in zip(self.optimizer.param_groups, self.lr_scheduler.get_last_lr()):
            group["lr"] = lr

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
        elif "eval_loss" in logs and hasattr(scheduler, "tokens_seen"):
            logs["tokens_seen"] = scheduler.tokens_seen  # the tokens trained on before this evaluation
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------------------------
    # Validation
    # ------------------------------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Validation loss and bits-per-byte of a `ValidationDataset` (any other dataset: `Trainer.evaluate`).

        Each process scores its share of the rows with the model's memory-lean summed loss; the sums are added
        across processes, so the result does not depend on the number of processes.
        """
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if not isinstance(dataset, ValidationDataset):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        start = time.time()
        model = self._wrap_model(self.model, training=False)
        nll, tokens = score_validation(
            model,
            dataset,
            batch_size=self.args.per_device_eval_batch_size,
            rank=self.args.process_index,
            world_size=self.args.world_size,
            device=self.args.device,
        )
        totals = torch.tensor([nll, tokens], dtype=torch.float64, device=self.args.device)
        if self.args.world_size > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        nll, tokens = float(totals[0]), int(round(float(totals[1])))
        if tokens != dataset.num_tokens:
            raise RuntimeError(f"validation scored {tokens} tokens, expected {dataset.num_tokens}")
        metrics = ValidationResult(nll=nll, tokens=tokens, bytes=dataset.num_bytes).metrics(metric_key_prefix)
        metrics.update(speed_metrics(metric_key_prefix, start, num_samples=len(dataset), num_tokens=tokens))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self._last_evaluation = (self.state.global_step, dict(metrics))
        return metrics

    def final_evaluation(self) -> dict[str, float]:
        """The validation metrics of the final model: those of an evaluation at this very step, else a new one."""
        if self._last_evaluation is not None and self._last_evaluation[0] == self.state.global_step:
            return dict(self._last_evaluation[1])
        return self.evaluate()

    def run_summary(self) -> dict[str, float]:
        """`train_tokens` (tokens trained on, over all processes), `flops_per_token` (M at the sequence length,
        paper Eq. 2) and `train_flops` (M x train_tokens): the compute C of a scaling-law point."""
        tokens = getattr(self.lr_scheduler, "tokens_seen", None)
        if tokens is None:
            tokens = self.state.num_input_tokens_seen or self.state.global_step * self.plan.batch_size_tokens
        flops_per_token = model_flops_per_token(self.model.config, self.seq_length)
        return {
            "train_tokens": int(tokens),
            "flops_per_token": flops_per_token,
            "train_flops": flops_per_token * int(tokens),
        }

    def save_metrics(self, split: str, metrics: dict, combined: bool = True) -> None:
        """`Trainer.save_metrics`, each file written whole (tmp file + rename): a reader never sees half a file."""
        if not self.is_world_process_zero():
            return
        write_text_atomic(
            os.path.join(self.args.output_dir, f"{split}_results.json"), json.dumps(metrics, indent=4, sort_keys=True)
        )
        if combined:
            path = os.path.join(self.args.output_dir, "all_results.json")
            merged = json.loads(Path(path).read_text()) if os.path.exists(path) else {}
            merged.update(metrics)
            write_text_atomic(path, json.dumps(merged, indent=4, sort_keys=True))

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
