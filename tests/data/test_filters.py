import random
from collections import Counter

import pytest
from datatrove.data import Document
from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate

from deepseek_hf.data.errors import INPUT_ERROR
from deepseek_hf.data.filters import (
    InputValidator,
    LanguageIDFilter,
    QualityFilter,
    RepetitionFilter,
    _split_units,
    c4_filter,
    check_filter_specs,
)
from deepseek_hf.data.text import CJKWordTokenizer

POEM = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
ENGLISH = (
    "The river runs through the old city and the people of the village walk to the market with their bread. "
    "In winter the harbor is quiet, and the library is the warmest place to read about the history of the island."
)


def doc(text: str, **metadata) -> Document:
    return Document(text=text, id="d", metadata=metadata)


def result(step, text: str, **metadata):
    out = step.filter(doc(text, **metadata))
    return out if isinstance(out, tuple) else (out, None)


def test_input_validator_reasons():
    v = InputValidator(max_chars=100)
    assert result(v, "x", **{INPUT_ERROR: "malformed_json"}) == (False, "malformed_json")
    assert result(v, "") == (False, "empty")
    assert result(v, " \n\t ") == (False, "empty")
    assert result(v, "fine") == (True, None)
    long = doc("y" * 50_000)
    assert v.filter(long) == (False, "too_long")
    assert len(long.text) == 10_000 and long.metadata["original_chars"] == 50_000  # short audit copy


def test_language_id_offline():
    f = LanguageIDFilter(languages=["en", "zh"], language_threshold=0.5)
    english, chinese = doc(ENGLISH), doc(POEM)
    assert f.filter(english) and english.metadata["language"] == "en"
    assert f.filter(chinese) and chinese.metadata["language"] == "zh"
    assert result(f, "Ceci est une phrase en français, évidemment, avec des mots.") == (False, "language_not_kept")
    assert result(LanguageIDFilter(language_threshold=1.01), ENGLISH) == (False, "language_low_score")
    assert LanguageIDFilter(languages=["fr"], label_only=True).filter(doc(ENGLISH)) is True


def test_language_id_folds_chinese_dialect_labels(monkeypatch):
    f = LanguageIDFilter()

    class FakeModel:
        def rank(self, text):
            return [("wuu", 0.4), ("ja", 0.35), ("zh", 0.15), ("yue", 0.1)]

    monkeypatch.setattr(f, "_identifier", FakeModel())
    lang, score = f.predict("whatever")
    assert lang == "zh" and score == pytest.approx(0.65)


def test_quality_counts_cjk_characters_as_words():
    q = QualityFilter(min_doc_words=20)
    assert result(q, POEM) == (True, None)  # 20 characters
    assert result(q, POEM[:8]) == (False, "gopher_short_doc")
    # English rules apply to mostly-English text
    assert result(QualityFilter(min_doc_words=5), "the river and the market with people") == (True, None)
    assert result(QualityFilter(min_doc_words=5), "antidisestablishmentarianism " * 6 + "the of") == (
        False,
        "gopher_above_avg_threshold",
    )
    assert result(QualityFilter(min_doc_words=5), "river city music water garden") == (
        False,
        "gopher_enough_stop_words",
    )
    assert result(QualityFilter(min_doc_words=5), "12345 67890 13579 24680 11223 the river and") == (
        False,
        "gopher_below_alpha_threshold",
    )


def test_quality_chinese_ellipsis_and_optional_stop_chars():
    lines = "\n".join(["他说了很多很多的话……"] * 4 + ["这是第二句话的内容，一共有二十个字符左右。"] * 2)
    assert result(QualityFilter(min_doc_words=5), lines) == (False, "gopher_too_many_end_ellipsis")
    assert result(QualityFilter(min_doc_words=5, min_cjk_stop_chars=2), "山川草木日月星辰风雨") == (
        False,
        "cjk_not_enough_stop_chars",
    )
    assert result(QualityFilter(min_doc_words=5), "山川草木日月星辰风雨") == (True, None)


def _reference_ngram_reason(f: RepetitionFilter, text: str):
    """The same n-gram rules computed on joined strings with datatrove's own helper."""
    words, cjk = _split_units(text, f.language)
    scale, sep = (f.cjk_ngram_scale, "") if cjk else (1, " ")
    for n, frac in f.top_n_grams:
        grams = [sep.join(words[i : i + n * scale]) for i in range(len(words) - n * scale + 1)]
        if grams:
            gram, count = Counter(grams).most_common(1)[0]
            if count > 1 and len(gram) * count / len(text) > frac:
                return f"top_{n}_gram"
    for n, frac in f.dup_n_grams:
        if find_all_duplicate(words, n * scale) / len(text) > frac:
            return f"duplicated_{n}_n_grams"
    return None


def test_repetition_hashed_ngrams_match_string_reference():
    rng = random.Random(0)
    f = RepetitionFilter()
    vocabulary = "the cat sat on a mat dog ran far 天 地 人 山 水 风 月".split()
    decided = Counter()
    for _ in range(400):
        text = " ".join(rng.choice(vocabulary[: rng.randint(3, len(vocabulary))]) for _ in range(rng.randint(3, 200)))
        ours = f.filter(doc(text))
        reason = ours[1] if isinstance(ours, tuple) else None
        if reason in (None,) or "gram" in reason:
            assert reason == _reference_ngram_reason(f, text), text
            decided[reason] += 1
    assert decided[None] > 10 and sum(v for k, v in decided.items() if k) > 10  # both outcomes exercised


def test_repetition_keeps_short_poems_that_datatrove_drops():
    tok = CJKWordTokenizer()
    assert GopherRepetitionFilter(language=tok).filter(doc(POEM)) == (False, "top_2_gram")  # single occurrence
    assert RepetitionFilter().filter(doc(POEM)) is True
    assert result(RepetitionFilter(), " ".join(["the cat sat on the mat"] * 30)) == (False, "top_2_gram")
    assert result(RepetitionFilter(), "\n".join(["同一行重复出现的文字"] * 5)) == (False, "dup_line_frac")


def test_c4_filter_is_language_independent():
    c4 = c4_filter()
    assert result(c4, "lorem ipsum dolor sit amet") == (False, "lorem_ipsum")
    assert result(c4, "function() { return 1; }") == (False, "curly_bracket")
    d = doc("第一行没有英文标点\nPlease enable JavaScript to view.\n第三行")
    assert c4.filter(d) is True and d.text == "第一行没有英文标点\n第三行"


def test_filter_specs_are_strict():
    assert check_filter_specs({"quality": {"min_doc_words": 3}, "fineweb": None, "c4": True}) == {
        "quality": {"min_doc_words": 3},
        "c4": {},
    }
    with pytest.raises(ValueError, match="unknown filter 'qualty'"):
        check_filter_specs({"qualty": {}})
    with pytest.raises(ValueError, match=r"filters.quality: unknown argument\(s\) \['min_words'\]"):
        check_filter_specs({"quality": {"min_words": 3}})
    with pytest.raises(TypeError, match="filters.c4"):
        check_filter_specs({"c4": 3})
