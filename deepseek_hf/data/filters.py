"""Filters: input validation, offline language ID and CJK-aware quality heuristics, as datatrove `BaseFilter`s.

Every filter returns `(False, reason)` for a dropped document; the pipeline gives each one an `exclusion_writer`,
so `excluded/<step>/` holds every removed document with `metadata["filter_reason"]` for audit.

Where datatrove's filter is CJK-safe it is used as is, configured (`c4`, `fineweb`); where it counts words by
whitespace or English stop words it is subclassed with CJK-aware units (`repetition`, `quality`); see the
measurements in `deepseek_hf/data/README.md`.

>>> from datatrove.data import Document
>>> QualityFilter(min_doc_words=5).filter(Document(text="短", id="0"))
(False, 'gopher_short_doc')
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.text import PUNCTUATION_SET

from deepseek_hf.data.errors import AUDIT_CHARS, INPUT_ERROR, ConfigError, ConfigTypeError
from deepseek_hf.data.text import CJK_CHAR, CJKWordTokenizer, count_cjk


class InputValidator(BaseFilter):
    """Drops unusable input: reader errors (malformed JSON, invalid UTF-8, missing text, ...), empty or
    whitespace-only text, and documents longer than `max_chars` (whose audit copy is cut to 10k characters)."""

    name = "🛂 Input validation"

    def __init__(self, max_chars: int = 1_000_000, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self.max_chars = max_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if reason := doc.metadata.pop(INPUT_ERROR, None):
            return False, reason
        if not doc.text.strip():
            return False, "empty"
        if len(doc.text) > self.max_chars:
            doc.metadata["original_chars"] = len(doc.text)
            doc.text = doc.text[:AUDIT_CHARS]
            return False, "too_long"
        return True


class LanguageIDFilter(BaseFilter):
    """Offline language identification with py3langid (its model ships inside the wheel; no download).

    Mirrors datatrove's `LanguageFilter` (same `languages` / `language_threshold` semantics and the same
    `language` / `language_score` metadata), whose fastText models must be downloaded. Chinese dialect labels of the
    model (`wuu`, `yue`) are folded into `zh`: on the project's 21,773-document EN/ZH corpus this gives 100% accuracy
    (without folding 2.5% of Classical Chinese came out as `wuu`). Only the first `max_chars` characters are read
    (the model walks the UTF-8 bytes in Python): 1,000 keeps 100% there, 500 misses one document.
    """

    name = "🌍 Language ID (py3langid)"
    _requires_dependencies = ["py3langid"]
    ALIASES = {"wuu": "zh", "yue": "zh"}

    def __init__(
        self,
        languages: list[str] | str | None = ("en", "zh"),
        language_threshold: float = 0.5,
        max_chars: int = 1_000,
        label_only: bool = False,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__(exclusion_writer)
        self.languages = [languages] if isinstance(languages, str) else list(languages) if languages else None
        self.language_threshold = language_threshold
        self.max_chars = max_chars
        self.label_only = label_only
        self._identifier = None

    @property
    def identifier(self):
        if self._identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return self._identifier

    def predict(self, text: str) -> tuple[str, float]:
        scores: dict[str, float] = {}
        for lang, score in self.identifier.rank(text[: self.max_chars]):
            lang = self.ALIASES.get(lang, lang)
            scores[lang] = scores.get(lang, 0.0) + score
        return max(scores.items(), key=lambda item: item[1])

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lang, score = self.predict(doc.text)
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = round(score, 4)
        if self.label_only:
            return True
        if self.languages and lang not in self.languages:
            return False, "language_not_kept"
        if score < self.language_threshold:
            return False, "language_low_score"
        return True

    def __getstate__(self):  # the model is loaded lazily in each worker, never pickled
        return {**self.__dict__, "_identifier": None}


def _split_units(text: str, tokenizer) -> tuple[list[str], bool]:
    """Non-punctuation units of `text`, and whether most of them are CJK characters."""
    words = [unit for unit in tokenizer.word_tokenize(text) if unit not in PUNCTUATION_SET]
    return words, bool(words) and count_cjk(text) * 2 >= len(words)


class _NGramHashes:
    """64-bit polynomial hashes of all windows of `size` unit ids, grown incrementally (collisions ~2^-64)."""

    def __init__(self, ids: np.ndarray):
        self.ids, self.size, self.hashes = ids, 0, np.zeros(len(ids), dtype=np.uint64)

    def get(self, size: int) -> np.ndarray:
        while self.size < size and len(self.hashes):
            count = len(self.ids) - self.size
            self.hashes = self.hashes[:count] * np.uint64(0x9E3779B97F4A7C15) + self.ids[self.size :] + np.uint64(1)
            self.size += 1
        return self.hashes if self.size == size else np.zeros(0, dtype=np.uint64)


def _first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each distinct value."""
    if len(hashes) < 512:  # small arrays: a dict beats numpy's sort-based unique
        first: dict[int, int] = {}
        for i, h in enumerate(hashes.tolist()):
            first.setdefault(h, i)
        return np.fromiter(first.values(), np.int64, len(first))
    return np.unique(hashes, return_index=True)[1]


def _greedy_repeated_chars(hashes: np.ndarray, size: int, ends: np.ndarray) -> int:
    """datatrove's `find_all_duplicate`: scan, count the characters of an n-gram seen before and skip past it."""
    seen, repeated, i, values = set(), 0, 0, hashes.tolist()
    while i < len(values):
        if values[i] in seen:
            repeated += int(ends[i + size] - ends[i])
            i += size
        else:
            seen.add(values[i])
            i += 1
    return repeated


class RepetitionFilter(GopherRepetitionFilter):
    """Gopher repetition rules (datatrove's thresholds), made safe for Chinese.

    Line and paragraph duplication are computed exactly as in datatrove. For the n-gram rules on a mostly-CJK
    document, n-grams are of characters, joined without spaces, with n scaled by `cjk_ngram_scale` (a Chinese word
    is 1-2 characters): on the demo corpus, per-character n (scale 1) dropped 6 of 138 Chinese Wikipedia articles
    for their repeated multi-character names; scale 2 dropped none. A "top n-gram" must occur at least twice:
    datatrove counts a single occurrence, which drops every short poem.
    """

    name = "👯 Repetition (CJK-aware)"

    def __init__(self, *args, cjk_ngram_scale: int = 2, exclusion_writer: DiskWriter | None = None, **kwargs):
        kwargs.setdefault("language", CJKWordTokenizer())
        super().__init__(*args, exclusion_writer=exclusion_writer, **kwargs)
        self.cjk_ngram_scale = cjk_ngram_scale

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"
        paragraphs = self.paragraph_exp.split(text.strip())
        dup_paragraphs, dup_chars = find_duplicates(paragraphs)
        if self.dup_para_frac and dup_paragraphs / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and dup_chars / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = self._line_splitter.split(text)
        dup_lines, dup_chars = find_duplicates(lines)
        if self.dup_line_frac and dup_lines / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and dup_chars / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"

        words, cjk = _split_units(text, self.language)
        if not words:
            return True
        scale, space = (self.cjk_ngram_scale, 0) if cjk else (1, 1)
        vocabulary: dict[str, int] = {}
        ids = np.fromiter((vocabulary.setdefault(w, len(vocabulary)) for w in words), np.uint64, len(words))
        ends = np.concatenate([[0], np.cumsum([len(w) for w in words])])
        grams = _NGramHashes(ids)
        # a repeat of a size-s n-gram implies a repeat at every smaller size: scan sizes upward, stop at none
        for n, frac in sorted(self.top_n_grams):
            size = n * scale
            hashes = grams.get(size)
            if len(_first_occurrences(hashes)) == len(hashes):
                break  # no n-gram of this size (or larger) occurs twice
            values, counts = np.unique(hashes, return_counts=True)
            count = int(counts.max())
            best = int(np.flatnonzero(np.isin(hashes, values[counts == count]))[0])  # first seen on ties (Counter)
            length = int(ends[best + size] - ends[best]) + space * (size - 1)  # datatrove joins words with spaces
            if length * count / len(text) > frac:
                return False, f"top_{n}_gram"
        for n, frac in sorted(self.dup_n_grams):
            size = n * scale
            hashes = grams.get(size)
            first = _first_occurrences(hashes)
            if len(first) == len(hashes):
                break
            # characters covered by repeated occurrences bound the greedy count from above: skip the exact scan
            # when even that bound is under the threshold
            covered = np.zeros(len(words) + 1, dtype=np.int64)
            starts = np.setdiff1d(np.arange(len(hashes)), first)
            np.add.at(covered, starts, 1)
            np.add.at(covered, starts + size, -1)
            bound = int(np.diff(ends)[np.cumsum(covered)[:-1] > 0].sum())
            if bound / len(text) > frac and _greedy_repeated_chars(hashes, size, ends) / len(text) > frac:
                return False, f"duplicated_{n}_n_grams"
        return True


# Very frequent Chinese function characters (modern and classical); the CJK analogue of Gopher's stop words.
CJK_STOP_CHARS = tuple("的了是在不有和人这我之也而其以为于一")


class QualityFilter(GopherQualityFilter):
    """Gopher quality rules (datatrove's thresholds and reasons) with CJK-aware units.

    * words = units of `CJKWordTokenizer` without punctuation: one CJK character counts as one word;
    * mean word length is checked on the non-CJK words of documents that are mostly non-CJK;
    * stop words: English ones on mostly non-CJK documents; on mostly-CJK documents at least
      `min_cjk_stop_chars` of `CJK_STOP_CHARS` (off by default: classical poetry often has none);
    * the alphabetic-word ratio ignores punctuation units (Gopher's words carry their punctuation);
    * the ellipsis rules also count the Chinese ellipsis `……`.
    """

    name = "🥇 Quality (CJK-aware Gopher)"

    def __init__(
        self,
        *args,
        min_cjk_stop_chars: int = 0,
        cjk_stop_chars: tuple[str, ...] = CJK_STOP_CHARS,
        exclusion_writer: DiskWriter | None = None,
        **kwargs,
    ):
        kwargs.setdefault("language", CJKWordTokenizer())
        super().__init__(*args, exclusion_writer=exclusion_writer, **kwargs)
        self.min_cjk_stop_chars = min_cjk_stop_chars
        self.cjk_stop_chars = set(cjk_stop_chars)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words, cjk = _split_units(text, self.language)
        n_words = len(words)
        if n_words == 0 or (self.min_doc_words and n_words < self.min_doc_words):
            return False, "gopher_short_doc"
        if self.max_doc_words and n_words > self.max_doc_words:
            return False, "gopher_long_doc"
        if not cjk:
            latin = [w for w in words if not CJK_CHAR.fullmatch(w)]
            mean_length = np.mean([len(w) for w in latin]) if latin else 0.0
            if self.min_avg_word_length and mean_length < self.min_avg_word_length:
                return False, "gopher_below_avg_threshold"
            if self.max_avg_word_length and mean_length > self.max_avg_word_length:
                return False, "gopher_above_avg_threshold"
        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        ellipses = text.count("...") + text.count("…") - text.count("……")
        if self.max_symbol_word_ratio and ellipses / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"
        lines = [line for line in text.splitlines() if line.strip()] or [text]
        bullets = sum(line.lstrip().startswith(("•", "-", "·")) for line in lines)
        if self.max_bullet_lines_ratio and bullets / len(lines) > self.max_bullet_lines_ratio:
            return False, "gopher_too_many_bullets"
        ending = sum(line.rstrip().endswith(("...", "…")) for line in lines)
        if self.max_ellipsis_lines_ratio and ending / len(lines) > self.max_ellipsis_lines_ratio:
            return False, "gopher_too_many_end_ellipsis"
        alpha = sum(any(ch.isalpha() for ch in w) for w in words)
        if self.max_non_alpha_words_ratio and alpha / n_words < self.max_non_alpha_words_ratio:
            return False, "gopher_below_alpha_threshold"
        if cjk:
            if self.min_cjk_stop_chars and len(self.cjk_stop_chars.intersection(words)) < self.min_cjk_stop_chars:
                return False, "cjk_not_enough_stop_chars"
        elif self.min_stop_words:
            lowered = {w.lower() for w in words}
            if len(self.stop_words.intersection(lowered)) < self.min_stop_words:
                return False, "gopher_enough_stop_words"
        return True


def c4_filter(exclusion_writer: DiskWriter | None = None, **kwargs) -> C4QualityFilter:
    """datatrove's C4 filter with its English-only line rules off (terminal ASCII punctuation, sentence and
    per-line word counts): keeps lorem-ipsum / curly-bracket document drops and javascript / policy / citation
    line removal, which are language-independent."""
    defaults = {
        "filter_no_terminal_punct": False,
        "min_num_sentences": -1,
        "min_words_per_line": -1,
        "language": CJKWordTokenizer(),
    }
    return C4QualityFilter(exclusion_writer=exclusion_writer, **(defaults | kwargs))


def fineweb_filter(exclusion_writer: DiskWriter | None = None, **kwargs) -> FineWebQualityFilter:
    """datatrove's FineWeb filter with CJK-aware word units (its stop characters already include 。！？).
    Off in the demo: its short-line rule removes every poem."""
    return FineWebQualityFilter(exclusion_writer=exclusion_writer, **({"language": CJKWordTokenizer()} | kwargs))


# name in the config -> step factory (a class or a function taking `exclusion_writer` and keyword arguments)
FILTERS = {
    "language": LanguageIDFilter,
    "c4": c4_filter,
    "repetition": RepetitionFilter,
    "quality": QualityFilter,
    "fineweb": fineweb_filter,
}
_FACTORY_TARGETS = {c4_filter: C4QualityFilter, fineweb_filter: FineWebQualityFilter}


def _accepted_kwargs(factory) -> set[str]:
    target = _FACTORY_TARGETS.get(factory, factory)
    names = set()
    for cls in target.__mro__ if inspect.isclass(target) else [target]:
        init = cls.__init__ if inspect.isclass(cls) else cls
        if init is object.__init__:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names - {"self", "exclusion_writer", "args", "kwargs"}


def _parameter_defaults(factory) -> dict[str, Any]:
    """Default value of each keyword argument of a filter step (the factory's target class for c4 / fineweb)."""
    target = _FACTORY_TARGETS.get(factory, factory)
    defaults: dict[str, Any] = {}
    for cls in target.__mro__ if inspect.isclass(target) else [target]:
        init = cls.__init__ if inspect.isclass(cls) else cls
        if init is object.__init__:
            continue
        for name, p in inspect.signature(init).parameters.items():
            if p.default is not p.empty:
                defaults.setdefault(name, p.default)
    return defaults


_KINDS = (((bool,), "true or false"), ((int, float), "a number"), ((str,), "a string"), ((list, tuple), "a list"))


def _check_value(where: str, value, default) -> None:
    """A value must be of the kind of its parameter's default; `null` is always allowed ("off" for many), and so is
    a string where a list is expected (`languages: en`)."""
    if value is None or default is None:
        return
    kinds, name = next(((k, n) for k, n in _KINDS if isinstance(default, k)), (None, None))
    if kinds is None or (isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)):
        return
    if kinds == (list, tuple) and isinstance(value, str):
        return
    raise ConfigTypeError(f"{where}: expected {name} (default {default!r}), got {value!r} ({type(value).__name__})")


def check_filter_specs(specs: dict) -> dict:
    """Validate `filters:` (name -> keyword arguments, `null`/`false` to disable); unknown names or arguments and
    values of the wrong type raise, naming `filters.<name>.<argument>`."""
    checked = {}
    for name, kwargs in specs.items():
        if name not in FILTERS:
            raise ConfigError(f"filters: unknown filter {name!r}; available: {list(FILTERS)}")
        if kwargs is None or kwargs is False:
            continue
        if kwargs is True:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise ConfigTypeError(f"filters.{name}: expected a mapping of keyword arguments, got {kwargs!r}")
        unknown = sorted(set(kwargs) - _accepted_kwargs(FILTERS[name]))
        if unknown:
            raise ConfigError(
                f"filters.{name}: unknown argument(s) {unknown}; accepted: {sorted(_accepted_kwargs(FILTERS[name]))}"
            )
        defaults = _parameter_defaults(FILTERS[name])
        for key, value in kwargs.items():
            _check_value(f"filters.{name}.{key}", value, defaults.get(key))
        checked[name] = dict(kwargs)
    return checked


def build_filter(name: str, kwargs: dict, exclusion_writer: DiskWriter | None = None) -> BaseFilter:
    return FILTERS[name](exclusion_writer=exclusion_writer, **kwargs)
