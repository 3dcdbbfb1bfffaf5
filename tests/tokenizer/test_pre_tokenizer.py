"""The DeepSeek pre-tokenizer: its patterns, and what it splits (paper §2.1)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import decoders

from deepseek_hf.tokenizer.pre_tokenizer import (
    _CASED_LETTER_RANGES,
    SPLIT_PATTERNS,
    UNUSED_BYTE_SYMBOLS,
    byte_alphabet,
    deepseek_decoder,
    deepseek_pre_tokenizer,
)


def is_number(ch: str) -> bool:
    """`Digits` splits on Rust's `char::is_numeric`: general category Nd, Nl or No. (Python's `str.isnumeric` is
    wider: it also holds for CJK numerals such as 一, which are letters, Lo.)"""
    return unicodedata.category(ch) in {"Nd", "Nl", "No"}


def pieces(text: str) -> list[str]:
    """Pre-tokenized pieces, decoded back from byte-level symbols to text."""
    byte_level = decoders.ByteLevel()
    return [byte_level.decode([piece]) for piece, _ in deepseek_pre_tokenizer().pre_tokenize_str(text)]


def test_letter_class_holds_only_cased_letters_including_nfc_singletons():
    # Oracle: Unicode general categories. The class is the L& runs; any character outside Lu/Ll/Lt means a range
    # endpoint was mangled (e.g. U+1F7D normalized to U+03CE turns "Ὗ-ώ" into an empty/inverted range).
    for start, end in _CASED_LETTER_RANGES:
        assert start <= end
        for code in range(start, end + 1):
            assert unicodedata.category(chr(code)) in {"Lu", "Ll", "Lt"}, f"U+{code:04X}"
    letters = SPLIT_PATTERNS[1]
    for singleton in ("\u1f7d", "\u1fbe", "\u2126", "\u212a"):  # ώ ι Ω K, canonical singletons in llama.cpp's class
        assert singleton in letters


def test_unused_byte_symbols_are_the_bytes_utf8_never_uses():
    # Oracle: UTF-8 itself. A byte appears in some valid UTF-8 text iff some code point's encoding contains it.
    used = set()
    for code in list(range(0xD800)) + list(range(0xE000, 0x110000, 7)) + [0x10FFFF]:
        used.update(chr(code).encode("utf-8"))
    unused = sorted(set(range(256)) - used)
    assert sorted(ord(symbol) for symbol in UNUSED_BYTE_SYMBOLS) == unused  # bytes >= 0xAE are their own symbol
    assert len(byte_alphabet()) == 256 - len(unused) == 243


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello world", ["Hello", " world"]),
        ("a\n\nb", ["a", "\n", "\n", "b"]),
        ("x\r\ny", ["x", "\r", "\n", "y"]),
        ("2024年", ["2", "0", "2", "4", "年"]),
        ("我想在apple工作", ["我想在", "apple", "工作"]),
        ("Hi, there!!", ["Hi", ",", " there", "!!"]),
        ("end  ", ["end", "  "]),
        ("한국어 text", ["한국어", " text"]),
        ("ied 4 ½", ["ied", " ", "4", " ", "½"]),
    ],
)
def test_splits(text, expected):
    assert pieces(text) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=60))
def test_pre_tokenizer_is_lossless_and_respects_categories(text):
    parts = pieces(text)
    assert "".join(parts) == text
    for part in parts:
        if any(ch in "\r\n" for ch in part):
            assert part in ("\r", "\n"), part  # no piece crosses a newline
        if any(is_number(ch) for ch in part):
            assert len(part) == 1, part  # numbers one character at a time


def test_decoder_maps_added_symbols_to_themselves():
    # The plain ByteLevel decoder turns the added token "ü" into the byte 0xFC -> U+FFFD; ours keeps "ü".
    assert decoders.ByteLevel().decode(["ü"]) == "\ufffd"
    assert deepseek_decoder().decode(["F", "ü", "h"]) == "Füh"
    assert deepseek_decoder().decode(["Ã¼"]) == "ü"  # the regular byte-level spelling still decodes
