"""Interoperability with Llama-format checkpoints, the format of the official DeepSeek LLM release.

The released `deepseek-ai/deepseek-llm-{7b,67b}-{base,chat}` checkpoints are `LlamaForCausalLM` (config.json with
`model_type: llama` + weights). Our parameter names are Llama's, so conversion in either direction only rewrites
`config.json`; weights are copied byte for byte (no tensor is loaded, so a 67B checkpoint converts with no RAM),
after checking that their tensor names are exactly the ones the target architecture expects.

```python
from deepseek_hf.llama_interop import load_llama_checkpoint, save_as_llama, convert_checkpoint

model = load_llama_checkpoint("deepseek-llm-7b-base")            # Llama-format dir -> DeepseekLLMForCausalLM
save_as_llama(model, "out/llama-format")                          # in-memory model -> Llama-format dir (vLLM, llama.cpp)
convert_checkpoint("deepseek-llm-7b-base", "out/ours", to="deepseek_llm")   # dir -> dir, files only
```
CLI: `deepseek-hf model from-llama SRC DST`, `deepseek-hf model to-llama SRC DST`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_INDEX_NAME

from .modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
from .utils import staged_directory

# Architecture fields with the same name and meaning in both configs (plus the generic `dtype`).
SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "use_cache",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "rope_parameters",
    "attention_bias",
    "attention_dropout",
    "mlp_bias",
    "dtype",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_WEIGHT_INDEXES = (SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_INDEX_NAME)


def _shared_values(config) -> dict:
    return {name: getattr(config, name) for name in SHARED_FIELDS if hasattr(config, name)}


def config_from_llama(llama_config: LlamaConfig | str | os.PathLike) -> DeepseekLLMConfig:
    """A `DeepseekLLMConfig` with the same architecture as a Llama config (object, config.json or checkpoint dir)."""
    if not isinstance(llama_config, LlamaConfig):
        llama_config = _read_config(llama_config, expected_model_type="llama", cls=LlamaConfig)
    values = _shared_values(llama_config)
    vocab_size = values["vocab_size"]
    if values.get("pad_token_id") is not None and not 0 <= values["pad_token_id"] < vocab_size:
        values["pad_token_id"] = None  # old Llama configs carry pad_token_id = -1, i.e. "no padding token"
    return DeepseekLLMConfig(**values)


def config_to_llama(config: DeepseekLLMConfig) -> LlamaConfig:
    """The `LlamaConfig` of the same architecture (DeepSeek-only fields such as `loss_chunk_size` are dropped)."""
    llama_config = LlamaConfig(**_shared_values(config))
    llama_config.architectures = ["LlamaForCausalLM"]
    return llama_config


def load_llama_checkpoint(path: str | os.PathLike, **from_pretrained_kwargs) -> DeepseekLLMForCausalLM:
    """Load a Llama-format checkpoint directory (config.json + safetensors/bin shards) into our model.

    `from_pretrained_kwargs` go to `DeepseekLLMForCausalLM.from_pretrained` (e.g. `dtype`, `attn_implementation`,
    `device_map`); weights keep their names, so sharded checkpoints load as they are.
    """
    config = config_from_llama(path)
    return DeepseekLLMForCausalLM.from_pretrained(path, config=config, **from_pretrained_kwargs)


def save_as_llama(model: DeepseekLLMForCausalLM, save_directory: str | os.PathLike, **save_pretrained_kwargs) -> None:
    """Write `model` as a plain `LlamaForCausalLM` checkpoint (no custom code) for vLLM, llama.cpp, TGI, ..."""
    llama_config = config_to_llama(model.config)
    llama_config.dtype = model.dtype
    with torch.device("meta"):  # a shell: its parameters are replaced by ours below, nothing is allocated
        llama = LlamaForCausalLM(llama_config)
    llama.load_state_dict(model.state_dict(), strict=True, assign=True)
    llama.generation_config = model.generation_config
    llama.save_pretrained(save_directory, **save_pretrained_kwargs)


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    to: Literal["llama", "deepseek_llm"],
    overwrite: bool = False,
) -> Path:
    """Convert a checkpoint directory to the other format by rewriting config.json and copying every other file.

    `to="deepseek_llm"`: Llama-format dir -> our format (config + modeling files + `auto_map`, loadable with
    `trust_remote_code=True` or after `import deepseek_hf`). `to="llama"`: ours -> plain Llama format (our code
    files are left out). Tokenizer and generation-config files travel along. The output is assembled in a
    temporary folder next to `dst` and renamed into place, so a failed conversion never leaves a partial `dst`.
    """
    if to not in ("llama", "deepseek_llm"):
        raise ValueError(f"`to` must be 'llama' or 'deepseek_llm', got {to!r}.")
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {src}")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists (pass overwrite=True / --overwrite to replace it)")

    if to == "deepseek_llm":
        config = config_from_llama(src)
        with torch.device("meta"):
            target = DeepseekLLMForCausalLM(config)
    else:
        source_config = _read_config(src, expected_model_type=DeepseekLLMConfig.model_type, cls=DeepseekLLMConfig)
        config = config_to_llama(source_config)
        with torch.device("meta"):
            target = LlamaForCausalLM(config)
    _check_weight_names(src, expected=set(target.state_dict()), tied=config.tie_word_embeddings)

    with staged_directory(dst) as tmp:  # `overwrite` was checked above
        for item in sorted(src.iterdir()):
            if item.name == CONFIG_NAME or item.suffix == ".py" or item.name.startswith(".") or not item.is_file():
                continue  # the config is rewritten; custom code belongs to the source format
            shutil.copy2(item, tmp / item.name)
        if to == "deepseek_llm":
            custom_object_save(target, tmp, config=config)  # modeling files + auto_map["AutoModelForCausalLM"]
            config.architectures = ["DeepseekLLMForCausalLM"]
            config.save_pretrained(tmp)  # + configuration file and auto_map["AutoConfig"]
        else:
            config.save_pretrained(tmp)
    return dst


def _read_config(path: str | os.PathLike, *, expected_model_type: str, cls):
    path = Path(path)
    config_file = path / CONFIG_NAME if path.is_dir() else path
    if not config_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} at {path}")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type != expected_model_type:
        raise ValueError(f"{config_file} has model_type {model_type!r}; expected {expected_model_type!r}.")
    return cls.from_json_file(str(config_file))


def _check_weight_names(src: Path, *, expected: set[str], tied: bool) -> None:
    """Fail before copying anything unless the checkpoint holds exactly the tensors the target model expects."""
    found: set[str] = set()
    index_files = [src / name for name in _WEIGHT_INDEXES if (src / name).is_file()]
    if index_files:
        found = set(json.loads(index_files[0].read_text(encoding="utf-8"))["weight_map"])
    else:
        weight_files = [p for p in src.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file()]
        if not weight_files:
            raise FileNotFoundError(f"no weights (*.safetensors or *.bin) in {src}")
        for weight_file in weight_files:
            if weight_file.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(weight_file), framework="pt") as handle:
                    found |= set(handle.keys())
            else:
                found |= set(torch.load(weight_file, map_location="meta", mmap=True, weights_only=True))
    if tied:
        found.add("lm_head.weight")  # a tied head is not stored
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights in {src} do not match the architecture in its config: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )


__all__ = [
    "config_from_llama",
    "config_to_llama",
    "convert_checkpoint",
    "load_llama_checkpoint",
    "save_as_llama",
]
