"""Fixtures for the evaluation tests: a tiny checkpoint (model + trained DeepSeek tokenizer) saved to disk, as
lm-eval's `--model_args pretrained=DIR` expects, and the benchmark data folder."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
from deepseek_hf.tokenizer import train_tokenizer

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models gain nothing from intra-op threads on a shared 2-core box (see tests/modeling/conftest.py)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random DeepSeek LLM (width 64, 2 layers, 8192 positions: no 5-shot context of the
    tiny tokenizer is truncated) with a 1000-token
    byte-level BPE trained on every 4th document of the shipped English + Chinese demo corpus."""
    root = tmp_path_factory.mktemp("tiny_checkpoint")
    corpus = root / "corpus.jsonl"
    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as src, open(corpus, "w", encoding="utf-8") as dst:
        dst.writelines(line for index, line in enumerate(src) if index % 4 == 0)
    tokenizer = train_tokenizer([corpus], vocab_size=1000, output_dir=root / "tokenizer", show_progress=False)
    torch.manual_seed(0)
    config = DeepseekLLMConfig(
        vocab_size=tokenizer.padded_vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,  # far from uniform predictions, so a wrong token or position changes the scores
    )
    path = root / "model"
    DeepseekLLMForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def eval_data(shared_data, monkeypatch_session) -> Path:
    """`../shared/data/` named by DEEPSEEK_HF_EVAL_DATA for the whole session (skips visibly without it)."""
    monkeypatch_session.setenv("DEEPSEEK_HF_EVAL_DATA", str(shared_data))
    return shared_data


@pytest.fixture(scope="session")
def monkeypatch_session():
    with pytest.MonkeyPatch.context() as patch:
        yield patch
