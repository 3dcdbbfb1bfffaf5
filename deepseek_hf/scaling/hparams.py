"""Batch size, learning rate and the model/data allocation for a run, from its compute or token budget.

A run is described by its model (the model scale `M`, FLOPs per token, from `config.flops_per_token`) and by
either its compute budget `C` or its token budget `D`; the other one follows from `C = M * D`. The laws of
`deepseek_hf.scaling.laws` then give the near-optimal batch size and peak learning rate for that `C`, and the
compute-optimal `M_opt`, `D_opt` to compare the run's allocation with.

```python
>>> from deepseek_hf.scaling import scaling_hyperparameters
>>> hp = scaling_hyperparameters(flops_per_token=4.228e10, tokens=2e12)   # the 7B run
>>> round(hp.batch_sequences(4096)), f"{hp.learning_rate:.3g}"
(2252, '0.000425')

```
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .laws import compute_budget, optimal_allocation, optimal_batch_tokens, optimal_lr

__all__ = [
    "ScalingHyperparameters",
    "scaling_hyperparameters",
    "model_flops_per_token",
    "round_batch_sequences",
    "PAPER_TABLE_2",
]

# Paper Table 2 (and the DeepSeek-LLM README): what was actually used, to compare the laws' values with.
PAPER_TABLE_2: dict[str, dict[str, float]] = {
    "deepseek-llm-7b": {"batch_sequences": 2304, "seq_length": 4096, "learning_rate": 4.2e-4, "tokens": 2.0e12},
    "deepseek-llm-67b": {"batch_sequences": 4608, "seq_length": 4096, "learning_rate": 3.2e-4, "tokens": 2.0e12},
}


@dataclass(frozen=True)
class ScalingHyperparameters:
    """The scaling-law hyperparameters of one run (paper section 3); all values unrounded."""

    flops_per_token: float  # M, non-embedding FLOPs per token (paper Eq. 2)
    tokens: float  # D
    compute: float  # C = M * D
    batch_tokens: float  # B_opt, tokens per optimizer step (Eq. 1)
    learning_rate: float  # eta_opt, peak learning rate (Eq. 1)
    optimal_flops_per_token: float  # M_opt for this C (Eq. 4)
    optimal_tokens: float  # D_opt for this C (Eq. 4)

    def batch_sequences(self, seq_length: int) -> float:
        """`B_opt` in sequences of `seq_length` tokens (Table 2 counts the batch in sequences of 4096)."""
        return self.batch_tokens / seq_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scaling_hyperparameters(
    *, flops_per_token: float, tokens: float | None = None, compute: float | None = None
) -> ScalingHyperparameters:
    """The hyperparameters for a model of `flops_per_token` trained on `tokens` tokens or with `compute` FLOPs.

    Give exactly one of `tokens` (D) and `compute` (C).
    """
    if (tokens is None) == (compute is None):
        raise ValueError("give exactly one of `tokens` (D) and `compute` (C); the other follows from C = M * D")
    if not flops_per_token > 0:
        raise ValueError(f"flops_per_token (M) must be positive, got {flops_per_token!r}")
    if compute is None:
        compute = compute_budget(flops_per_token, tokens)
    else:
        if not compute > 0:
            raise ValueError(f"the compute budget must be positive, got {compute!r}")
        tokens = compute / flops_per_token
    m_opt, d_opt = optimal_allocation(compute)
    return ScalingHyperparameters(
        flops_per_token=float(flops_per_token),
        tokens=float(tokens),
        compute=float(compute),
        batch_tokens=optimal_batch_tokens(compute),
        learning_rate=optimal_lr(compute),
        optimal_flops_per_token=m_opt,
        optimal_tokens=d_opt,
    )


def model_flops_per_token(config: Any, seq_length: int | None = None) -> float:
    """`M` of a model config (paper Eq. 2): `config.flops_per_token`, with the attention term at `seq_length`.

    `l_seq` in Eq. 2 is the training sequence length; it defaults to the config's context
    (`max_position_embeddings`). Give `seq_length` when training on shorter sequences than the context.
    """
    if seq_length is not None and hasattr(config, "flops_per_token_at"):
        return float(config.flops_per_token_at(seq_length))
    value = getattr(config, "flops_per_token", None)
    if value is None:
        raise TypeError(
            f"{type(config).__name__} has no `flops_per_token`; the scaling laws need M (non-embedding FLOPs per "
            "token, paper Eq. 2): use a DeepseekLLMConfig"
        )
    return float(value)


def round_batch_sequences(batch_tokens: float, seq_length: int, multiple: int = 1) -> int:
    """Round a batch size in tokens to a whole number of sequences that is a multiple of `multiple`.

    `multiple` is micro-batch size x data-parallel world size, so the batch splits into whole accumulation steps.
    Rounds to the nearest multiple (at least one).
    """
    if seq_length <= 0 or multiple <= 0:
        raise ValueError(f"seq_length and multiple must be positive, got {seq_length} and {multiple}")
    sequences = batch_tokens / seq_length
    return max(multiple, multiple * math.floor(sequences / multiple + 0.5))
