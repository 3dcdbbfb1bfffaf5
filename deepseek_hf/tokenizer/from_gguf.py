"""Rebuild the real DeepSeek LLM tokenizer from llama.cpp's vocab-only GGUF (`ggml-vocab-deepseek-llm.gguf`).

The GGUF holds the 102400 token strings (100000 regular, the 15 special/added tokens, 2385 `[PADn]` placeholders),
the token types, the 99757 merges and the BOS/EOS flags, but not the pre-tokenizer (only its name,
`tokenizer.ggml.pre = deepseek-llm`). The converter adds our pre-tokenizer (`pre_tokenizer.py`) and checks the file
against the layout it assumes, so a different vocabulary fails loudly instead of converting to something wrong.

    deepseek-hf tokenizer from-gguf ggml-vocab-deepseek-llm.gguf out/deepseek-llm-tokenizer

>>> from deepseek_hf.tokenizer import tokenizer_from_gguf
>>> tok = tokenizer_from_gguf("ggml-vocab-deepseek-llm.gguf")  # doctest: +SKIP
>>> tok("Führer", add_special_tokens=False).input_ids  # doctest: +SKIP
[37, 100014, 71, 6245]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .special_tokens import ADDED_TOKENS, BOS_TOKEN, CONTROL_TOKENS, EOS_TOKEN, NUM_SPECIAL_TOKENS
from .tokenization_deepseek_llm import DeepseekLLMTokenizer, build_tokenizer

# llama.cpp `llama_token_type`
TOKEN_TYPE_NORMAL, TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED = 1, 3, 4
EXPECTED_MODEL, EXPECTED_PRE = "gpt2", "deepseek-llm"


@dataclass(frozen=True)
class GGUFVocab:
    """The tokenizer part of a GGUF file, as plain Python values."""

    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_token_id: int | None
    eos_token_id: int | None
    add_bos_token: bool | None
    add_eos_token: bool | None
    model: str
    pre: str | None
    context_length: int | None
    path: str = "<gguf>"  # for error messages


def read_gguf_vocab(path: str | os.PathLike) -> GGUFVocab:
    """Read the `tokenizer.ggml.*` keys of a GGUF file with llama.cpp's `gguf` package."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as error:  # the reader raises ValueError / struct errors / OSError on foreign files
        raise ValueError(f"{path} is not a readable GGUF file: {error}") from error

    def value(key: str, default=None):
        field = reader.fields.get(key)
        return default if field is None else field.contents()

    if value("tokenizer.ggml.tokens") is None:
        raise ValueError(f"{path} has no tokenizer vocabulary (key tokenizer.ggml.tokens)")
    arch = value("general.architecture")
    return GGUFVocab(
        tokens=value("tokenizer.ggml.tokens"),
        token_types=value("tokenizer.ggml.token_type", []),
        merges=value("tokenizer.ggml.merges", []),
        bos_token_id=value("tokenizer.ggml.bos_token_id"),
        eos_token_id=value("tokenizer.ggml.eos_token_id"),
        add_bos_token=value("tokenizer.ggml.add_bos_token"),
        add_eos_token=value("tokenizer.ggml.add_eos_token"),
        model=value("tokenizer.ggml.model"),
        pre=value("tokenizer.ggml.pre"),
        context_length=value(f"{arch}.context_length") if arch else None,
        path=str(path),
    )


def tokenizer_from_gguf(source: str | os.PathLike | GGUFVocab) -> DeepseekLLMTokenizer:
    """The DeepSeek LLM tokenizer rebuilt from a llama.cpp vocab GGUF (a path, or what `read_gguf_vocab` returned).

    The file is checked against the layout the rebuild assumes (gpt2 model, deepseek-llm pre-tokenizer, the 15
    special/added tokens right after the regular ones, BOS/EOS ids and flags); anything else is a `ValueError`.
    """
    vocab = source if isinstance(source, GGUFVocab) else read_gguf_vocab(source)
    path = vocab.path
    num_regular = _check_layout(vocab)
    merges = []
    for line_no, merge in enumerate(vocab.merges):
        parts = merge.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path}: merge #{line_no} {merge!r} is not two space-separated tokens")
        merges.append((parts[0], parts[1]))
    regular = {token: index for index, token in enumerate(vocab.tokens[:num_regular])}
    if len(regular) != num_regular:
        raise ValueError(f"{path}: the regular vocabulary has duplicate tokens")
    return build_tokenizer(
        regular,
        merges,
        model_vocab_size=len(vocab.tokens),  # 102400: the padding placeholders are the model's spare rows
        model_max_length=vocab.context_length or 4096,
    )


def _check_layout(vocab: GGUFVocab) -> int:
    """Number of regular tokens, after checking every assumption the rebuild makes."""
    path = vocab.path
    if vocab.model != EXPECTED_MODEL or vocab.pre != EXPECTED_PRE:
        raise ValueError(
            f"{path}: tokenizer.ggml.model={vocab.model!r}, tokenizer.ggml.pre={vocab.pre!r}; this converter rebuilds "
            f"the byte-level BPE of DeepSeek LLM ({EXPECTED_MODEL!r} / {EXPECTED_PRE!r}) only"
        )
    if len(vocab.token_types) != len(vocab.tokens):
        raise ValueError(f"{path}: {len(vocab.token_types)} token types for {len(vocab.tokens)} tokens")
    num_regular = next((i for i, kind in enumerate(vocab.token_types) if kind != TOKEN_TYPE_NORMAL), len(vocab.tokens))
    if any(kind == TOKEN_TYPE_NORMAL for kind in vocab.token_types[num_regular:]):
        raise ValueError(f"{path}: normal tokens after the first special one (id {num_regular})")
    specials = vocab.tokens[num_regular : num_regular + NUM_SPECIAL_TOKENS]
    expected_types = [TOKEN_TYPE_CONTROL] * len(CONTROL_TOKENS) + [TOKEN_TYPE_USER_DEFINED] * len(ADDED_TOKENS)
    if tuple(specials) != CONTROL_TOKENS + ADDED_TOKENS or (
        vocab.token_types[num_regular : num_regular + NUM_SPECIAL_TOKENS] != expected_types
    ):
        raise ValueError(
            f"{path}: tokens {num_regular}..{num_regular + NUM_SPECIAL_TOKENS - 1} are {specials}, expected "
            f"{list(CONTROL_TOKENS + ADDED_TOKENS)} (types 3,3,4x13)"
        )
    if (vocab.bos_token_id, vocab.eos_token_id) != (num_regular, num_regular + 1):
        raise ValueError(
            f"{path}: bos/eos ids are {vocab.bos_token_id}/{vocab.eos_token_id}, expected {num_regular} "
            f"({BOS_TOKEN}) / {num_regular + 1} ({EOS_TOKEN})"
        )
    if vocab.add_bos_token is False or vocab.add_eos_token:
        raise ValueError(
            f"{path}: add_bos_token={vocab.add_bos_token}, add_eos_token={vocab.add_eos_token}; "
            "DeepSeek LLM adds BOS and no EOS"
        )
    padding = vocab.tokens[num_regular + NUM_SPECIAL_TOKENS :]
    bad_padding = [token for token in padding if not (token.startswith("[PAD") and token.endswith("]"))]
    if bad_padding:
        raise ValueError(f"{path}: unexpected tokens after the special ones: {bad_padding[:5]}")
    return num_regular
