"""Alignment: the paper's two-stage SFT and DPO (arXiv 2401.02954 section 4) on TRL's `SFTTrainer` / `DPOTrainer`.

* `data`: Alpaca / chat `messages` / ShareGPT / preference records -> TRL's conversational format, skips counted;
* `mixture`: datasets with a category and a weight, the per-stage selection, the mixture report written by a run;
* `template`: the chat template's `{% generation %}` labelling and the token lengths of the over-long rule;
* `args`: the recipes' dataclass configs (TRL style, the paper's defaults);
* `trainer`: the trainers (atomic saves, LoRA merged on save, an explicit DPO reference) and the loading helpers;
* `cli`: what `recipes/sft.py` and `recipes/dpo.py` share (parsing, one-line errors).

Submodules are imported lazily, so `import deepseek_hf.alignment.data` does not import TRL's trainers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SKIP_REASONS": "data",
    "ConversionReport": "data",
    "convert_dataset": "data",
    "convert_records": "data",
    "detect_format": "data",
    "read_records": "data",
    "CATEGORIES": "mixture",
    "MIXTURE_FILE": "mixture",
    "DatasetSpec": "mixture",
    "Mixture": "mixture",
    "build_mixture": "mixture",
    "parse_dataset_specs": "mixture",
    "write_json_atomic": "mixture",
    "ensure_training_chat_template": "template",
    "preference_length": "template",
    "sft_length": "template",
    "AlignDataArguments": "args",
    "AlignModelArguments": "args",
    "DeepseekDPOConfig": "args",
    "DeepseekSFTConfig": "args",
    "DeepseekDPOTrainer": "trainer",
    "DeepseekSFTTrainer": "trainer",
    "Reference": "trainer",
    "apply_global_batch_size": "trainer",
    "check_reference_config": "trainer",
    "load_model": "trainer",
    "load_tokenizer": "trainer",
    "load_reference": "trainer",
    "peft_config_from": "trainer",
    "run_recipe": "cli",
    "setup_logging": "cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
