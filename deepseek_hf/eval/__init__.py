"""Evaluation of DeepSeek LLM checkpoints with lm-eval, as the paper scores them (P §5.1, Table 5).

Importing this package registers the metrics `acc_tokens` and `acc_uncond` with lm-eval (`metrics`).

The task YAMLs live in `deepseek_hf.eval_tasks` (`task_dir()` gives the folder for `--include_path`); their data
loaders are in `benchmarks`, the task class in `task`, and `deepseek-hf eval` (`cli`) wraps `lm_eval` with both.
"""

from ..eval_tasks import task_dir
from . import metrics  # noqa: F401  (registers acc_tokens / acc_uncond)

__all__ = ["task_dir"]
