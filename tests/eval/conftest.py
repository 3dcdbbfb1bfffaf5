"""Fixtures for the evaluation tests: a tiny checkpoint (model + trained DeepSeek tokenizer) saved to disk, as
lm-eval's `--model_args pretrained=DIR` expects, and the benchmark data folder."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models gain nothing from intra-op threads on a shared 2-core box (see tests/modeling/conftest.py)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, save_tiny_checkpoint) -> Path:
    """A random DeepSeek LLM (width 64, 2 layers, 8192 positions: no 5-shot context of the
    tiny tokenizer is truncated) with a 1000-token
    byte-level BPE trained on every 4th document of the shipped English + Chinese demo corpus."""
    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as src:
        lines = [line for index, line in enumerate(src) if index % 4 == 0]
    return save_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny_checkpoint"),
        lines,
        max_position_embeddings=8192,
        initializer_range=0.2,  # far from uniform predictions, so a wrong token or position changes the scores
    )


@pytest.fixture(scope="session")
def eval_data(shared_data, monkeypatch_session) -> Path:
    """`../shared/data/` named by DEEPSEEK_HF_EVAL_DATA for the whole session (skips visibly without it)."""
    monkeypatch_session.setenv("DEEPSEEK_HF_EVAL_DATA", str(shared_data))
    return shared_data


@pytest.fixture(scope="session")
def monkeypatch_session():
    with pytest.MonkeyPatch.context() as patch:
        yield patch
