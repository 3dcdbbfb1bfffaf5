"""Fixtures of the alignment tests: a tiny DeepSeek checkpoint (random weights + a DeepSeek tokenizer trained on a
slice of the shipped demo corpus and the shipped instruction data), saved as a recipe expects a starting model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

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
def align_checkpoint(tmp_path_factory, save_tiny_checkpoint) -> Path:
    """Width 64, 2 layers, a 1000-token tokenizer (so prompts of the shipped data fit in a few hundred tokens)."""
    with gzip.open(ASSETS / "demo" / "corpus_sample.jsonl.gz", "rt", encoding="utf-8") as src:
        lines = [line for index, line in enumerate(src) if index % 8 == 0]
    for name in ("sft_general.jsonl", "sft_dialogue_identity.jsonl"):
        lines += [json.dumps({"text": line}) + "\n" for line in open(ASSETS / "align_demo" / name, encoding="utf-8")]
    root = tmp_path_factory.mktemp("align_checkpoint")
    return save_tiny_checkpoint(root, lines, pad_with_eos=True, max_position_embeddings=1024)
