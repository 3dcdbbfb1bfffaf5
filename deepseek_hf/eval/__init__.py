"""Evaluation of DeepSeek LLM checkpoints with lm-eval, as the paper scores them (P §5.1, Table 5).

Importing this package

- registers the metrics `acc_tokens` and `acc_uncond` with lm-eval (`metrics`),
- registers the lm-eval model `deepseek` (`scorer.DeepseekLM`, the same log-likelihoods as `hf` with far less work),
  imported lazily when a run asks for it.

The task YAMLs live in `deepseek_hf.eval_tasks` (`task_dir()` gives the folder for `--include_path`); their data
loaders are in `benchmarks`, the task class in `task`, and `deepseek-hf eval` (`cli`) wraps `lm_eval` with both.
"""

import lm_eval.models  # noqa: F401  (lm-eval registers its own models only while its registry is empty)
from lm_eval.api.registry import model_registry

from ..eval_tasks import task_dir
from . import metrics  # noqa: F401  (registers acc_tokens / acc_uncond)

MODEL_NAME = "deepseek"

if MODEL_NAME not in model_registry:
    model_registry.register(MODEL_NAME, target="deepseek_hf.eval.scorer:DeepseekLM")

__all__ = ["MODEL_NAME", "task_dir"]
