"""Scaling laws of DeepSeek LLM (arXiv 2401.02954, section 3): hyperparameters and model/data allocation.

* `optimal_batch_tokens(C)`, `optimal_lr(C)`: near-optimal batch size (tokens) and peak LR (Eq. 1);
* `optimal_allocation(C) -> (M_opt, D_opt)`: compute-optimal FLOPs/token and tokens (Eq. 4);
* `scaling_hyperparameters(flops_per_token=M, tokens=D | compute=C)`: all of them for one run;
* `model_scale(n_layer, d_model, seq_len, vocab_size)`: M, 6N1 and 6N2 (Eq. 2, Table 3);
* `isoflop_shapes(C, seq_len)` / `grid_runs(...)`: the runs of an IsoFLOP profile or a batch/LR grid
  (`recipes/scaling_sweep.py` runs them);
* a study of one's own: `append_result` / `read_results` (the results table), `fit_results` (the laws refitted,
  with bootstrap uncertainty) and `plot_results` (the paper's Figures 2-5);
* `schedule_runs(...)`: one model under several multi-step schedules (Figure 1b, `plot_schedules`);
  `fit_corpora` / `corpora_table`: the same IsoFLOP study on several corpora side by side (Table 4).

Command line: `deepseek-hf scaling hparams --preset deepseek-llm-7b --tokens 2e12`.
"""

from .compare import PAPER_TABLE_4, corpora_table, fit_corpora
from .fits import fit_grid, fit_isoflop, fit_loss_law, fit_results
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
from .plots import plot_corpora, plot_results, plot_schedules
from .results import RESULT_FIELDS, append_result, finished_runs, read_results, write_results
from .scale import ModelScale, model_scale, model_scale_from_config
from .shapes import ShapeSpace, grid_runs, isoflop_shapes, schedule_runs

__all__ = [
    "BATCH_SIZE_LAW",
    "DATA_SCALE_LAW",
    "LEARNING_RATE_LAW",
    "MODEL_SCALE_LAW",
    "PAPER_TABLE_2",
    "PAPER_TABLE_4",
    "PowerLaw",
    "ScalingHyperparameters",
    "compute_budget",
    "model_flops_per_token",
    "optimal_allocation",
    "optimal_batch_tokens",
    "optimal_lr",
    "round_batch_sequences",
    "scaling_hyperparameters",
    "RESULT_FIELDS",
    "append_result",
    "finished_runs",
    "fit_grid",
    "fit_isoflop",
    "fit_loss_law",
    "fit_results",
    "fit_corpora",
    "corpora_table",
    "plot_corpora",
    "plot_results",
    "plot_schedules",
    "read_results",
    "write_results",
    "ModelScale",
    "model_scale",
    "model_scale_from_config",
    "ShapeSpace",
    "grid_runs",
    "isoflop_shapes",
    "schedule_runs",
]
