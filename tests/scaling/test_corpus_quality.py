"""`degrade_corpus`: a lower-quality copy with a known defect (shuffled units, verbatim copies), reproducible, and
clear errors for bad input."""

import gzip
import json
import random
from collections import Counter

import pytest

from deepseek_hf.cli import main as deepseek_hf_main
from deepseek_hf.scaling.corpus_quality import degrade_corpus, shuffle_units

DOCS = [
    {"id": f"en-{i}", "lang": "en", "text": f"the quick brown fox number {i} jumps over the lazy dog again"}
    for i in range(30)
] + [
    {"id": f"zh-{i}", "lang": "zh", "text": f"床前明月光，疑是地上霜。举头望明月，低头思故乡。{i}"} for i in range(10)
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(doc, ensure_ascii=False) + "\n" for doc in DOCS)
    return str(path)


def read(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_shuffles_a_fraction_and_keeps_the_units(corpus, tmp_path):
    output = tmp_path / "noisy.jsonl"
    report = degrade_corpus(corpus, str(output), shuffle_fraction=0.5, duplicate_fraction=0.25, seed=3)
    assert (report.documents, report.shuffled, report.duplicated, report.written) == (40, 20, 10, 50)
    out = read(output)
    changed = [new for old, new in zip(DOCS, out) if new["text"] != old["text"]]
    assert 18 <= len(changed) <= 20  # a shuffle may, rarely, give the same order back
    for old, new in zip(DOCS, out):
        assert {k: v for k, v in new.items() if k != "text"} == {k: v for k, v in old.items() if k != "text"}
        if old["lang"] == "en":
            assert Counter(new["text"].split()) == Counter(old["text"].split())  # same words, other order
        else:
            assert Counter(new["text"]) == Counter(c for c in old["text"] if not c.isspace())
    copies = out[40:]
    assert all(copy["id"].endswith("-copy") for copy in copies)
    originals = {doc["id"]: doc["text"] for doc in out[:40]}
    assert all(originals[copy["id"][: -len("-copy")]] == copy["text"] for copy in copies)  # verbatim copies


def test_reproducible_with_the_seed(corpus, tmp_path):
    first, second, other = (tmp_path / f"{name}.jsonl" for name in ("a", "b", "c"))
    degrade_corpus(corpus, str(first), seed=1)
    degrade_corpus(corpus, str(second), seed=1)
    degrade_corpus(corpus, str(other), seed=2)
    assert first.read_text() == second.read_text() != other.read_text()


def test_chinese_is_shuffled_by_character():
    text = shuffle_units("床前明月光疑是地上霜", random.Random(0))
    assert sorted(text) == sorted("床前明月光疑是地上霜") and text != "床前明月光疑是地上霜"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"shuffle_fraction": 1.5}, ValueError, r"shuffle_fraction must be in \[0, 1\]"),
        ({"output": "noisy.jsonl.gz"}, ValueError, "name it \\*.jsonl"),
        ({"source": "/nonexistent.jsonl"}, FileNotFoundError, "corpus '/nonexistent.jsonl' does not exist"),
        ({"text_key": "body"}, ValueError, "line 1: no string field 'body'"),
    ],
)
def test_bad_input(corpus, tmp_path, kwargs, error, message):
    args = {"source": corpus, "output": str(tmp_path / "noisy.jsonl"), **kwargs}
    with pytest.raises(error, match=message):
        degrade_corpus(args.pop("source"), args.pop("output"), **args)


def test_bad_json_line_is_named(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl line 2: not valid JSON"):
        degrade_corpus(str(source), str(tmp_path / "out.jsonl"))


def test_cli(corpus, tmp_path, capsys):
    output = tmp_path / "noisy.jsonl"
    argv = [
        "scaling",
        "degrade-corpus",
        corpus,
        str(output),
        "--shuffle-fraction",
        "0.25",
        "--duplicate-fraction",
        "0",
    ]
    assert deepseek_hf_main(argv) == 0
    assert "40 documents (40 of" in capsys.readouterr().out and len(read(output)) == 40
    with pytest.raises(SystemExit):
        deepseek_hf_main(["scaling", "degrade-corpus", corpus, str(output), "--shuffle-fraction", "2"])
    assert "--shuffle-fraction: must be in [0, 1], got 2" in capsys.readouterr().err
