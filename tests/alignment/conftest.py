"""Fixtures of the alignment tests: a tiny DeepSeek checkpoint (random weights + a DeepSeek tokenizer trained on a
slice of the shipped demo corpus and the shipped instruction data), saved as a recipe expects a starting model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
from deepseek_hf.tokenizer import train_tokenizer

ASSETS = Path(__file__).resolve().parents[2] / "deepseek_hf" / "assets"


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models gain nothing from intra-op threads on a shared 2-core box (see tests/modeling/conftest.py); module
    scope, so the module-scoped training runs of test_recipes.py get it too (threads spinning on a loaded box made
    them several times slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def align_checkpoint(tmp_path_factory) -> Path:
    """Width 64, 2 layers, a 1000-token tokenizer (so prompts of the shipped data fit in a few hundred tokens)."""
    root = tmp_path_factory.mktemp("align_checkpoint")
    corpus = root / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as dst:
        with gzip.open(ASSETS / "demo" / "corpus_sample.jsonl.gz", "rt", encoding="utf-8") as src:
            dst.writelines(line for index, line in enumerate(src) if index % 8 == 0)
        for name in ("sft_general.jsonl", "sft_dialogue_identity.jsonl"):
            for line in open(ASSETS / "align_demo" / name, encoding="utf-8"):
                dst.write(json.dumps({"text": line}) + "\n")
    tokenizer = train_tokenizer([corpus], vocab_size=1000, output_dir=root / "tokenizer", show_progress=False)
    torch.manual_seed(0)
    config = DeepseekLLMConfig(
        vocab_size=tokenizer.padded_vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    path = root / "model"
    DeepseekLLMForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
