"""Tokenizer fixtures: one tiny tokenizer trained in-process (nanochat style) and the real one rebuilt from GGUF.

Both are built once per session; the real one needs `../shared/data/tokenizer/` and skips visibly without it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from deepseek_hf.tokenizer import (
    SPECIAL_TOKENS,
    DeepseekLLMTokenizer,
    read_gguf_vocab,
    save_tokenizer,
    tokenizer_from_gguf,
    train_tokenizer,
)
from deepseek_hf.tokenizer.from_gguf import GGUFVocab
from deepseek_hf.tokenizer.pre_tokenizer import byte_alphabet

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"
GGUF_RELATIVE = Path("tokenizer") / "deepseek-llm" / "ggml-vocab-deepseek-llm.gguf"
TRAINED_VOCAB_SIZE = 1000


@pytest.fixture(scope="session")
def corpus_slice(tmp_path_factory) -> Path:
    """Every 6th document of the shipped demo corpus (575 docs, English + Chinese) as a plain .jsonl file."""
    path = tmp_path_factory.mktemp("corpus") / "slice.jsonl"
    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for index, line in enumerate(src):
            if index % 6 == 0:
                dst.write(line)
    return path


@pytest.fixture(scope="session")
def trained_vocab_size() -> int:
    return TRAINED_VOCAB_SIZE


@pytest.fixture(scope="session")
def trained_tokenizer_dir(corpus_slice, trained_vocab_size, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "tok"
    train_tokenizer([corpus_slice], vocab_size=trained_vocab_size, output_dir=out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def trained_tokenizer(trained_tokenizer_dir) -> DeepseekLLMTokenizer:
    return DeepseekLLMTokenizer.from_pretrained(trained_tokenizer_dir)


@pytest.fixture(scope="session")
def gguf_path(shared_data) -> Path:
    path = shared_data / GGUF_RELATIVE
    if not path.is_file():
        pytest.skip(f"real DeepSeek vocabulary not present: {path}")
    return path


@pytest.fixture(scope="session")
def gguf_vocab(gguf_path) -> GGUFVocab:
    """The GGUF's tokenizer keys, read once (llama.cpp's reader takes ~10 s on this file)."""
    return read_gguf_vocab(gguf_path)


@pytest.fixture(scope="session")
def real_tokenizer_dir(gguf_vocab, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real") / "deepseek-llm"
    save_tokenizer(tokenizer_from_gguf(gguf_vocab), out)
    return out


@pytest.fixture(scope="session")
def real_tokenizer(real_tokenizer_dir) -> DeepseekLLMTokenizer:
    """Rebuilt, saved and loaded back: every test on it also checks the save/load round trip."""
    return DeepseekLLMTokenizer.from_pretrained(real_tokenizer_dir)


@pytest.fixture
def mini_gguf(tmp_path):
    """Factory: `mini_gguf(name, pre=..., specials=...)` writes a small DeepSeek-layout GGUF under tmp_path."""
    return lambda name, **kwargs: _write_mini_gguf(tmp_path / name, **kwargs)


def _write_mini_gguf(path: Path, *, pre: str = "deepseek-llm", specials: tuple[str, ...] = SPECIAL_TOKENS) -> Path:
    """A vocab-only GGUF with the DeepSeek layout but 243 + 3 regular tokens (for fast converter / CLI tests)."""
    import gguf

    merges = ["Ġ t", "h e", "Ġt he"]
    regular = byte_alphabet() + ["Ġt", "he", "Ġthe"]
    tokens = regular + list(specials) + ["[PAD261]", "[PAD262]"]
    types = [1] * len(regular) + [3, 3] + [4] * 13 + [4, 4]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(4096)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(len(regular))
    writer.add_eos_token_id(len(regular) + 1)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session", params=["trained", "real"])
def any_tokenizer(request) -> DeepseekLLMTokenizer:
    """Each property test runs on both the trained and the rebuilt real tokenizer."""
    return request.getfixturevalue(f"{request.param}_tokenizer")
