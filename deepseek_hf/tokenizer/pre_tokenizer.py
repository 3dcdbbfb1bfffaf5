"""The DeepSeek LLM pre-tokenizer and decoder, defined once for training and for the rebuilt real tokenizer.

Paper §2.1: byte-level BPE whose pre-tokenizer keeps "new lines, punctuation, and CJK symbols" from merging with
other text (as in GPT-2) and splits numbers into single digits (as in LLaMA). The five split patterns are those of
llama.cpp's `LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM` (`src/llama-vocab.cpp`), which llama.cpp copied from the official
`tokenizer.json`; this module reproduces all 46 reference encodings of the real tokenizer with them.

Pipeline (HF `tokenizers`):

    Split(Isolated) x 5  ->  Digits(individual_digits=True)  ->  ByteLevel(add_prefix_space=False, use_regex=False)

>>> from deepseek_hf.tokenizer.pre_tokenizer import deepseek_pre_tokenizer
>>> [piece for piece, _ in deepseek_pre_tokenizer().pre_tokenize_str("Hi 2024年!")]
['Hi', 'Ġ', '2', '0', '2', '4', 'å¹´', '!']
"""

from __future__ import annotations

from tokenizers import Regex, decoders, pre_tokenizers

# Cased letters (the Unicode "L&" runs of Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee, Glagolitic, Coptic,
# fullwidth Latin, Deseret, Osage, Old Hungarian, Warang Citi, Adlam ...) as code point ranges. Written as numbers
# on purpose: several members (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are canonical singletons that any
# NFC-normalizing editor or copy-paste silently turns into other code points (U+03CE, U+03B9, ..., "K").
_CASED_LETTER_RANGES: tuple[tuple[int, int], ...] = (
    (0x0041, 0x005A), (0x0061, 0x007A), (0x00B5, 0x00B5), (0x00C0, 0x00D6), (0x00D8, 0x00F6), (0x00F8, 0x01BA),
    (0x01BC, 0x01BF), (0x01C4, 0x0293), (0x0295, 0x02AF), (0x0370, 0x0373), (0x0376, 0x0377), (0x037B, 0x037D),
    (0x037F, 0x037F), (0x0386, 0x0386), (0x0388, 0x038A), (0x038C, 0x038C), (0x038E, 0x03A1), (0x03A3, 0x03F5),
    (0x03F7, 0x0481), (0x048A, 0x052F), (0x0531, 0x0556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD),
    (0x1C90, 0x1CBA), (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59), (0x1F5B, 0x1F5B),
    (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4),
    (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC),
    (0x2102, 0x2102), (0x2107, 0x2107), (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124),
    (0x2126, 0x2126), (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F),
    (0x2145, 0x2149), (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4), (0x2CEB, 0x2CEE),
    (0x2CF2, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E),
    (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F),
    (0x104B0, 0x104D3), (0x104D8, 0x104FB), (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF),
    (0x1E900, 0x1E943),
)  # fmt: skip
_CASED_LETTERS = "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in _CASED_LETTER_RANGES)

#: The five regexes, applied in order, each isolating its matches (llama.cpp `LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM`).
SPLIT_PATTERNS: tuple[str, ...] = (
    # every newline character is its own piece
    r"[\r\n]",
    # letter runs, with one optional leading whitespace
    r"\s?[" + _CASED_LETTERS + r"]+",
    # ASCII punctuation/symbol runs, fullwidth ！-／ ：-～, quotes ‘-‟, ideographic space 、。
    r"\s?[!-/:-~" + "\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002" + "]+",
    # trailing whitespace of a piece
    r"\s+$",
    # CJK ideographs 一-龥, everything from U+0800 up to 一 (kana, Indic, Thai, CJK symbols ...), Hangul
    "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
)

#: The 13 byte-level symbols of the bytes that never occur in valid UTF-8 (C0, C1, F5-FF; bytes >= 0xAE are their
#: own symbol, so "\xfc" is "ü"). The real vocabulary has no regular token for them (256 - 13 = 243 byte tokens +
#: 99757 merges = 100000 regular tokens); they were appended as single-character *added* tokens at ids
#: 100002-100014, in this order.
UNUSED_BYTE_SYMBOLS: tuple[str, ...] = tuple(
    chr(byte) for byte in (0xF8, 0xF6, 0xFA, 0xFF, 0xF5, 0xF7, 0xFB, 0xFD, 0xC0, 0xF9, 0xC1, 0xFE, 0xFC)
)


def byte_alphabet() -> list[str]:
    """The 243 byte-level symbols BPE training starts from (sorted by code point, as the real vocabulary is)."""
    return sorted(set(pre_tokenizers.ByteLevel.alphabet()) - set(UNUSED_BYTE_SYMBOLS))


def deepseek_pre_tokenizer() -> pre_tokenizers.Sequence:
    """Split(Isolated) x 5 -> Digits(individual_digits=True) -> ByteLevel(add_prefix_space=False, use_regex=False)."""
    splits = [pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False) for pattern in SPLIT_PATTERNS]
    return pre_tokenizers.Sequence(
        [
            *splits,
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )


def deepseek_decoder() -> decoders.Sequence:
    """ByteLevel decoding that also decodes the 13 added single-character tokens to themselves.

    The added tokens are matched on raw text, so "ü" encodes to the added token "ü", not to its UTF-8 bytes.
    A plain ByteLevel decoder reads that "ü" as the byte-level symbol of byte 0xFC and yields U+FFFD ("F�hrer").
    None of the 13 symbols occurs in any regular token, so rewriting each to the byte-level spelling of its UTF-8
    bytes before ByteLevel decoding is exact: encodings are unchanged and `decode(encode(s)) == s` holds.
    """
    byte_encoder = _bytes_to_unicode()
    to_byte_level = [
        decoders.Replace(symbol, "".join(byte_encoder[b] for b in symbol.encode("utf-8")))
        for symbol in UNUSED_BYTE_SYMBOLS
    ]
    return decoders.Sequence([*to_byte_level, decoders.ByteLevel()])


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the one `ByteLevel` uses)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, shift = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shift)
            shift += 1
    return table
