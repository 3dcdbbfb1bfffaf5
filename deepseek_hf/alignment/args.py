"""Configuration dataclasses of the alignment recipes (`recipes/sft.py`, `recipes/dpo.py`), in TRL's style.

Each recipe parses three dataclasses with `TrlParser` (YAML + flags, strict keys): `AlignDataArguments` (the data
mixture of the stage), `AlignModelArguments` (TRL's `ModelConfig`: the model to start from, LoRA through `peft`; for
DPO the reference model) and `DeepseekSFTConfig` / `DeepseekDPOConfig` (TRL's `SFTConfig` / `DPOConfig` with the
paper's settings as defaults: arXiv 2401.02954 section 4 and `../shared/notes/paper-facts.md` section 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import DPOConfig, ModelConfig, SFTConfig

from .mixture import CATEGORIES, parse_dataset_specs

__all__ = ["AlignDataArguments", "AlignModelArguments", "DeepseekSFTConfig", "DeepseekDPOConfig", "LORA_ALL_LINEAR"]

LORA_ALL_LINEAR = "all-linear"  # peft: every linear layer but the output head


@dataclass
class AlignDataArguments:
    """The data mixture of one alignment stage (`deepseek_hf.alignment.mixture`)."""

    # Typed `list[str]` for the command line (each a JSON object); the YAML gives mappings; both become DatasetSpecs.
    datasets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "The datasets: a list of {path, category, format, weight, name} (in the YAML; on the command "
            "line as JSON objects). path: a JSON / JSONL file or package://align_demo/...; category: one of "
            f"{', '.join(CATEGORIES)}; format: alpaca, messages, sharegpt, preference, sharegpt_preference or auto; "
            "weight: a factor on the dataset's usable records (default 1)."
        },
    )
    categories: list[str] | None = field(
        default=None,
        metadata={
            "help": "The categories this stage trains on (SFT stage 2 of the paper: [dialogue]); unset: every dataset."
        },
    )
    mixture_seed: int = field(default=42, metadata={"help": "Seed of the weighted sampling and the shuffle."})

    def __post_init__(self):
        self.datasets = parse_dataset_specs(self.datasets) if self.datasets else []


@dataclass
class AlignModelArguments(ModelConfig):
    """TRL's `ModelConfig` (model path, dtype, attention, LoRA: `use_peft`, `lora_r`, ...), plus the DPO reference.

    `lora_target_modules` defaults to every linear layer of the decoder (`all-linear`: the output head excluded), since
    peft has no default for the `deepseek_llm` model type.
    """

    ref_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "DPO only: the reference model (a checkpoint folder). Unset: the starting model itself, loaded "
            "explicitly as a second copy, or none at all with use_peft (the policy with its adapter disabled) or "
            "precompute_ref_log_probs (log-probs of the starting policy, computed before training)."
        },
    )
    lora_target_modules: list[str] | None = field(
        default_factory=lambda: [LORA_ALL_LINEAR],
        metadata={"help": "LoRA target modules (default all-linear: every linear layer but lm_head)."},
    )
    attn_implementation: str | None = field(
        default="sdpa", metadata={"help": "Attention kernel: sdpa, eager, flash_attention_2 (GPU, optional extra)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.model_name_or_path:
            raise ValueError("no model: set model_name_or_path (e.g. outputs/demo/pretrain, or SFT stage 1's output)")


def _paper(help_text: str, **kwargs: Any):
    return field(metadata={"help": help_text}, **kwargs)


@dataclass
class DeepseekSFTConfig(SFTConfig):
    """`SFTConfig` with the paper's 7B settings as defaults: 4 epochs at LR 1e-5 (67B: 2 epochs at 5e-6), loss on the
    assistant tokens only. The paper does not state the SFT batch size, schedule or length: the defaults below for
    those are TRL's / ours, said so in the recipes' YAMLs."""

    learning_rate: float = _paper("Peak learning rate (paper: 1e-5 for 7B, 5e-6 for 67B).", default=1e-5)
    num_train_epochs: float = _paper("Epochs (paper: 4 for 7B, 2 for 67B).", default=4.0)
    assistant_only_loss: bool = _paper(
        "Loss on the assistant answers (and the EOS closing each) only, through the chat template's "
        "{%% generation %%} blocks.",
        default=True,
    )
    max_length: int | None = _paper(
        "Longest conversation in tokens; longer ones are dropped (counted as too_long), never truncated.", default=4096
    )
    global_batch_size: int | None = _paper(
        "Conversations per optimizer step over all processes; sets gradient_accumulation_steps.", default=None
    )


@dataclass
class DeepseekDPOConfig(DPOConfig):
    """`DPOConfig` with the paper's settings as defaults: 1 epoch, LR 5e-6, batch 512, warm-up then cosine. The paper
    states neither beta (TRL's 0.1 here) nor the warm-up length (10% here)."""

    learning_rate: float = _paper("Peak learning rate (paper: 5e-6).", default=5e-6)
    num_train_epochs: float = _paper("Epochs (paper: 1).", default=1.0)
    lr_scheduler_type: str = _paper("Schedule (paper: warm-up then cosine).", default="cosine")
    warmup_steps: float = _paper(
        "Warm-up: steps, or a fraction of the run below 1 (paper: a warm-up, length not stated; 0.1 here).",
        default=0.1,
    )
    max_length: int | None = _paper(
        "Longest prompt + answer in tokens; longer pairs are dropped (counted as too_long), never truncated.",
        default=4096,
    )
    global_batch_size: int | None = _paper(
        "Preference pairs per optimizer step over all processes (paper: 512); sets gradient_accumulation_steps.",
        default=512,
    )
