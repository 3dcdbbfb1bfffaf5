"""Vocabulary sizes: the padded model vocabulary (paper §2.1: 100015 tokens -> 102400 embedding rows)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepseek_hf.tokenizer import MIN_VOCAB_SIZE, NUM_SPECIAL_TOKENS, padded_vocab_size


def test_paper_vocabulary_pads_to_102400():
    assert NUM_SPECIAL_TOKENS == 15
    assert padded_vocab_size(100000 + NUM_SPECIAL_TOKENS) == 102400


def test_minimum_vocabulary_is_bytes_plus_control_tokens():
    assert MIN_VOCAB_SIZE + NUM_SPECIAL_TOKENS == 256 + 2  # 243 byte tokens + 13 added byte symbols + BOS + EOS


@given(st.integers(1, 300_000))
def test_padding_rounds_up_to_the_multiple(num_tokens):
    padded = padded_vocab_size(num_tokens)
    multiple = 4096 if num_tokens >= 32768 else 128
    assert padded % multiple == 0 and num_tokens <= padded < num_tokens + multiple
    assert padded_vocab_size(num_tokens, multiple_of=64) % 64 == 0


@pytest.mark.parametrize("bad", [0, -5])
def test_padding_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="positive"):
        padded_vocab_size(bad)
    with pytest.raises(ValueError, match="positive"):
        padded_vocab_size(10, multiple_of=bad)
