"""Trainer callbacks of the pretraining recipe. They observe; the LR itself is set only by the scheduler.

* `SchedulePhaseCallback` logs each change of the multi-step schedule's phase with the LR and the tokens seen.
* `Stage1CheckpointCallback` saves a checkpoint at the end of stage 1 (just before the first LR drop, at 80% of
  the tokens) and keeps it as `stage1-checkpoint-<step>`, outside the rotation of `checkpoint-*`: the paper's
  reason for the multi-step schedule is that a longer run can continue from it (section 2.3, Figure 1).
* `LossCurveCallback` saves `loss_curve.png` (loss and LR against tokens, phases marked) at the end of training.
"""

from __future__ import annotations

import logging
import os
import shutil

from transformers import TrainerCallback

__all__ = ["SchedulePhaseCallback", "Stage1CheckpointCallback", "LossCurveCallback", "phase_name", "STAGE1_PREFIX"]

logger = logging.getLogger(__name__)

STAGE1_PREFIX = "stage1-checkpoint"


def phase_name(phase: int, factors=(0.316, 0.1)) -> str:
    if phase == 0:
        return "warm-up"
    if phase == 1:
        return "stage 1 (peak LR)"
    factor = factors[phase - 2] if phase - 2 < len(factors) else None
    return f"stage {phase} (LR x {factor:g})" if factor is not None else f"stage {phase}"


def _phase(lr_scheduler) -> int | None:
    phase = getattr(lr_scheduler, "phase", None)
    return phase() if phase is not None else None


class SchedulePhaseCallback(TrainerCallback):
    """Logs `warm-up -> stage 1 -> stage 2 -> stage 3` transitions, with the step, LR and tokens seen."""

    def __init__(self):
        self._phase: int | None = None

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self._phase = _phase(lr_scheduler)
        if self._phase is not None and state.is_world_process_zero:
            logger.info(
                "LR schedule %s: starting in %s at step %d, %.4g tokens seen",
                args.lr_scheduler_type,
                phase_name(self._phase, self._factors(args)),
                state.global_step,
                lr_scheduler.tokens_seen,
            )

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        phase = _phase(lr_scheduler)
        if phase is not None and phase != self._phase and state.is_world_process_zero:
            total = lr_scheduler.lr_lambda.keywords["total_tokens"]
            logger.info(
                "LR schedule: %s from step %d (%.4g tokens seen, %.1f%% of %.4g), LR %.4g",
                phase_name(phase, self._factors(args)),
                state.global_step,
                lr_scheduler.tokens_seen,
                100 * lr_scheduler.tokens_seen / total,
                total,
                lr_scheduler.get_last_lr()[0],
            )
        self._phase = phase

    @staticmethod
    def _factors(args):
        return tuple((args.lr_scheduler_kwargs or {}).get("factors", (0.316, 0.1)))


class Stage1CheckpointCallback(TrainerCallback):
    """Saves the end-of-stage-1 checkpoint (before the first LR milestone) as `stage1-checkpoint-<step>`."""

    def __init__(self):
        self._phase: int | None = None
        self._pending_step: int | None = None

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self._phase = _phase(lr_scheduler)

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        phase = _phase(lr_scheduler)  # the phase of the *next* step: the scheduler has already stepped
        if (
            getattr(args, "save_stage1_checkpoint", False)
            and args.lr_scheduler_type == "multi_step"
            and self._phase is not None
            and self._phase < 2 <= phase
        ):
            control.should_save = True
            self._pending_step = state.global_step
        self._phase = phase

    def on_save(self, args, state, control, **kwargs):
        if self._pending_step != state.global_step:
            return
        self._pending_step = None
        if not args.should_save:
            return
        source = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        target = os.path.join(args.output_dir, f"{STAGE1_PREFIX}-{state.global_step}")
        staging = os.path.join(args.output_dir, f".staging-{STAGE1_PREFIX}-{state.global_step}")
        shutil.rmtree(staging, ignore_errors=True)
        try:  # hard links: no copy of the weights, and the rotation of checkpoint-* cannot delete it
            shutil.copytree(source, staging, copy_function=os.link)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(staging, target)
        logger.info("End of stage 1 (first LR milestone): saved %s; continue a longer run from it", target)


def _phase_starts(lr_scheduler) -> dict[int, float] | None:
    """Tokens at which each phase of a token-based schedule starts (warm-up at the current batch size)."""
    keywords = getattr(getattr(lr_scheduler, "lr_lambda", None), "keywords", None)
    if not keywords or "total_tokens" not in keywords:
        return None
    starts = {1: keywords.get("warmup_steps", 0) * lr_scheduler.tokens_per_step}
    for index, milestone in enumerate(keywords.get("milestones", ())):
        starts[2 + index] = milestone * keywords["total_tokens"]
    return starts


class LossCurveCallback(TrainerCallback):
    """Writes `<output_dir>/loss_curve.png` at the end of training (main process)."""

    def on_train_end(self, args, state, control, lr_scheduler=None, **kwargs):
        if not getattr(args, "plot_loss_curve", True) or not state.is_world_process_zero:
            return
        from .plotting import plot_loss_curve

        path = plot_loss_curve(
            state.log_history,
            os.path.join(args.output_dir, "loss_curve.png"),
            phase_starts=_phase_starts(lr_scheduler),
        )
        if path is not None:
            logger.info("Loss curve (LR phases marked): %s", path)
