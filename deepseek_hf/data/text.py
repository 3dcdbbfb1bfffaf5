"""CJK-aware text units shared by the quality filters, the MinHash shingles and the line-level dedup.

Chinese and Japanese put no spaces between words, so whitespace splitting sees a whole Chinese paragraph as one
"word", and datatrove's own word tokenizers need spaCy/NLTK models that are not installed offline. Here:

* every Han / Hiragana / Katakana character is one unit (a Chinese "word" is 1-2 characters, so per-character
  counts sit close to Gopher-style word counts and need no segmenter);
* a run of other word characters (Latin, Cyrillic, digits, with inner apostrophes) is one unit;
* any other non-space character (punctuation, symbols) is a unit of its own.

`CJKWordTokenizer` implements datatrove's `WordTokenizer`, so it can be passed as `language=` to datatrove steps
(`MinhashDedupSignature`, `GopherRepetitionFilter`, ...), which accept a tokenizer instance in place of a code.

>>> CJKWordTokenizer().word_tokenize("秦川雄帝宅，It's 2 cats.")
['秦', '川', '雄', '帝', '宅', '，', "It's", '2', 'cats', '.']
"""

from __future__ import annotations

import regex
import xxhash
from datatrove.utils.text import TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import WordTokenizer

# Scripts written without spaces between words: one character = one unit.
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
CJK_CHAR = regex.compile(rf"[{_CJK}]")
WORD_UNIT = regex.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*|[^\s]")
# Sentence ends: CJK full stops need no following space; ASCII ones do (so "3.14" and "e.g." stay whole).
_SENTENCE_END = regex.compile(r"(?<=[。！？；…])|(?<=[.!?;])(?=\s)|\n+")

DEFAULT_NORM = TextNormConfig()


class CJKWordTokenizer(WordTokenizer):
    """Splits text into the units above (see module docstring); language-independent, needs no model."""

    def __init__(self):
        super().__init__("cjk_aware")

    def word_tokenize(self, text: str) -> list[str]:
        return WORD_UNIT.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text[a:b].strip() for a, b in self.span_tokenize(text) if text[a:b].strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for match in _SENTENCE_END.finditer(text):
            if match.start() > start:
                spans.append((start, match.start()))
            start = max(start, match.end())
        if start < len(text):
            spans.append((start, len(text)))
        return spans

    def __reduce__(self):  # stateless: pickles by class (datatrove executors pickle every step)
        return (CJKWordTokenizer, ())


def count_cjk(text: str) -> int:
    return len(CJK_CHAR.findall(text))


def normalize(text: str, config: TextNormConfig = DEFAULT_NORM) -> str:
    """datatrove's `simplify_text`: lower case, digits -> 0, punctuation (CJK included) -> space, squeezed spaces."""
    return simplify_text(text, config)


def hash64(text: str, salt: str = "") -> int:
    """Stable 64-bit hash (xxh64) of `salt` + text; the salt scopes hashes, e.g. to one dump."""
    return xxhash.xxh64_intdigest(f"{salt}\x00{text}" if salt else text)
