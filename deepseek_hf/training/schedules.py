"""Learning-rate schedules whose decay follows the number of training *tokens*, not steps.

DeepSeek LLM (arXiv 2401.02954, section 2.3) warms up linearly over 2000 steps to the peak LR, then multiplies it by
0.316 after 80% of the training tokens and by 0.1 after 90% ("at 1.6T and 1.8T of 2T tokens", DeepSeek-LLM
README). Stating the milestones in tokens keeps them in place when the batch size (in tokens) changes, e.g. when a
run resumes with a different batch or continues from the end-of-stage-1 checkpoint with a larger budget.

The design follows transformers' `optimization.py` / OLMo-core: each schedule is a pure, module-level function of
`(step, tokens)` (testable on its own, picklable through `functools.partial`), wrapped by one thin
`torch.optim.lr_scheduler.LRScheduler` that counts tokens. The scheduler is the only thing that sets the LR;
callbacks only observe it.

```python
>>> import torch
>>> from deepseek_hf.training.schedules import get_token_scheduler
>>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=4.2e-4)
>>> sched = get_token_scheduler("multi_step", opt, warmup_steps=2, total_tokens=100 * 4096, tokens_per_step=4096)
>>> lrs = []
>>> for _ in range(100):
...     lrs.append(sched.get_last_lr()[0]); opt.step(); sched.step()
>>> [f"{lrs[i]:.3g}" for i in (0, 1, 2, 79, 80, 89, 90, 99)]
['0', '0.00021', '0.00042', '0.00042', '0.000133', '0.000133', '4.2e-05', '4.2e-05']

```
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = [
    "PAPER_MILESTONES",
    "PAPER_FACTORS",
    "PAPER_WARMUP_STEPS",
    "SCHEDULES",
    "multi_step_lr_factor",
    "cosine_lr_factor",
    "schedule_phase",
    "TokenBasedLR",
    "get_token_scheduler",
]

PAPER_WARMUP_STEPS = 2000
PAPER_MILESTONES = (0.8, 0.9)  # fractions of the training tokens
PAPER_FACTORS = (0.316, 0.1)  # of the peak LR, from each milestone on
_EPS = 1e-12  # fractions are compared with this slack so that 0.8 * N * B lands on its step despite rounding


def _warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from 0 at step 0 to 1 at `warmup_steps` (transformers' convention)."""
    if step < warmup_steps:
        return step / warmup_steps
    return 1.0


def _check_milestones(milestones: Sequence[float], factors: Sequence[float]) -> None:
    if len(milestones) != len(factors):
        raise ValueError(f"milestones {list(milestones)} and factors {list(factors)} must have the same length")
    if any(not 0 < m <= 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
        raise ValueError(f"milestones must be increasing fractions of the token budget in (0, 1], got {milestones}")
    if any(not f > 0 for f in factors):
        raise ValueError(f"factors must be positive multiples of the peak LR, got {factors}")


def multi_step_lr_factor(
    step: int,
    tokens: float,
    *,
    warmup_steps: int,
    total_tokens: float,
    milestones: Sequence[float] = PAPER_MILESTONES,
    factors: Sequence[float] = PAPER_FACTORS,
) -> float:
    """Multiple of the peak LR for the optimizer step `step`, taken after `tokens` training tokens.

    Linear warm-up over `warmup_steps` steps, then `factors[i]` from the step at which at least
    `milestones[i] * total_tokens` tokens have been trained on (paper: 0.316 from 80%, 0.1 from 90%).
    """
    factor = 1.0
    fraction = tokens / total_tokens
    for milestone, milestone_factor in zip(milestones, factors):
        if fraction >= milestone - _EPS:
            factor = milestone_factor
    return _warmup_factor(step, warmup_steps) * factor


def cosine_lr_factor(
    step: int,
    tokens: float,
    *,
    warmup_steps: int,
    total_tokens: float,
    warmup_tokens: float = 0.0,
    min_lr_ratio: float = 0.1,
) -> float:
    """Linear warm-up, then a cosine from the peak down to `min_lr_ratio` of it at `total_tokens`.

    The baseline of the paper's Figure 1; the cosine runs over the tokens after warm-up (`warmup_tokens`), and the
    default floor of 10% of the peak ends where the multi-step schedule ends.
    """
    if step < warmup_steps:
        return _warmup_factor(step, warmup_steps)
    progress = (tokens - warmup_tokens) / max(total_tokens - warmup_tokens, 1)
    progress = min(max(progress, 0.0), 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, Callable[..., float]] = {
    "multi_step": multi_step_lr_factor,
    "cosine": cosine_lr_factor,
}


def schedule_phase(
    step: int,
    tokens: float,
    *,
    warmup_steps: int,
    total_tokens: float,
    milestones: Sequence[float] = PAPER_MILESTONES,
) -> int:
    """Phase of the multi-step schedule: 0 = warm-up, 1 = stage 1 (peak), 2 = after the first milestone, ..."""
    if step < warmup_steps:
        return 0
    fraction = tokens / total_tokens
    return 1 + sum(fraction >= m - _EPS for m in milestones)


class TokenBasedLR(LRScheduler):
    """A `LRScheduler` whose LR is `base_lr * lr_lambda(step, tokens_seen)`.

    `tokens_per_step` is the global batch in tokens; it may be changed between steps (or differ after a resume),
    and the milestones stay at their token counts. `state_dict()` holds only the progress (`last_epoch`,
    `tokens_seen`): the schedule's shape always comes from the current configuration, so a run resumed with a
    larger token budget follows the new budget (and its LR is recomputed on load).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int, float], float],
        tokens_per_step: int,
        last_epoch: int = -1,
    ) -> None:
        if tokens_per_step <= 0:
            raise ValueError(f"tokens_per_step must be positive, got {tokens_per_step}")
        self.lr_lambda = lr_lambda
        self.tokens_per_step = int(tokens_per_step)
        self.tokens_seen = 0
        self.last_step_phase = 0
        super().__init__(optimizer, last_epoch)

    def step(self, epoch: int | None = None) -> None:
        if epoch is not None:
            raise ValueError(f"{type(self).__name__} counts steps and tokens itself; call step() without `epoch`")
        if self.last_epoch >= 0:  # not the initial step of the constructor: one optimizer step of tokens was done
            self.last_step_phase = self.phase()
            self.tokens_seen += self.tokens_per_step
        super().step()

    def _lrs(self) -> list[float]:
        factor = self.lr_lambda(self.last_epoch, self.tokens_seen)
        return [base_lr * factor for base_lr in self.base_lrs]

    def get_lr(self) -> list[float]:
        return self._lrs()

    def phase(self) -> int:
        """Phase of the next step: 0 = warm-up, 1 = stage 1 (peak), 2 = after the first milestone, ...

        (`last_step_phase` is the phase of the step taken last, the one whose LR the Trainer logs.)
        """
        keywords = getattr(self.lr_lambda, "keywords", {})
        if "total_tokens" not in keywords:
            return 0 if self.last_epoch < keywords.get("warmup_steps", 0) else 1
        return schedule_phase(
            self.last_epoch,
            self.tokens_seen,
            warmup_steps=keywords.get("warmup_steps", 0),
            total_tokens=keywords["total_tokens"],
            milestones=keywords.get("milestones", ()),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "tokens_seen": self.tokens_seen,
            "tokens_per_step": self.tokens_per_step,  # informational: the current config's value is kept on load
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self.tokens_seen = int(state_dict["tokens_seen"])
        # The optimizer's param groups come back from the checkpoint with the LR of the *old* schedule; set the
        # LR of this schedule for the next step.
        lrs = self._lrs()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs


def get_token_scheduler(
    name: str,
    optimizer: Optimizer,
    *,
    warmup_steps: int,
    total_tokens: float,
    tokens_per_step: int,
    **schedule_kwargs: Any,
) -> TokenBasedLR:
    """Build the token-based scheduler `name` ("multi_step" or "cosine") for a run of `total_tokens` tokens.

    `schedule_kwargs` are the schedule function's own parameters (`milestones`/`factors` for multi_step,
    `min_lr_ratio` for cosine); unknown ones raise a `ValueError` naming the accepted ones.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown token-based schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    function = SCHEDULES[name]
    accepted = [p for p in inspect.signature(function).parameters if p not in ("step", "tokens")]
    user_settable = [p for p in accepted if p not in ("warmup_steps", "total_tokens", "warmup_tokens")]
    unknown = sorted(set(schedule_kwargs) - set(user_settable))
    if unknown:
        raise ValueError(f"unknown options {unknown} for the {name!r} schedule; it accepts {user_settable}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if not total_tokens > 0:
        raise ValueError(f"total_tokens must be positive, got {total_tokens}")
    if name == "multi_step":
        milestones = tuple(float(m) for m in schedule_kwargs.pop("milestones", PAPER_MILESTONES))
        factors = tuple(float(f) for f in schedule_kwargs.pop("factors", PAPER_FACTORS))
        _check_milestones(milestones, factors)
        schedule_kwargs.update(milestones=milestones, factors=factors)
    if name == "cosine":
        if not 0 <= schedule_kwargs.get("min_lr_ratio", 0.1) <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {schedule_kwargs['min_lr_ratio']}")
        schedule_kwargs["warmup_tokens"] = warmup_steps * tokens_per_step
    lr_lambda = partial(function, warmup_steps=int(warmup_steps), total_tokens=float(total_tokens), **schedule_kwargs)
    return TokenBasedLR(optimizer, lr_lambda, tokens_per_step)
