"""Interoperability with Llama-format checkpoints, the format of the official DeepSeek LLM release.

The released `deepseek-ai/deepseek-llm-{7b,67b}-{base,chat}` checkpoints are `LlamaForCausalLM` (config.json with
`model_type: llama` + weights). Our parameter names are Llama's, so conversion in either direction only rewrites
`config.json`; weights are copied byte for byte (no tensor is loaded, so a 67B checkpoint converts with no RAM),
after checking that their tensor names are exactly the ones the target architecture expects.

A source may be a pretraining run's output folder or one of its `checkpoint-*` / `stage1-checkpoint-*`: only the
weight files `from_pretrained` reads are opened and copied, never the Trainer's state next to them
(`training_args.bin`, `optimizer.pt`, `scheduler.pt`, `rng_state*.pth`, `trainer_state.json`).

```python
from deepseek_hf.checkpoints import load_llama_checkpoint, save_as_llama, convert_checkpoint

model = load_llama_checkpoint("deepseek-llm-7b-base")            # Llama-format dir -> DeepseekLLMForCausalLM
save_as_llama(model, "out/llama-format")                          # in-memory model -> Llama-format dir (vLLM, llama.cpp)
convert_checkpoint("deepseek-llm-7b-base", "out/ours", to="deepseek_llm")   # dir -> dir, files only
```
CLI: `deepseek-hf model from-llama SRC DST`, `deepseek-hf model to-llama SRC DST`.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError, safe_open
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import (
    CONFIG_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)

from ..modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
from ..utils import staged_directory

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
# (index, single file) in from_pretrained's order of preference: safetensors first.
_WEIGHT_LAYOUTS = ((SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME), (WEIGHTS_INDEX_NAME, WEIGHTS_NAME))
# Tensor or pickle files: copied only when they are the weights chosen above (a .bin may be `training_args.bin`).
_BINARY_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")
# A Trainer's resume state, written next to the weights of a run's folder and its checkpoints.
_TRAINER_STATE_FILES = ("trainer_state.json",)
_CHECKPOINT_DIR = re.compile(r"(stage1-)?checkpoint-\d+")


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
    """Convert a checkpoint directory to the other format by rewriting config.json and copying the weights.

    `to="deepseek_llm"`: Llama-format dir -> our format (config + modeling files + `auto_map`, loadable with
    `trust_remote_code=True` or after `import deepseek_hf`). `to="llama"`: ours -> plain Llama format (our code
    files are left out). `src` may be a training run's folder or checkpoint: only the weights `from_pretrained`
    reads (see `weight_files`) travel, with the tokenizer, generation-config and other small files, never the
    Trainer's state or sub-folders. The output is assembled in a temporary folder next to `dst` and renamed into
    place, so a failed conversion never leaves a partial `dst`.
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
    weights = weight_files(src)
    _check_weight_names(weights, expected=set(target.state_dict()), tied=config.tie_word_embeddings)

    with staged_directory(dst) as tmp:  # `overwrite` was checked above
        for item in sorted(src.iterdir()):
            if item in weights or _is_checkpoint_metadata(item):
                shutil.copy2(item, tmp / item.name)
        if to == "deepseek_llm":
            custom_object_save(target, tmp, config=config)  # modeling files + auto_map["AutoModelForCausalLM"]
            config.architectures = ["DeepseekLLMForCausalLM"]
            config.save_pretrained(tmp)  # + configuration file and auto_map["AutoConfig"]
        else:
            config.save_pretrained(tmp)
    return dst


def weight_files(checkpoint: str | os.PathLike) -> list[Path]:
    """The files holding a checkpoint's weights, as `from_pretrained` picks them: the safetensors index and its
    shards or `model.safetensors`, else the same for `pytorch_model*.bin`.

    Picking by name matters: a training run's folder also holds pickles that are not weights (`training_args.bin`
    is a pickled `TrainingArguments`, which `torch.load(weights_only=True)` refuses).
    """
    checkpoint = Path(checkpoint)
    for index_name, single_name in _WEIGHT_LAYOUTS:
        index = checkpoint / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as error:
                raise ValueError(f"{index} is not a weight index (a JSON object with a weight_map): {error}") from None
            if missing := [name for name in shards if not (checkpoint / name).is_file()]:
                raise FileNotFoundError(f"{index} lists shards that are not in {checkpoint}: {', '.join(missing[:3])}")
            return [index, *(checkpoint / name for name in shards)]
        if (checkpoint / single_name).is_file():
            return [checkpoint / single_name]
    raise FileNotFoundError(
        f"no weights in {checkpoint}: expected {SAFE_WEIGHTS_NAME}, {WEIGHTS_NAME} or a sharded index "
        f"({SAFE_WEIGHTS_INDEX_NAME}, {WEIGHTS_INDEX_NAME})"
    )


def _is_checkpoint_metadata(item: Path) -> bool:
    """Files that travel with the weights (tokenizer, generation config, model card ...): not the config (rewritten),
    code (of the source format), hidden files, folders (checkpoints, caches), other tensor files or trainer state."""
    return (
        item.is_file()
        and item.name != CONFIG_NAME
        and item.suffix != ".py"
        and not item.name.startswith(".")
        and item.suffix not in _BINARY_SUFFIXES
        and item.name not in _TRAINER_STATE_FILES
    )


def _read_config(path: str | os.PathLike, *, expected_model_type: str, cls):
    path = Path(path)
    config_file = path / CONFIG_NAME if path.is_dir() else path
    if not config_file.is_file():
        checkpoints = sorted(p.name for p in path.glob("*checkpoint-*") if _CHECKPOINT_DIR.fullmatch(p.name))
        if checkpoints:  # a run without its final model yet
            raise FileNotFoundError(
                f"no {CONFIG_NAME} in {path}, which holds training checkpoints ({', '.join(checkpoints)}): "
                "convert one of those"
            )
        raise FileNotFoundError(f"no {CONFIG_NAME} at {path}")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type != expected_model_type:
        raise ValueError(f"{config_file} has model_type {model_type!r}; expected {expected_model_type!r}.")
    return cls.from_json_file(str(config_file))


def _check_weight_names(weights: list[Path], *, expected: set[str], tied: bool) -> None:
    """Fail before copying anything unless the checkpoint holds exactly the tensors the target model expects."""
    found: set[str] = set()
    if weights[0].name.endswith(".index.json"):
        found = set(json.loads(weights[0].read_text(encoding="utf-8"))["weight_map"])
    else:
        try:
            if weights[0].suffix == ".safetensors":
                with safe_open(str(weights[0]), framework="pt") as handle:
                    found = set(handle.keys())
            else:
                found = set(torch.load(weights[0], map_location="meta", mmap=True, weights_only=True))
        except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError) as error:  # corrupt or truncated
            raise ValueError(f"cannot read the tensors of {weights[0]}: {error}") from None
    if tied:
        found.add("lm_head.weight")  # a tied head is not stored
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights in {weights[0].parent} do not match the architecture in its config: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )


__all__ = [
    "config_from_llama",
    "config_to_llama",
    "convert_checkpoint",
    "load_llama_checkpoint",
    "save_as_llama",
    "weight_files",
]
