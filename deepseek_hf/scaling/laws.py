"""The fitted scaling laws of DeepSeek LLM (arXiv 2401.02954, section 3).

All laws are written in the paper's units:

* `C` is the compute budget in FLOPs, `C = M * D`;
* `M` is the *model scale* in non-embedding FLOPs per token, attention included (paper Eq. 2:
  `M = 72 n_layer d_model^2 + 12 n_layer d_model l_seq`), read from a model config as `config.flops_per_token`;
* `D` is the data scale in tokens;
* the batch size `B` is in tokens (not sequences) and the learning rate `eta` is the peak of the schedule.

Example (the 7B run of Table 2):

```python
>>> from deepseek_hf.scaling import optimal_batch_tokens, optimal_lr
>>> C = 4.228e10 * 2e12          # M of the 7B preset times 2T tokens
>>> round(optimal_batch_tokens(C) / 4096), f"{optimal_lr(C):.2e}"
(2252, '4.25e-04')

```

Table 2 uses 2304 sequences and 4.2e-4: the fitted laws match it closely, which is also what shows that `B` is
counted in tokens and `C` in FLOPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "PowerLaw",
    "BATCH_SIZE_LAW",
    "LEARNING_RATE_LAW",
    "MODEL_SCALE_LAW",
    "DATA_SCALE_LAW",
    "optimal_batch_tokens",
    "optimal_lr",
    "optimal_allocation",
    "compute_budget",
]


@dataclass(frozen=True)
class PowerLaw:
    """`y = coefficient * x ** exponent`; the form of every fitted law of the paper (and of IsoFLOP fits)."""

    coefficient: float
    exponent: float
    name: str = ""
    source: str = ""

    def __call__(self, x: float) -> float:
        if not x > 0 or not math.isfinite(x):
            raise ValueError(f"{self.name or 'power law'}: the input must be a positive finite number, got {x!r}")
        return self.coefficient * x**self.exponent

    def inverse(self, y: float) -> float:
        """The `x` at which the law gives `y`."""
        if not y > 0:
            raise ValueError(f"{self.name or 'power law'}: the value must be positive, got {y!r}")
        return (y / self.coefficient) ** (1.0 / self.exponent)

    def __str__(self) -> str:
        return f"{self.name or 'y'} = {self.coefficient:.4f} * C^{self.exponent:.4f}"


# Paper Eq. 1 (section 3.1), fitted on compute budgets 1e17 .. 2e19 and validated at 1e20.
BATCH_SIZE_LAW = PowerLaw(0.2920, 0.3271, name="B_opt", source="DeepSeek LLM Eq. 1 (tokens per batch)")
LEARNING_RATE_LAW = PowerLaw(0.3118, -0.1250, name="eta_opt", source="DeepSeek LLM Eq. 1 (peak learning rate)")
# Paper Eq. 4 (section 3.2), IsoFLOP fits on 1e17 .. 3e20 with the "current data" of Table 4.
MODEL_SCALE_LAW = PowerLaw(0.1715, 0.5243, name="M_opt", source="DeepSeek LLM Eq. 4 (FLOPs/token)")
DATA_SCALE_LAW = PowerLaw(5.8316, 0.4757, name="D_opt", source="DeepSeek LLM Eq. 4 (tokens)")


def optimal_batch_tokens(compute: float) -> float:
    """Near-optimal batch size in tokens for a compute budget in FLOPs: `B_opt = 0.2920 * C^0.3271`."""
    return BATCH_SIZE_LAW(compute)


def optimal_lr(compute: float) -> float:
    """Near-optimal peak learning rate for a compute budget in FLOPs: `eta_opt = 0.3118 * C^-0.1250`."""
    return LEARNING_RATE_LAW(compute)


def optimal_allocation(compute: float) -> tuple[float, float]:
    """Compute-optimal `(M_opt, D_opt)`: FLOPs/token and tokens, `0.1715 * C^0.5243` and `5.8316 * C^0.4757`.

    The two exponents sum to 1 and the coefficients multiply to ~1.0001, so `M_opt * D_opt` is `C` to 1e-4.
    """
    return MODEL_SCALE_LAW(compute), DATA_SCALE_LAW(compute)


def compute_budget(flops_per_token: float, tokens: float) -> float:
    """`C = M * D` (paper section 3.2; not `6 N D`: `M` counts attention and leaves out the vocabulary)."""
    if not flops_per_token > 0 or not tokens > 0:
        raise ValueError(f"M and D must be positive, got M={flops_per_token!r}, D={tokens!r}")
    return float(flops_per_token) * float(tokens)
