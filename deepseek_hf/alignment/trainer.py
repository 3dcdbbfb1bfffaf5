"""TRL's `SFTTrainer` / `DPOTrainer` for the recipes: atomic saves that carry the tokenizer and the code, LoRA merged
into the saved model, and a DPO reference model that is always the one asked for.

The loss path for the 102400-token vocabulary
--------------------------------------------
Both trainers patch the model with TRL's fused LM head (`trl.trainer.utils.add_fused_lm_head`): training calls the
backbone (`model.model`, found through `base_model_prefix`) for `last_hidden_state` and projects it through
`lm_head.weight` tile by tile (`ChunkedLogProbFunction`: at most 4096 tokens x 32768 vocabulary entries at a time,
an online log-sum-exp over the vocabulary tiles, recomputed in the backward). Our trainers have TRL install
`add_compact_lm_head` instead (`head.py`): the same kernel and outputs, but on the labelled positions only, which TRL
does on Triton devices only (on CPU it scores the prompt and padding positions too). That is the path we use for SFT and DPO,
rather than the model's own chunked cross-entropy (`fused_linear_cross_entropy`, which serves pretraining), because:

* DPO needs per-token log-probabilities of the chosen and rejected answers, under the policy and the reference; our
  fused loss returns only the summed loss, TRL's head returns exactly those log-probabilities;
* SFT's metrics (entropy, token accuracy) and `num_items_in_batch` normalisation come from the same outputs, so one
  path serves both trainers, the policy and the reference alike;
* the trainers install it unconditionally: our model's `forward` (and its loss) is never called in training, so a
  second path would be dead code.

Neither path builds the `[batch, seq, vocab]` float32 logits; `lm_head.forward` is not called during training at
all (`tests/alignment/test_recipes.py` checks it with a hook). The full logits exist only in evaluation / generation.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import trl.trainer.dpo_trainer
import trl.trainer.sft_trainer
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOTrainer, SFTTrainer

from ..training.trainer import AtomicSavesMixin
from .head import compact_lm_head_for

logger = logging.getLogger(__name__)

__all__ = [
    "DeepseekDPOTrainer",
    "DeepseekSFTTrainer",
    "Reference",
    "apply_global_batch_size",
    "check_reference_config",
    "load_model",
    "load_reference",
    "load_tokenizer",
    "peft_config_from",
]


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


class _AtomicSaves(AtomicSavesMixin):
    """Checkpoints and the final model staged and renamed into place (`AtomicSavesMixin`, as `PretrainTrainer`). A
    LoRA run saves its adapter in `adapter/` and the merged model at the top, so the next stage and
    `AutoModelForCausalLM` load it as it is."""

    def _save_final_model(self, staging: str) -> None:
        model = self.accelerator.unwrap_model(self.model)
        if not _is_peft(model):
            return super()._save_final_model(staging)
        if self.args.should_save:
            model.save_pretrained(os.path.join(staging, "adapter"))
            merged = model.merge_and_unload()  # the trained weights, adapter folded in: a plain DeepSeek model
            merged.save_pretrained(staging)
            self.processing_class.save_pretrained(staging)


class DeepseekSFTTrainer(_AtomicSaves, SFTTrainer):
    """`SFTTrainer` with atomic saves (see `_AtomicSaves`) and the LM head that scores labelled positions only
    (`deepseek_hf.alignment.head`)."""

    def __init__(self, *args, **kwargs):
        with compact_lm_head_for(trl.trainer.sft_trainer):
            super().__init__(*args, **kwargs)


class DeepseekDPOTrainer(_AtomicSaves, DPOTrainer):
    """`DPOTrainer` that refuses to pick a reference by itself, with the LM head that scores labelled positions only.

    TRL 1.16 reloads a missing `ref_model` from `model.config._name_or_path` (hf-stack.md, pitfall 1): for a model
    changed in memory that silently uses the on-disk weights. Here the reference is given (`load_reference`), or
    there is none on purpose: LoRA (the policy with its adapter disabled) or precomputed reference log-probs.
    """

    def __init__(self, *args, reference: Reference, **kwargs):
        kwargs["ref_model"] = reference.model
        if reference.model is None and reference.kind not in ("peft", "precomputed"):
            raise ValueError(f"no reference model for a {reference.kind!r} reference")
        with compact_lm_head_for(trl.trainer.dpo_trainer):
            super().__init__(*args, **kwargs)
        if reference.kind == "peft" and not _is_peft(self.model):
            raise ValueError("a LoRA reference needs the policy wrapped in LoRA (use_peft: true)")
        if reference.model is None and self.ref_model is not None:  # TRL loaded one on its own: never use it
            raise RuntimeError(f"DPOTrainer loaded a reference model by itself ({reference.kind} was asked)")
        self.reference = reference


@dataclass
class Reference:
    """The DPO reference: `kind` is `explicit` (a loaded model), `peft` or `precomputed`; `path` where it came from."""

    kind: str
    path: str | None
    model: object | None = None

    def describe(self) -> dict:
        return {"kind": self.kind, "path": self.path}


def _check_model_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} {path!r} is not a folder (a checkpoint saved by a recipe is expected)")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{what} {path!r} has no config.json: not a saved model")


def _dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return "auto"
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ValueError(f"unknown dtype {name!r}; use auto, float32, bfloat16 or float16")
    return getattr(torch, name)


def load_tokenizer(model_args):
    """The starting checkpoint's tokenizer (checkpoints saved by the recipes carry theirs); checks the folder."""
    import deepseek_hf  # noqa: F401  (registers deepseek_llm with the Auto classes)

    _check_model_dir(model_args.model_name_or_path, "model_name_or_path")
    return AutoTokenizer.from_pretrained(model_args.model_name_or_path)


def load_model(model_args):
    """The starting model (a checkpoint folder: pretraining's or the previous stage's)."""
    import deepseek_hf  # noqa: F401

    _check_model_dir(model_args.model_name_or_path, "model_name_or_path")
    return AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path,
        dtype=_dtype(model_args.dtype),
        attn_implementation=model_args.attn_implementation,
    )


def check_reference_config(model_args, training_args) -> str:
    """The kind of DPO reference the configuration asks for (`explicit`, `peft`, `precomputed`), checked before any
    model is loaded."""
    ref_path = model_args.ref_model_name_or_path
    same = ref_path is None or os.path.abspath(ref_path) == os.path.abspath(model_args.model_name_or_path)
    if model_args.use_peft:
        if not same:
            raise ValueError(
                "use_peft uses the policy with its adapter disabled as the reference: ref_model_name_or_path "
                f"{ref_path!r} differs from model_name_or_path and cannot be used (unset it, or set use_peft: false)"
            )
        return "peft"
    if training_args.precompute_ref_log_probs and same:
        return "precomputed"  # the initial policy, before any step
    _check_model_dir(model_args.model_name_or_path if same else ref_path, "ref_model_name_or_path")
    return "explicit"


def load_reference(model_args, training_args, policy) -> Reference:
    """The DPO reference, decided here and logged (see `DeepseekDPOTrainer`)."""
    kind = check_reference_config(model_args, training_args)
    if kind != "explicit":
        reference = Reference(kind, model_args.model_name_or_path)
    else:
        path = model_args.ref_model_name_or_path or model_args.model_name_or_path
        ref = AutoModelForCausalLM.from_pretrained(
            path, dtype=policy.dtype, attn_implementation=model_args.attn_implementation
        )
        reference = Reference("explicit", path, ref)
    logger.info("DPO reference: %s", reference.describe())
    return reference


def peft_config_from(model_args):
    """TRL's `get_peft_config`, with `all-linear` passed to peft as the string it expects."""
    from trl import get_peft_config

    config = get_peft_config(model_args)
    if config is not None and config.target_modules in ({"all-linear"}, ["all-linear"]):
        config.target_modules = "all-linear"
    return config


def apply_global_batch_size(args) -> None:
    """`global_batch_size` -> `gradient_accumulation_steps` (per-device batch x processes x accumulation)."""
    if args.global_batch_size is None:
        return
    per_step = args.per_device_train_batch_size * args.world_size
    if args.global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size {args.global_batch_size} is not a multiple of per_device_train_batch_size x processes "
            f"= {args.per_device_train_batch_size} x {args.world_size}"
        )
    args.gradient_accumulation_steps = args.global_batch_size // per_step
