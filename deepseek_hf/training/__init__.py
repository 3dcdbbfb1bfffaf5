"""Pretraining: the paper's recipe (arXiv 2401.02954, section 2.3) on transformers' `Trainer`.

* `PretrainConfig` (a `TrainingArguments`), `PretrainDataArguments`, `PretrainModelArguments`: the recipe's config;
* `build_packed_dataset` / `PackedDataset`: documents tokenized once and packed into fixed-length rows;
* `build_pretraining_datasets` / `ValidationDataset` / `score_validation`: a held-out split by text hash, and its
  validation loss and bits-per-byte;
* `AnnealedDataset` / `parse_anneal_sources`: data sources annealed into the last part of the run (`anneal_sources`);
* `get_token_scheduler`: the multi-step (and cosine) LR schedule, stepped by tokens;
* `resolve_training_plan`: batch size, LR and length from explicit values or the scaling laws;
* `PretrainTrainer`: the `Trainer` that ties them together, with atomic checkpoints and checked resumes
  (`check_resumable`);
* `build_model` / `load_tokenizer`: the model from a preset / config JSON + overrides, sized to the tokenizer.

Submodules are imported lazily, so `import deepseek_hf.training.schedules` does not import the trainer.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PretrainConfig": "args",
    "PretrainDataArguments": "args",
    "PretrainModelArguments": "args",
    "PackedDataset": "packing",
    "AnnealSource": "annealing",
    "AnnealedDataset": "annealing",
    "AnnealedMixtureCallback": "annealing",
    "parse_anneal_sources": "annealing",
    "plan_anneal": "annealing",
    "render_conversation": "annealing",
    "TokenizedCorpus": "corpus",
    "ShardedTokenizedCorpus": "shards",
    "build_packed_dataset": "packing",
    "build_pretraining_datasets": "validation",
    "check_validation_settings": "validation",
    "ValidationDataset": "validation",
    "ValidationResult": "validation",
    "score_validation": "validation",
    "get_token_scheduler": "schedules",
    "multi_step_lr_factor": "schedules",
    "cosine_lr_factor": "schedules",
    "TokenBasedLR": "schedules",
    "TrainingPlan": "plan",
    "resolve_training_plan": "plan",
    "PretrainTrainer": "trainer",
    "read_checkpoint_progress": "trainer",
    "check_resumable": "trainer",
    "check_schedule": "trainer",
    "CheckpointError": "trainer",
    "CheckpointProgress": "trainer",
    "LossCurveCallback": "callbacks",
    "SchedulePhaseCallback": "callbacks",
    "Stage1CheckpointCallback": "callbacks",
    "plot_loss_curve": "plotting",
    "build_model": "model",
    "load_tokenizer": "model",
    "build_model_config": "model",
    "resolve_dataset_path": "packing",
    "dataset_path_exists": "packing",
    "data_run_folder": "packing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
