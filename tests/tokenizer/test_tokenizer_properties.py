"""Properties of both tokenizers (trained and rebuilt real): lossless round trip, and what a token may never span."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_hf.tokenizer import SPECIAL_TOKENS

# Characters worth mixing in on purpose: scripts the pre-tokenizer treats differently, emoji with ZWJ/variation
# selectors, controls and odd whitespace, digits of other scripts, and the 13 characters that are added tokens.
_INTERESTING = (
    "aZ éß Ωж  中文字 日本語かな 한국어 ١٢٣ ½ 42 \n\r\t\x00\x0b\x1b\u200b\u200d\ufeff\u3000 \U0001f680\U0001f636\u200d"
    "\U0001f32b\ufe0f \u0300 ,.!?;:()[]{}<>“”‘’。，、！？～" + "".join(SPECIAL_TOKENS[2:])
)
TEXT = st.text(
    st.one_of(st.sampled_from(_INTERESTING), st.characters(exclude_categories=("Cs",))), max_size=80
) | st.lists(st.sampled_from(["  ", "\n", " \n ", "\t\t", "   x", "2", "ab"]), max_size=12).map("".join)
PROPERTY_SETTINGS = settings(max_examples=120, deadline=None)


def is_number(ch: str) -> bool:
    """Rust's `char::is_numeric` (general category Nd, Nl, No), which the `Digits` pre-tokenizer splits on."""
    return unicodedata.category(ch) in {"Nd", "Nl", "No"}


_CJK = re.compile("[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]")
_LATIN = re.compile("[A-Za-z]")


@PROPERTY_SETTINGS
@given(text=TEXT)
def test_decode_encode_round_trip(any_tokenizer, text):
    ids = any_tokenizer(text, add_special_tokens=False).input_ids
    assert any_tokenizer.decode(ids) == text
    with_bos = any_tokenizer(text).input_ids
    assert with_bos == [any_tokenizer.bos_token_id, *ids]
    assert any_tokenizer.decode(with_bos) == any_tokenizer.bos_token + text


def test_special_token_text_is_special_unless_split(any_tokenizer):
    # transformers' default: the text "<｜end▁of▁sentence｜>" is the EOS token; `split_special_tokens=True` makes it text.
    text = f"a{any_tokenizer.eos_token}b"
    ids = any_tokenizer(text, add_special_tokens=False).input_ids
    assert any_tokenizer.eos_token_id in ids and any_tokenizer.decode(ids) == text
    assert any_tokenizer.decode(ids, skip_special_tokens=True) == "ab"
    as_text = any_tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids
    assert any_tokenizer.eos_token_id not in as_text and any_tokenizer.decode(as_text) == text


@PROPERTY_SETTINGS
@given(text=TEXT, surrogates=st.lists(st.integers(0xD800, 0xDFFF).map(chr), min_size=1, max_size=3))
def test_lone_surrogates_become_replacement_characters(any_tokenizer, text, surrogates):
    # A lone surrogate has no UTF-8 encoding, so no byte tokens: each is encoded as U+FFFD (documented), no crash.
    dirty = surrogates[0] + text + "".join(surrogates[1:])
    expected = "\ufffd" + text + "\ufffd" * (len(surrogates) - 1)
    assert any_tokenizer.decode(any_tokenizer(dirty, add_special_tokens=False).input_ids) == expected
    assert any_tokenizer([dirty, text]).input_ids[1] == any_tokenizer(text).input_ids  # batches too


@PROPERTY_SETTINGS
@given(text=TEXT)
def test_no_token_spans_a_newline_a_digit_or_cjk_and_latin(any_tokenizer, text):
    encoding = any_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for start, end in encoding["offset_mapping"]:
        span = text[start:end]  # a token that is part of a multi-byte character maps to that whole character
        if any(ch in "\r\n" for ch in span):
            assert span in ("\r", "\n"), span
        if any(is_number(ch) for ch in span):
            assert len(span) == 1, span
        assert not (_CJK.search(span) and _LATIN.search(span)), span


def test_digits_are_single_tokens(any_tokenizer):
    ids = any_tokenizer("1234567890 ٣٤ 2024年", add_special_tokens=False).input_ids
    digit_ids = any_tokenizer.convert_tokens_to_ids(list("1234567890"))
    assert ids[:10] == digit_ids
    assert any_tokenizer("33333", add_special_tokens=False).input_ids == [digit_ids[2]] * 5
