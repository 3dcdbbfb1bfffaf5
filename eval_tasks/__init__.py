"""lm-eval task definitions for the DeepSeek LLM evaluation protocol, installed as `deepseek_hf.eval_tasks`.

The YAML files ship as package data; pass `task_dir()` to lm-eval's `--include_path` / `TaskManager(include_path=...)`.
"""

from pathlib import Path


def task_dir() -> str:
    """The folder holding the task YAMLs, wherever the package is installed."""
    return str(Path(__file__).resolve().parent)
