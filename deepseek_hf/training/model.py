"""The tokenizer and the from-scratch model of a pretraining run.

The model config is a preset and/or a config JSON, plus `config_overrides` (transformers' `run_clm.py` idiom):
`model_preset: deepseek-llm-tiny`, `model_config: path/config.json`, `config_overrides: "num_hidden_layers=2"`.
Fields apply in that order; an override key that is not a config field is an error (a typo is never ignored).
The vocabulary follows the tokenizer: `vocab_size = padded_vocab_size(len(tokenizer))` and the BOS / EOS / PAD ids
are the tokenizer's, unless the JSON or the overrides set `vocab_size` explicitly, in which case a tokenizer larger
than it is an error (its ids would index past the embedding).

```python
from deepseek_hf.training.model import build_model, load_tokenizer
tokenizer = load_tokenizer("outputs/demo/tokenizer")
model = build_model(tokenizer, preset="deepseek-llm-tiny", overrides="num_hidden_layers=2,hidden_size=64")
```
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from deepseek_hf.utils import config_keys, merge_config_fields, parse_overrides

__all__ = ["load_tokenizer", "build_model_config", "build_model", "parse_config_overrides"]

logger = logging.getLogger(__name__)

_CONFIG_METADATA_KEYS = {
    "architectures",
    "model_type",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "auto_map",
    "_name_or_path",
}


def load_tokenizer(name_or_path: str | None):
    """`AutoTokenizer.from_pretrained`, with a clear error when the recipe has no tokenizer."""
    if not name_or_path:
        raise ValueError(
            "no tokenizer: set tokenizer_name_or_path (train one with `deepseek-hf tokenizer train`, e.g. into "
            "outputs/demo/tokenizer)"
        )
    if not os.path.exists(name_or_path) and (os.sep in name_or_path or name_or_path.startswith(".")):
        raise FileNotFoundError(f"tokenizer folder {name_or_path!r} does not exist")
    from transformers import AutoTokenizer

    import deepseek_hf  # noqa: F401  (registers the deepseek_llm tokenizer with AutoTokenizer)

    return AutoTokenizer.from_pretrained(name_or_path)


def parse_config_overrides(text: str | None) -> dict[str, Any]:
    """`"a=1,b=0.5,c=true,d=silu"` -> `{"a": 1, "b": 0.5, "c": True, "d": "silu"}`, with `model info --set`'s parser.

    A key that is not a `DeepseekLLMConfig` field is a `ValueError` naming the closest fields: transformers would
    store `num_hidden_layer=2` as an unused attribute and train the preset's depth without a word.
    """
    from deepseek_hf.modeling import DeepseekLLMConfig

    return parse_overrides(text, valid_keys=config_keys(DeepseekLLMConfig), what="model config")


def _read_config_json(path: str) -> dict[str, Any]:
    file = Path(path) / "config.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"model config {path!r} not found")
    fields = json.loads(file.read_text())
    model_type = fields.get("model_type")
    if model_type not in (None, "deepseek_llm", "llama"):
        raise ValueError(f"{file}: model_type {model_type!r} is not a DeepSeek LLM (deepseek_llm or llama) config")
    return {key: value for key, value in fields.items() if key not in _CONFIG_METADATA_KEYS}


def build_model_config(
    tokenizer, *, preset: str | None = None, config_path: str | None = None, overrides: str | None = None
):
    """A `DeepseekLLMConfig` from preset, JSON and overrides, with the tokenizer's vocabulary (see module doc)."""
    from deepseek_hf.modeling import DeepseekLLMConfig
    from deepseek_hf.tokenizer import padded_vocab_size

    if not preset and not config_path:
        raise ValueError("no model: set model_preset (e.g. deepseek-llm-7b) and/or model_config (a config.json)")
    override_fields = parse_config_overrides(overrides)  # first: a typo fails before any file is read
    fields = merge_config_fields(_read_config_json(config_path) if config_path else {}, override_fields)
    num_tokens = len(tokenizer)
    if "vocab_size" in fields:
        if fields["vocab_size"] < num_tokens:
            raise ValueError(
                f"the tokenizer has {num_tokens} tokens but the model config sets vocab_size={fields['vocab_size']}: "
                f"its ids would index past the embedding; drop vocab_size to get padded_vocab_size({num_tokens}) = "
                f"{padded_vocab_size(num_tokens)}, or set it to at least {num_tokens}"
            )
    else:
        fields["vocab_size"] = padded_vocab_size(num_tokens)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        fields.setdefault(name, getattr(tokenizer, name))
    config = DeepseekLLMConfig.from_preset(preset, **fields) if preset else DeepseekLLMConfig(**fields)
    config.check_vocab_covers(tokenizer)
    return config


def build_model(
    tokenizer,
    *,
    preset: str | None = None,
    config_path: str | None = None,
    overrides: str | None = None,
    attn_implementation: str | None = "sdpa",
):
    """A freshly initialised `DeepseekLLMForCausalLM` (normal init with std `config.initializer_range`, 0.006)."""
    from transformers import AutoModelForCausalLM

    import deepseek_hf  # noqa: F401  (registers deepseek_llm with the Auto classes)

    config = build_model_config(tokenizer, preset=preset, config_path=config_path, overrides=overrides)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    logger.info(
        "Model: %s, %.4g parameters, M = %.4g FLOPs/token at its context",
        type(model).__name__,
        sum(p.numel() for p in model.parameters()),
        config.flops_per_token,
    )
    return model
