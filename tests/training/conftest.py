"""Fixtures for the pretraining tests: a tokenizer trained in-process on a slice of the shipped demo corpus.

Tokenizers and corpora are built once per session in temporary folders (nothing touches `outputs/`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = REPO_ROOT / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"
PRETRAIN_RECIPE = REPO_ROOT / "recipes" / "pretrain.py"


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def write_jsonl():
    """`write_jsonl(path, records)` -> path: records as JSON Lines (gzipped when the name ends in .gz)."""
    return _write_jsonl


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train faster on one thread, and 2 threads per process thrash when tests share the 2 cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_texts() -> list[str]:
    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


@pytest.fixture(scope="session")
def corpus_slice(tmp_path_factory, demo_texts) -> Path:
    """Every 8th document of the demo corpus (English + Chinese), ~430 documents, as JSONL."""
    path = tmp_path_factory.mktemp("corpus") / "slice.jsonl"
    return _write_jsonl(path, [{"text": text} for text in demo_texts[::8]])


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, corpus_slice) -> Path:
    """OUR tokenizer (deepseek_hf.tokenizer.train_tokenizer): 500 regular + 15 special tokens, BOS added."""
    from deepseek_hf.tokenizer import train_tokenizer

    path = tmp_path_factory.mktemp("tokenizer") / "tok"
    train_tokenizer([str(corpus_slice)], vocab_size=500, output_dir=path, show_progress=False)
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from deepseek_hf.training import load_tokenizer

    return load_tokenizer(str(tokenizer_dir))
