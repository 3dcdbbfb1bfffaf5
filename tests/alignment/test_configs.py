"""Every alignment YAML parses strictly with its recipe's parser, and the paper's settings are the ones in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from trl import TrlParser

from deepseek_hf.alignment import (
    AlignDataArguments,
    AlignModelArguments,
    DeepseekDPOConfig,
    DeepseekSFTConfig,
)

pytestmark = pytest.mark.filterwarnings("ignore:`gradient_checkpointing.*` is deprecated:FutureWarning")

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SFT = (AlignDataArguments, DeepseekSFTConfig, AlignModelArguments)
DPO = (AlignDataArguments, DeepseekDPOConfig, AlignModelArguments)
# (file, epochs, LR, categories): paper section 4 (paper-facts.md section 5)
PAPER = {
    "deepseek-llm-7b/sft/stage1.yaml": (SFT, 4, 1e-5, None),
    "deepseek-llm-7b/sft/stage2.yaml": (SFT, None, None, ["dialogue"]),
    "deepseek-llm-67b/sft/config.yaml": (SFT, 2, 5e-6, None),
    "deepseek-llm-7b/dpo/config.yaml": (DPO, 1, 5e-6, None),
    "deepseek-llm-67b/dpo/config.yaml": (DPO, 1, 5e-6, None),
    "tiny/sft/stage1.yaml": (SFT, None, None, None),
    "tiny/sft/stage2.yaml": (SFT, None, None, ["dialogue"]),
    "tiny/dpo/config.yaml": (DPO, None, None, None),
}


def _parse(name, types):
    # bf16 needs a GPU to construct TrainingArguments: parse the paper's configs as on one, minus bf16
    flags = ["--bf16", "false"] if "deepseek-llm" in name else []
    return TrlParser(types).parse_args_and_config(["--config", str(RECIPES / name), *flags])


def test_every_alignment_yaml_is_listed():
    found = {str(p.relative_to(RECIPES)) for p in RECIPES.glob("*/*/*.yaml") if p.parent.name in ("sft", "dpo")}
    assert found == set(PAPER)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_config_parses_strictly_with_the_papers_values(name):
    types, epochs, lr, categories = PAPER[name]
    data, training, model = _parse(name, types)
    assert data.datasets and data.categories == categories
    assert model.model_name_or_path and model.use_peft is False
    if epochs is not None:
        assert (training.num_train_epochs, training.learning_rate) == (epochs, lr)
    if types is DPO and "deepseek-llm" in name:
        assert training.global_batch_size == 512 and training.lr_scheduler_type == "cosine"
        assert 0 < training.warmup_steps < 1
    if types is SFT:
        assert training.assistant_only_loss is True
    assert training.output_dir.startswith("outputs/")


def test_tiny_stages_chain_pretraining_to_dpo():
    stage1 = _parse("tiny/sft/stage1.yaml", SFT)
    stage2 = _parse("tiny/sft/stage2.yaml", SFT)
    dpo = _parse("tiny/dpo/config.yaml", DPO)
    assert stage1[2].model_name_or_path == "outputs/demo/pretrain"
    assert stage2[2].model_name_or_path == stage1[1].output_dir == "outputs/demo/sft-stage1"
    assert dpo[2].model_name_or_path == stage2[1].output_dir == "outputs/demo/sft-stage2"
    assert all(spec.path.startswith("package://align_demo/") for spec in stage1[0].datasets + dpo[0].datasets)
