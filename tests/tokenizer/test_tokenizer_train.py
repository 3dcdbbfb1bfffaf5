"""Training a DeepSeek byte-level BPE tokenizer: layout, inputs, and bad input."""

from __future__ import annotations

import gzip
import json

import datasets
import pytest

from deepseek_hf.tokenizer import (
    MIN_VOCAB_SIZE,
    SPECIAL_TOKENS,
    DeepseekLLMTokenizer,
    TrainingCorpus,
    padded_vocab_size,
    train_tokenizer,
)
from deepseek_hf.tokenizer.pre_tokenizer import byte_alphabet

TEXTS = ["The quick brown fox jumps over the lazy dog.\n", "敏捷的棕色狐狸跳过了懒狗。\n", "3.14159 is pi\n"] * 20


def test_trained_layout(trained_tokenizer, trained_tokenizer_dir, trained_vocab_size):
    tok, n = trained_tokenizer, trained_vocab_size
    assert len(tok) == n + len(SPECIAL_TOKENS)
    assert tok.convert_ids_to_tokens(list(range(243))) == byte_alphabet()
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(n, n + 15))
    assert tok.padded_vocab_size == padded_vocab_size(len(tok)) == 1024
    assert tok("hi").input_ids[0] == tok.bos_token_id == n
    stats = json.loads((trained_tokenizer_dir / "training_stats.json").read_text())
    assert stats["documents"] == 575 and stats["skipped"] == 0


def test_byte_tokens_match_the_real_vocabulary(trained_tokenizer, gguf_vocab):
    # With the same alphabet rule the first 243 ids coincide with the real tokenizer's: a 100000-token training
    # gets the real layout.
    assert trained_tokenizer.convert_ids_to_tokens(list(range(243))) == gguf_vocab.tokens[:243]


def test_trained_tokenizer_compresses(trained_tokenizer, corpus_slice):
    text = "".join(json.loads(line)["text"] for line in corpus_slice.read_text(encoding="utf-8").splitlines()[:50])
    num_tokens = len(trained_tokenizer(text, add_special_tokens=False).input_ids)
    assert num_tokens < 0.6 * len(text.encode("utf-8"))  # merges were learned and are used


def _write(path, lines: list[bytes], compress: bool = False):
    data = b"".join(lines)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_all_input_forms_give_the_same_tokenizer(tmp_path):
    txt = _write(tmp_path / "a.txt", [t.encode() for t in TEXTS])
    jsonl = _write(tmp_path / "a.jsonl", [json.dumps({"text": t}).encode() + b"\n" for t in TEXTS])
    jsonl_gz = _write(tmp_path / "a.jsonl.gz", [json.dumps({"text": t}).encode() + b"\n" for t in TEXTS], True)
    folder = tmp_path / "dir"
    folder.mkdir()
    _write(folder / "part.txt.gz", [t.encode() for t in TEXTS], compress=True)
    (folder / "README.md").write_text("ignored: not a training file type")
    dataset = datasets.Dataset.from_dict({"text": TEXTS})
    vocabs = []
    for source in ([txt], [jsonl], jsonl_gz, [folder], dataset, dataset.to_iterable_dataset()):
        tok = train_tokenizer(source, vocab_size=300, min_frequency=1, show_progress=False)
        vocabs.append(tok.get_vocab())
    assert all(vocab == vocabs[0] for vocab in vocabs)
    assert len(vocabs[0]) == 315


def test_bad_records_are_skipped_and_counted(tmp_path):
    good = json.dumps({"text": "usable text"}).encode()
    lines = [
        good,
        b'{"text": "bad byte \xff here"}',  # invalid UTF-8
        b'{"text": "lone \\ud800 surrogate"}',  # valid JSON, but no UTF-8 encoding exists
        b'{"text": "truncated',  # malformed JSON
        b'{"content": "wrong field"}',
        b'{"text": 42}',
        b'{"text": ""}',
        b"",  # blank line: not a record
        good,
    ]
    path = _write(tmp_path / "mixed.jsonl", [line + b"\n" for line in lines])
    txt = _write(tmp_path / "mixed.txt", [b"fine line\n", b"caf\xe9 latin-1 line\n", b"another fine line\n"])
    corpus = TrainingCorpus([path, txt], show_progress=False)
    texts = list(corpus)
    assert texts == ["usable text", "usable text", "fine line\n", "another fine line\n"]
    stats = corpus.stats
    assert (stats.documents, stats.skipped_invalid_utf8, stats.skipped_malformed_json) == (4, 3, 1)
    assert (stats.skipped_missing_text, stats.skipped_empty, stats.skipped) == (2, 1, 7)

    out = tmp_path / "tok"
    train_tokenizer([path, txt], vocab_size=260, min_frequency=1, output_dir=out, show_progress=False)
    saved = json.loads((out / "training_stats.json").read_text())
    assert (saved["documents"], saved["skipped_invalid_utf8"], saved["skipped"]) == (4, 3, 7)


def test_errors_name_the_problem(tmp_path):
    txt = _write(tmp_path / "ok.txt", [b"some text\n"])
    with pytest.raises(ValueError, match=f"minimum is {MIN_VOCAB_SIZE}"):
        train_tokenizer([txt], vocab_size=MIN_VOCAB_SIZE - 1, show_progress=False)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        train_tokenizer([txt, tmp_path / "nope.jsonl"], vocab_size=300, show_progress=False)
    with pytest.raises(ValueError, match="unsupported"):
        train_tokenizer([_write(tmp_path / "data.csv", [b"a,b\n"])], vocab_size=300, show_progress=False)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="no training files"):
        train_tokenizer([empty_dir], vocab_size=300, show_progress=False)
    only_empty = _write(tmp_path / "blank.jsonl", [b'{"text": ""}\n', b'{"other": "x"}\n'])
    with pytest.raises(ValueError, match="empty training corpus"):
        train_tokenizer([only_empty], vocab_size=300, show_progress=False)
    corrupt = tmp_path / "broken.jsonl.gz"
    corrupt.write_bytes(gzip.compress(b'{"text": "x"}\n' * 100)[:-20])
    with pytest.raises(OSError, match="broken.jsonl.gz"):
        train_tokenizer([corrupt], vocab_size=300, show_progress=False)
    dataset = datasets.Dataset.from_dict({"content": ["x"]})
    with pytest.raises(ValueError, match="no column 'text'"):
        train_tokenizer(dataset, vocab_size=300, show_progress=False)
    with pytest.raises(TypeError, match="one split"):
        train_tokenizer(datasets.DatasetDict({"train": dataset}), vocab_size=300, show_progress=False)
    with pytest.raises(TypeError, match="Dataset.from_dict"):
        train_tokenizer([["in-memory text"]], vocab_size=300, show_progress=False)


def test_minimum_vocabulary_trains(tmp_path):
    tok = train_tokenizer(
        [_write(tmp_path / "a.txt", [b"aaaa bbbb\n"])], vocab_size=MIN_VOCAB_SIZE, show_progress=False
    )
    assert len(tok) == 258
    assert tok.decode(tok("aaaa bbbb", add_special_tokens=False).input_ids) == "aaaa bbbb"


def test_output_directory_is_written_atomically(tmp_path, monkeypatch):
    txt = _write(tmp_path / "a.txt", [t.encode() for t in TEXTS])
    out = tmp_path / "tok"

    def crash(self, save_directory, *args, **kwargs):
        (tmp_path / "staging_seen").write_text(str(save_directory))
        (save_directory / "tokenizer.json").write_text("{half written")
        raise RuntimeError("disk full")

    monkeypatch.setattr(DeepseekLLMTokenizer, "save_pretrained", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        train_tokenizer([txt], vocab_size=260, output_dir=out, show_progress=False)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "staging_seen"]  # staging dir removed too
    monkeypatch.undo()

    train_tokenizer([txt], vocab_size=260, output_dir=out, show_progress=False)
    assert {p.name for p in out.iterdir()} == {"tokenizer.json", "tokenizer_config.json", "training_stats.json"}
    with pytest.raises(FileExistsError, match="overwrite"):
        train_tokenizer([txt], vocab_size=270, output_dir=out, show_progress=False)
    train_tokenizer([txt], vocab_size=270, output_dir=out, show_progress=False, overwrite=True)
    assert len(DeepseekLLMTokenizer.from_pretrained(out)) == 270 + 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "staging_seen", "tok"]


def test_small_corpus_warns_when_vocab_cannot_be_reached(tmp_path, caplog):
    txt = _write(tmp_path / "a.txt", [t.encode() for t in TEXTS])
    with caplog.at_level("WARNING", logger="deepseek_hf.tokenizer.train"):
        tok = train_tokenizer([txt], vocab_size=5000, show_progress=False)
    learned = len(tok) - len(SPECIAL_TOKENS)
    assert MIN_VOCAB_SIZE < learned < 5000
    assert f"supports only {learned} regular tokens (asked for 5000)" in caplog.text
    assert tok.convert_ids_to_tokens([learned]) == [SPECIAL_TOKENS[0]]  # specials follow what was learned
