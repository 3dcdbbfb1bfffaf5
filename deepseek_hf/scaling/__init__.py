"""Scaling laws of DeepSeek LLM (arXiv 2401.02954, section 3): hyperparameters and model/data allocation.

* `optimal_batch_tokens(C)`, `optimal_lr(C)`: near-optimal batch size (tokens) and peak LR (Eq. 1);
* `optimal_allocation(C) -> (M_opt, D_opt)`: compute-optimal FLOPs/token and tokens (Eq. 4);
* `scaling_hyperparameters(flops_per_token=M, tokens=D | compute=C)`: all of them for one run.

Command line: `deepseek-hf scaling hparams --preset deepseek-llm-7b --tokens 2e12`.
"""

from .hparams import (
    PAPER_TABLE_2,
    ScalingHyperparameters,
    model_flops_per_token,
    round_batch_sequences,
    scaling_hyperparameters,
)
from .laws import (
    BATCH_SIZE_LAW,
    DATA_SCALE_LAW,
    LEARNING_RATE_LAW,
    MODEL_SCALE_LAW,
    PowerLaw,
    compute_budget,
    optimal_allocation,
    optimal_batch_tokens,
    optimal_lr,
)

__all__ = [
    "BATCH_SIZE_LAW",
    "DATA_SCALE_LAW",
    "LEARNING_RATE_LAW",
    "MODEL_SCALE_LAW",
    "PAPER_TABLE_2",
    "PowerLaw",
    "ScalingHyperparameters",
    "compute_budget",
    "model_flops_per_token",
    "optimal_allocation",
    "optimal_batch_tokens",
    "optimal_lr",
    "round_batch_sequences",
    "scaling_hyperparameters",
]
