"""Loaders for the 14 multiple-choice benchmarks DeepSeek LLM scores by perplexity (arXiv 2401.02954, section 5.1).

The lm-eval tasks in `eval_tasks/` call `load_benchmark` through `custom_dataset:`. It reads the original public files
from a folder laid out like `../shared/data/` (`data_dir`, else $DEEPSEEK_HF_EVAL_DATA), or, when neither is set and
the machine is online, the Hugging Face Hub copies. Both paths give the same normalized rows (`FEATURES`), so one set
of templates serves either; where the two forms agree they share one converter.

Nothing is skipped or guessed: a missing file, a malformed row or an unknown name raises `BenchmarkDataError`, whose
message names the file and line (1-based, as an editor shows it) or the Hub row, and the form that was expected.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

ENV_VAR = "DEEPSEEK_HF_EVAL_DATA"
LETTERS = "ABCD"

_STR = datasets.Value("string")
_INT = datasets.Value("int64")
_STRS = datasets.List(_STR)
_ABCD = datasets.Features({"question": _STR, "A": _STR, "B": _STR, "C": _STR, "D": _STR, "answer": _STR})

# normalized schema per benchmark; the YAML templates depend on these field names
FEATURES: dict[str, datasets.Features] = {
    "mmlu": _ABCD,
    "cmmlu": _ABCD,
    "ceval": _ABCD,
    "arc": datasets.Features({"question": _STR, "choices": _STRS, "gold": _INT}),
    "piqa": datasets.Features({"goal": _STR, "choices": _STRS, "gold": _INT}),
    "openbookqa": datasets.Features({"question": _STR, "choices": _STRS, "gold": _INT}),
    "hellaswag": datasets.Features({"ctx": _STR, "endings": _STRS, "gold": _INT}),
    "winogrande": datasets.Features({"context_options": _STRS, "continuation": _STR, "gold": _INT}),
    "race": datasets.Features({"article": _STR, "question": _STR, "options": _STRS, "gold": _INT}),
    "c3": datasets.Features({"context": _STR, "question": _STR, "choices": _STRS, "gold": _INT, "source": _STR}),
    "chid": datasets.Features({"prefix": _STR, "suffix": _STR, "candidates": _STRS, "gold": _INT}),
    "ccpm": datasets.Features({"translation": _STR, "choices": _STRS, "gold": _INT}),
}
BENCHMARKS = tuple(FEATURES)
# benchmarks whose subject names a file per split (the subject lists themselves live with the task definitions)
SUBJECT_FILES: dict[str, dict[str, str]] = {
    "mmlu": {split: f"mmlu/{split}/{{subject}}_{split}.csv" for split in ("dev", "val", "test")},
    "cmmlu": {split: f"cmmlu/{split}/{{subject}}.csv" for split in ("dev", "test")},
    "ceval": {split: f"ceval/{split}/{{subject}}_{split}.csv" for split in ("dev", "val")},
}
# benchmarks whose subject picks one of a fixed set of parts
LEVELS = {"arc": ("easy", "challenge"), "race": ("high", "middle")}

# what a data folder must hold, for the messages of missing files
LAYOUT = {
    "mmlu": "mmlu/{dev,val,test}/<subject>_{dev,val,test}.csv",
    "cmmlu": "cmmlu/{dev,test}/<subject>.csv",
    "ceval": "ceval/{dev,val}/<subject>_{dev,val}.csv",
    "arc": "arc/arc_{easy,challenge}_test.jsonl",
    "piqa": "piqa/valid.jsonl + piqa/valid-labels.lst",
    "openbookqa": "openbookqa/Main/dev.tsv [+ train.tsv, test.tsv]",
    "hellaswag": "hellaswag/hellaswag_val*.txt (one file)",
    "winogrande": "winogrande/winogrande_dev.jsonl",
    "race": "race/race_dev_{high,middle}.jsonl.gz [+ race/race_train_<level>.jsonl.gz]",
    "c3": "c3/c3-d-dev.json + c3/c3-m-dev.json",
    "chid": "chid/dev_few_all.json [+ chid/train_few_all.json]",
    "ccpm": "ccpm/valid.jsonl",
}

# the form each source file should have, for the messages of malformed rows
_FORM = {
    "mmlu": "6 CSV columns, no header: question,A,B,C,D,answer (a letter A-D)",
    "cmmlu": "CSV with header ',Question,A,B,C,D,Answer' (Answer a letter A-D)",
    "ceval": "CSV with header 'id,question,A,B,C,D,answer[,explanation]' (answer a letter A-D)",
    "arc": 'JSON lines {"query": "Question: ...", "choices": [...], "gold": <index>}',
    "piqa": 'JSON lines {"goal", "sol1", "sol2"}, line-aligned with valid-labels.lst (one 0|1 per line)',
    "openbookqa": "TSV with header 'ID, Question Stem, Choices, Complete Question, Answer Key' (tab-separated), "
    "Choices '(A) ... (B) ... (C) ... (D) ...', Answer Key A-D",
    "hellaswag": "6 lines per task: 'activity_label: ctx', the gold label 0-3, then the 4 endings",
    "winogrande": 'JSON lines {"context_options": [2 strings], "continuation": "...", "gold": 0|1}',
    "race": 'gzip JSON lines {"article", "questions": [...], "options": [[4 strings], ...], "answers": [A-D, ...]}',
    "c3": 'a JSON array of [documents, [{"question", "choice": [...], "answer": <text of one choice>}, ...], id]',
    "chid": 'JSON lines {"candidates": [...], "content": text with exactly one #idiom#, "answer": <index>}',
    "ccpm": 'JSON lines {"translation", "choices": [...], "answer": <index>}',
}

_OBQA_HEADER = ["ID", "Question Stem", "Choices", "Complete Question", "Answer Key"]
_OBQA_CHOICES = re.compile(r"\(A\) (.*?) \(B\) (.*?) \(C\) (.*?) \(D\) (.*)", re.DOTALL)
_SUBJECT_NAME = re.compile(r"[A-Za-z0-9_]+")
_TRUE = {"1", "true", "yes", "on"}


class BenchmarkDataError(ValueError):
    """Benchmark data missing or malformed; the message says where (file and line, or folder) and what was expected."""


class _Row:
    """One source record: where it came from and its expected form, so every check can say both."""

    def __init__(self, where: str, form: str):
        self.where, self.form = where, form

    def fail(self, problem: str) -> BenchmarkDataError:
        return BenchmarkDataError(f"{self.where}: {problem}; expected {self.form}")

    def object(self, record: Any) -> dict:
        if not isinstance(record, dict):
            raise self.fail(f"not a JSON object ({type(record).__name__})")
        return record

    def get(self, record: Any, key: str) -> Any:
        if key not in self.object(record):
            raise self.fail(f"missing field {key!r}")
        return record[key]

    def text(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"empty {name}" if isinstance(value, str) else f"{name} is not a string: {value!r}")
        return value

    def texts(self, value: Any, name: str, count: int | None = None) -> list[str]:
        if not isinstance(value, (list, tuple)):
            raise self.fail(f"{name} is not a list: {value!r}")
        if count is not None and len(value) != count:
            raise self.fail(f"{len(value)} {name}, not {count}")
        if len(value) < 2:
            raise self.fail(f"{len(value)} {name}, need at least 2")
        return [self.text(item, f"{name} #{i}") for i, item in enumerate(value, 1)]

    def index(self, value: Any, size: int, name: str = "gold") -> int:
        """`value` (an int, or a decimal string as label files and Hub string labels hold) as an index < size."""
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
            raise self.fail(f"{name} {value!r} is not an index in 0..{size - 1}")
        return value

    def letter(self, value: Any, name: str = "answer") -> str:
        letter = value.strip() if isinstance(value, str) else value
        if letter not in tuple(LETTERS):
            raise self.fail(f"{name} {value!r} is not a letter A-D")
        return letter


# ---------------------------------------------------------------------------------------------------------------------
# Converters: one normalized row from one source record. Those named `_from_*` serve the local files and the Hub alike.


def _abcd(row: _Row, question: Any, options: Any, answer: str) -> dict:
    options = row.texts(options, "options", count=4)
    return {"question": row.text(question, "question"), **dict(zip(LETTERS, options)), "answer": row.letter(answer)}


def _from_cmmlu(record: dict, row: _Row) -> dict:
    options = [row.get(record, letter) for letter in LETTERS]
    return _abcd(row, row.get(record, "Question"), options, row.get(record, "Answer"))


def _from_ceval(record: dict, row: _Row) -> dict:
    options = [row.get(record, letter) for letter in LETTERS]
    return _abcd(row, row.get(record, "question"), options, row.get(record, "answer"))


def _from_piqa(record: dict, row: _Row) -> dict:
    choices = row.texts([row.get(record, "sol1"), row.get(record, "sol2")], "solutions")
    return {
        "goal": row.text(row.get(record, "goal"), "goal"),
        "choices": choices,
        "gold": row.index(row.get(record, "label"), 2),
    }


def _race(row: _Row, article: Any, question: Any, options: Any, answer: Any) -> dict:
    return {
        "article": row.text(article, "article"),
        "question": row.text(question, "question"),
        "options": row.texts(options, "options", count=4),
        "gold": LETTERS.index(row.letter(answer)),
    }


def _c3(row: _Row, documents: Any, question: dict, source: str) -> dict:
    if not isinstance(documents, (list, tuple)) or not documents:
        raise row.fail(f"documents is not a non-empty list: {documents!r}")
    context = "\n".join(row.text(doc, f"document #{i}") for i, doc in enumerate(documents, 1))
    choices = row.texts(row.get(question, "choice"), "choices")
    answer = row.get(question, "answer")
    if answer not in choices:
        raise row.fail(f"answer {answer!r} is not one of the choices {choices}")
    question_text = row.text(row.get(question, "question"), "question")
    return {
        "context": context,
        "question": question_text,
        "choices": choices,
        "gold": choices.index(answer),
        "source": source,
    }


def _winogrande(row: _Row, context_options: Any, continuation: Any, gold: Any) -> dict:
    return {
        "context_options": row.texts(context_options, "context_options", count=2),
        "continuation": row.text(continuation, "continuation"),
        "gold": row.index(gold, 2),
    }


def _mc(row: _Row, question_key: str, question: Any, choices: Any, gold: Any) -> dict:
    choices = row.texts(choices, "choices")
    return {question_key: row.text(question, question_key), "choices": choices, "gold": row.index(gold, len(choices))}


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag clean-up (drops WikiHow's [title]/[step] markers); the local text form already has it."""
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


# Hub-only converters (the Hub form differs from the original files)


def _hub_mmlu(record: dict, row: _Row) -> dict:
    answer = LETTERS[row.index(row.get(record, "answer"), 4, "answer")]
    return _abcd(row, row.get(record, "question"), row.get(record, "choices"), answer)


def _hub_labelled(record: dict, row: _Row, question_key: str) -> dict:
    """ARC and OpenBookQA on the Hub: choices {text, label}, answerKey one of the labels."""
    choices = row.get(record, "choices")
    labels, texts = row.get(choices, "label"), row.get(choices, "text")
    key = row.get(record, "answerKey")
    key = key.strip() if isinstance(key, str) else key
    if not isinstance(labels, (list, tuple)) or key not in labels:
        raise row.fail(f"answerKey {key!r} is not one of the choice labels {labels!r}")
    if len(labels) != len(texts):
        raise row.fail(f"{len(texts)} choice texts for {len(labels)} labels")
    return _mc(row, "question", row.get(record, question_key), texts, list(labels).index(key))


def _hub_hellaswag(record: dict, row: _Row) -> dict:
    ctx_b = row.get(record, "ctx_b")
    if not isinstance(ctx_b, str):
        raise row.fail(f"ctx_b is not a string: {ctx_b!r}")
    ctx = f"{row.get(record, 'activity_label')}: {row.get(record, 'ctx_a')} {ctx_b.capitalize()}"
    endings = row.texts(row.get(record, "endings"), "endings", count=4)
    return {
        "ctx": row.text(_hellaswag_clean(ctx), "ctx"),
        "endings": [row.text(_hellaswag_clean(ending), "ending") for ending in endings],
        "gold": row.index(row.get(record, "label"), 4, "label"),
    }


def _hub_winogrande(record: dict, row: _Row) -> dict:
    """lm-eval's partial scoring: the sentence up to the blank with each option, scored on the shared rest."""
    sentence = row.text(row.get(record, "sentence"), "sentence")
    blank = sentence.find("_")
    if blank < 0:
        raise row.fail("sentence has no '_' blank")
    options = [sentence[:blank] + row.text(row.get(record, key), key) for key in ("option1", "option2")]
    answer = row.get(record, "answer")
    if answer not in ("1", "2"):
        raise row.fail(f"answer {answer!r} is not '1' or '2'")
    return _winogrande(row, options, sentence[blank + 1 :].strip(), int(answer) - 1)


def _hub_race(record: dict, row: _Row) -> dict:
    return _race(row, *(row.get(record, key) for key in ("article", "question", "options", "answer")))


def _hub_c3(record: dict, row: _Row, source: str) -> list[dict]:
    """One Hub row is one document with its questions, stored column-wise ({question: [...], answer: [...], ...})."""
    questions = row.get(record, "questions")
    if isinstance(questions, dict):
        keys = ("question", "choice", "answer")
        columns = [row.get(questions, key) for key in keys]
        if len({len(column) for column in columns}) != 1:
            raise row.fail("questions columns of different lengths")
        questions = [dict(zip(keys, values)) for values in zip(*columns)]
    if not isinstance(questions, list) or not questions:
        raise row.fail("no questions")
    documents = row.get(record, "documents")
    return [
        _c3(_Row(f"{row.where} (question {i})", row.form), documents, q, source) for i, q in enumerate(questions, 1)
    ]


@dataclass(frozen=True)
class _HubSource:
    """A Hub dataset: its repo, the configs to read ("{subject}", "{Subject}" capitalized, are filled in) with the
    converter of their rows, and the normalized split -> Hub split map."""

    repo: str
    configs: dict[str | None, Callable[[dict, _Row], dict | list[dict]]]
    splits: dict[str, str]
    form: str


# CHID (FewCLUE form) and CCPM have no Hub copy in the original form that could be confirmed, so only local files.
HUB: dict[str, _HubSource] = {
    "mmlu": _HubSource(
        "cais/mmlu",
        {"{subject}": _hub_mmlu},
        {"dev": "dev", "val": "validation", "test": "test"},
        "{question, choices: [4], answer: 0-3}",
    ),
    "cmmlu": _HubSource(
        "haonan-li/cmmlu",
        {"{subject}": _from_cmmlu},
        {"dev": "dev", "test": "test"},
        "{Question, A, B, C, D, Answer: A-D}",
    ),
    "ceval": _HubSource(
        "ceval/ceval-exam",
        {"{subject}": _from_ceval},
        {"dev": "dev", "val": "val"},
        "{id, question, A, B, C, D, answer: A-D, explanation}",
    ),
    "arc": _HubSource(
        "allenai/ai2_arc",
        {"ARC-{Subject}": functools.partial(_hub_labelled, question_key="question")},
        {"test": "test"},
        "{question, choices: {text, label}, answerKey}",
    ),
    "piqa": _HubSource("baber/piqa", {None: _from_piqa}, {"validation": "validation"}, "{goal, sol1, sol2, label}"),
    "openbookqa": _HubSource(
        "allenai/openbookqa",
        {"main": functools.partial(_hub_labelled, question_key="question_stem")},
        {"train": "train", "validation": "validation", "test": "test"},
        "{question_stem, choices: {text, label}, answerKey}",
    ),
    "hellaswag": _HubSource(
        "Rowan/hellaswag",
        {None: _hub_hellaswag},
        {"validation": "validation"},
        "{activity_label, ctx_a, ctx_b, endings: [4], label: '0'-'3'}",
    ),
    "winogrande": _HubSource(
        "allenai/winogrande",
        {"winogrande_xl": _hub_winogrande},
        {"validation": "validation"},
        "{sentence with one '_', option1, option2, answer: '1'|'2'}",
    ),
    # the Hub has RACE's real test set; few-shot examples come from the same level's dev set (disjoint passages)
    "race": _HubSource(
        "ehovy/race",
        {"{subject}": _hub_race},
        {"test": "test", "fewshot": "validation"},
        "{article, question, options: [4], answer: A-D}",
    ),
    "c3": _HubSource(
        "dataset-org/c3",
        {"dialog": functools.partial(_hub_c3, source="d"), "mixed": functools.partial(_hub_c3, source="m")},
        {"validation": "validation"},
        "{documents, document_id, questions: {question, answer, choice}}",
    ),
}


# ---------------------------------------------------------------------------------------------------------------------
# Reading local files: strict UTF-8, 1-based line numbers in every message, nothing skipped.


def _missing(path: Path, benchmark: str) -> BenchmarkDataError:
    return BenchmarkDataError(
        f"{benchmark}: not found: {path} (a folder given as data_dir or ${ENV_VAR} must be laid out like "
        f"{LAYOUT[benchmark]})"
    )


def _read_text(path: Path, benchmark: str) -> str:
    if not path.is_file():
        raise _missing(path, benchmark)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise BenchmarkDataError(
                f"{path}: not a readable gzip file ({error}); expected {_FORM[benchmark]}"
            ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise BenchmarkDataError(
            f"{path}, line {line}: invalid UTF-8 (byte {data[error.start]:#04x}); expected UTF-8 text, {_FORM[benchmark]}"
        ) from None
    # trailing newlines end the file, they are not empty records
    return text.removeprefix("\ufeff").rstrip("\r\n")


def _lines(path: Path, benchmark: str) -> Iterator[tuple[_Row, str]]:
    text = _read_text(path, benchmark)
    for number, line in enumerate(text.split("\n") if text else [], 1):
        row = _Row(f"{path}, line {number}", _FORM[benchmark])
        line = line.removesuffix("\r")
        if not line.strip():
            raise row.fail("blank line")
        yield row, line


def _json_lines(path: Path, benchmark: str) -> Iterator[tuple[_Row, Any]]:
    for row, line in _lines(path, benchmark):
        try:
            yield row, json.loads(line)
        except json.JSONDecodeError as error:
            raise row.fail(f"bad JSON ({error.msg} at column {error.colno})") from None


def _csv_rows(path: Path, benchmark: str) -> Iterator[tuple[_Row, list[str]]]:
    reader = csv.reader(io.StringIO(_read_text(path, benchmark), newline=""), strict=True)
    while True:
        start = reader.line_num + 1  # a quoted field may span lines: report the line the record starts on
        try:
            columns = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _Row(f"{path}, line {reader.line_num}", _FORM[benchmark]).fail(f"bad CSV ({error})") from None
        row = _Row(f"{path}, line {start}", _FORM[benchmark])
        if not columns:
            raise row.fail("blank line")
        yield row, columns


def _json_array(path: Path, benchmark: str) -> Iterator[tuple[_Row, Any]]:
    """The items of a top-level JSON array, each with the line it starts on (json.load would lose the lines)."""
    text, decoder, space = _read_text(path, benchmark), json.JSONDecoder(), re.compile(r"\s*")
    pos, line, counted = space.match(text).end(), 1, 0

    def at(position: int) -> _Row:
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, position), position
        return _Row(f"{path}, line {line}", _FORM[benchmark])

    if text[pos : pos + 1] != "[":
        raise at(pos).fail("not a JSON array")
    pos = space.match(text, pos + 1).end()
    if text[pos : pos + 1] == "]":
        return
    while True:
        row = at(pos)
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            raise _Row(f"{path}, line {error.lineno}", _FORM[benchmark]).fail(f"bad JSON ({error.msg})") from None
        yield row, item
        pos = space.match(text, pos).end()
        if text[pos : pos + 1] == "]":
            break
        if text[pos : pos + 1] != ",":
            raise at(pos).fail("bad JSON (expected ',' or ']' after an array item)")
        pos = space.match(text, pos + 1).end()
    if space.match(text, pos + 1).end() != len(text):
        raise at(pos + 1).fail("bad JSON (text after the array)")


def _nonempty(rows: list[dict], path: Path, benchmark: str) -> list[dict]:
    if not rows:
        raise BenchmarkDataError(f"{path}: no items; expected {_FORM[benchmark]}")
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Local loaders: root folder (+ subject) -> {split: rows}


def _local_mmlu(root: Path, subject: str) -> dict[str, list[dict]]:
    splits = {}
    for split, template in SUBJECT_FILES["mmlu"].items():
        path, rows = root / template.format(subject=subject), []
        for row, columns in _csv_rows(path, "mmlu"):
            if len(columns) != 6:
                raise row.fail(f"{len(columns)} columns, not 6")
            rows.append(_abcd(row, columns[0], columns[1:5], columns[5]))
        splits[split] = _nonempty(rows, path, "mmlu")
    return splits


def _local_with_header(
    root: Path, benchmark: str, subject: str, headers: list[list[str]], convert: Callable[[dict, _Row], dict]
) -> dict[str, list[dict]]:
    """CMMLU and C-Eval: CSV files whose header names the columns the shared converter reads."""
    splits = {}
    for split, template in SUBJECT_FILES[benchmark].items():
        path, rows, header = root / template.format(subject=subject), [], None
        for row, columns in _csv_rows(path, benchmark):
            if header is None:
                if columns not in headers:
                    raise row.fail(f"header {columns}")
                header = columns
                continue
            if len(columns) != len(header):
                raise row.fail(f"{len(columns)} columns, not {len(header)}")
            rows.append(convert(dict(zip(header, columns)), row))
        splits[split] = _nonempty(rows, path, benchmark)
    return splits


def _local_cmmlu(root: Path, subject: str) -> dict[str, list[dict]]:
    return _local_with_header(root, "cmmlu", subject, [["", "Question", *LETTERS, "Answer"]], _from_cmmlu)


def _local_ceval(root: Path, subject: str) -> dict[str, list[dict]]:
    header = ["id", "question", *LETTERS, "answer"]
    return _local_with_header(root, "ceval", subject, [header, [*header, "explanation"]], _from_ceval)


def _local_arc(root: Path, level: str) -> dict[str, list[dict]]:
    path, rows = root / "arc" / f"arc_{level}_test.jsonl", []
    for row, record in _json_lines(path, "arc"):
        query = row.text(row.get(record, "query"), "query")
        if not query.startswith("Question: "):
            raise row.fail("query does not start with 'Question: '")
        rows.append(
            _mc(row, "question", query.removeprefix("Question: "), row.get(record, "choices"), row.get(record, "gold"))
        )
    return {"test": _nonempty(rows, path, "arc")}


def _local_piqa(root: Path, subject: None) -> dict[str, list[dict]]:
    path, labels_path = root / "piqa" / "valid.jsonl", root / "piqa" / "valid-labels.lst"
    records = list(_json_lines(path, "piqa"))
    labels = list(_lines(labels_path, "piqa"))
    if len(records) != len(labels):
        first = min(len(records), len(labels)) + 1
        longer = path if len(records) > len(labels) else labels_path
        raise BenchmarkDataError(
            f"{longer}, line {first}: {len(records)} items in {path.name} but {len(labels)} labels in "
            f"{labels_path.name}; expected {_FORM['piqa']}"
        )
    rows = []
    for (row, record), (label_row, label) in zip(records, labels):
        if label.strip() not in ("0", "1"):
            raise label_row.fail(f"label {label!r} is not 0 or 1")
        rows.append(_from_piqa({**row.object(record), "label": int(label)}, row))
    return {"validation": _nonempty(rows, path, "piqa")}


def _local_openbookqa(root: Path, subject: None) -> dict[str, list[dict]]:
    folder, splits = root / "openbookqa" / "Main", {}
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        path, rows, header = folder / f"{name}.tsv", [], True
        if split != "validation" and not path.is_file():  # the task scores dev; train and test are optional
            continue
        for row, line in _lines(path, "openbookqa"):
            fields = line.split("\t")
            if header:
                if fields != _OBQA_HEADER:
                    raise row.fail(f"header {fields}")
                header = False
                continue
            if len(fields) != len(_OBQA_HEADER):
                raise row.fail(f"{len(fields)} tab-separated fields, not {len(_OBQA_HEADER)}")
            choices = _OBQA_CHOICES.fullmatch(fields[2])
            if choices is None:
                raise row.fail(f"Choices {fields[2]!r} not in the '(A) ... (B) ... (C) ... (D) ...' form")
            gold = LETTERS.index(row.letter(fields[4], "Answer Key"))
            rows.append(_mc(row, "question", fields[1], list(choices.groups()), gold))
        splits[split] = _nonempty(rows, path, "openbookqa")
    return splits


def _local_hellaswag(root: Path, subject: None) -> dict[str, list[dict]]:
    folder = root / "hellaswag"
    paths = sorted(folder.glob("hellaswag_val*.txt"))
    if len(paths) != 1:
        if not paths:
            raise _missing(folder / "hellaswag_val*.txt", "hellaswag")
        raise BenchmarkDataError(
            f"hellaswag: several validation files in {folder}, keep one: {[p.name for p in paths]}"
        )
    lines = list(_lines(paths[0], "hellaswag"))
    if len(lines) % 6:
        row = lines[len(lines) - len(lines) % 6][0]
        raise row.fail(f"an incomplete task ({len(lines)} lines is not a multiple of 6)")
    rows = []
    for start in range(0, len(lines), 6):
        (row, ctx), (label_row, label) = lines[start], lines[start + 1]
        endings = [line for _, line in lines[start + 2 : start + 6]]
        rows.append(
            {
                "ctx": row.text(ctx, "ctx"),
                "endings": row.texts(endings, "endings", 4),
                "gold": label_row.index(label, 4, "label"),
            }
        )
    return {"validation": _nonempty(rows, paths[0], "hellaswag")}


def _local_winogrande(root: Path, subject: None) -> dict[str, list[dict]]:
    path = root / "winogrande" / "winogrande_dev.jsonl"
    rows = [
        _winogrande(row, row.get(r, "context_options"), row.get(r, "continuation"), row.get(r, "gold"))
        for row, r in _json_lines(path, "winogrande")
    ]
    return {"validation": _nonempty(rows, path, "winogrande")}


def _race_file(path: Path) -> list[dict]:
    """One row per question of the per-passage records."""
    rows = []
    for row, passage in _json_lines(path, "race"):
        questions, options, answers = (row.get(passage, key) for key in ("questions", "options", "answers"))
        if not all(isinstance(v, list) for v in (questions, options, answers)) or not (
            len(questions) == len(options) == len(answers) > 0
        ):
            raise row.fail("questions, options and answers are not non-empty lists of the same length")
        article = row.get(passage, "article")
        for i, fields in enumerate(zip(questions, options, answers), 1):
            rows.append(_race(_Row(f"{row.where} (question {i})", row.form), article, *fields))
    return _nonempty(rows, path, "race")


def _local_race(root: Path, level: str) -> dict[str, list[dict]]:
    """`fewshot` from the same level's train file, else the other level's dev file: never the evaluated passages."""
    folder, other = root / "race", {"high": "middle", "middle": "high"}[level]
    train = folder / f"race_train_{level}.jsonl.gz"
    fewshot = train if train.is_file() else folder / f"race_dev_{other}.jsonl.gz"
    return {"test": _race_file(folder / f"race_dev_{level}.jsonl.gz"), "fewshot": _race_file(fewshot)}


def _local_c3(root: Path, subject: None) -> dict[str, list[dict]]:
    rows = []
    for source in ("d", "m"):
        path, part = root / "c3" / f"c3-{source}-dev.json", []
        for row, item in _json_array(path, "c3"):
            if not isinstance(item, list) or len(item) != 3 or not isinstance(item[1], list) or not item[1]:
                raise row.fail("an item that is not [documents, questions, id]")
            for i, question in enumerate(item[1], 1):
                part.append(_c3(_Row(f"{row.where} (question {i})", row.form), item[0], question, source))
        rows += _nonempty(part, path, "c3")
    return {"validation": rows}


def _local_chid(root: Path, subject: None) -> dict[str, list[dict]]:
    splits = {}
    for split, name in (("validation", "dev_few_all.json"), ("train", "train_few_all.json")):
        path, rows = root / "chid" / name, []
        if split == "train" and not path.is_file():
            continue
        for row, record in _json_lines(path, "chid"):
            content = row.text(row.get(record, "content"), "content")
            if content.count("#idiom#") != 1:
                raise row.fail(f"content has {content.count('#idiom#')} #idiom# blanks, not 1")
            prefix, suffix = content.split("#idiom#")
            candidates = row.texts(row.get(record, "candidates"), "candidates")
            gold = row.index(row.get(record, "answer"), len(candidates), "answer")
            rows.append({"prefix": prefix, "suffix": suffix, "candidates": candidates, "gold": gold})
        splits[split] = _nonempty(rows, path, "chid")
    return splits


def _local_ccpm(root: Path, subject: None) -> dict[str, list[dict]]:
    path = root / "ccpm" / "valid.jsonl"
    rows = [
        _mc(row, "translation", row.get(r, "translation"), row.get(r, "choices"), row.get(r, "answer"))
        for row, r in _json_lines(path, "ccpm")
    ]
    return {"validation": _nonempty(rows, path, "ccpm")}


_LOCAL: dict[str, Callable[[Path, str | None], dict[str, list[dict]]]] = {
    "mmlu": _local_mmlu,
    "cmmlu": _local_cmmlu,
    "ceval": _local_ceval,
    "arc": _local_arc,
    "piqa": _local_piqa,
    "openbookqa": _local_openbookqa,
    "hellaswag": _local_hellaswag,
    "winogrande": _local_winogrande,
    "race": _local_race,
    "c3": _local_c3,
    "chid": _local_chid,
    "ccpm": _local_ccpm,
}


# ---------------------------------------------------------------------------------------------------------------------
# Public API


def _data_root(data_dir: str | os.PathLike | None, benchmark: str) -> Path | None:
    """`data_dir`, else $DEEPSEEK_HF_EVAL_DATA; None when neither is set."""
    value = data_dir if data_dir not in (None, "") else os.environ.get(ENV_VAR, "")
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        source = "data_dir" if data_dir not in (None, "") else f"${ENV_VAR}"
        raise BenchmarkDataError(
            f"{benchmark}: data folder not found: {root} (from {source}; a folder given as data_dir or ${ENV_VAR} "
            f"must be laid out like {LAYOUT[benchmark]})"
        )
    return root


def _check_names(benchmark: str, subject: str | None) -> None:
    if benchmark not in FEATURES:
        raise BenchmarkDataError(f"unknown benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")
    if benchmark in LEVELS:
        if subject not in LEVELS[benchmark]:
            raise BenchmarkDataError(
                f"{benchmark}: unknown subject {subject!r}; valid: {', '.join(LEVELS[benchmark])}"
            )
    elif benchmark in SUBJECT_FILES:
        if not isinstance(subject, str) or not _SUBJECT_NAME.fullmatch(subject):
            raise BenchmarkDataError(f"{benchmark} needs a subject (a name like 'anatomy'), got {subject!r}")
    elif subject is not None:
        raise BenchmarkDataError(f"{benchmark} takes no subject, got {subject!r}")


def available_subjects(benchmark: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The mmlu / cmmlu / ceval subjects with at least one file in the local folder, sorted (a subject lacking a
    split's file is listed: loading it then names the missing file)."""
    if benchmark not in SUBJECT_FILES:
        raise BenchmarkDataError(f"available_subjects covers {', '.join(SUBJECT_FILES)}, not {benchmark!r}")
    root = _data_root(data_dir, benchmark)
    if root is None:
        raise BenchmarkDataError(f"no local data folder: pass data_dir or set ${ENV_VAR} (layout {LAYOUT[benchmark]})")
    subjects, folders = set(), []
    for template in SUBJECT_FILES[benchmark].values():
        folder = (root / template).parent
        prefix, suffix = Path(template).name.split("{subject}")
        folders.append(folder)
        if folder.is_dir():
            subjects.update(
                p.name[len(prefix) : -len(suffix)]
                for p in folder.iterdir()
                if p.name.startswith(prefix) and p.name.endswith(suffix) and len(p.name) > len(prefix) + len(suffix)
            )
    if not any(folder.is_dir() for folder in folders):
        raise _missing(folders[0], benchmark)
    return sorted(subjects)


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _load_hub(benchmark: str, subject: str | None) -> dict[str, list[dict]]:
    spec = HUB[benchmark]
    splits: dict[str, list[dict]] = {}
    for split, hub_split in spec.splits.items():
        rows = []
        for template, convert in spec.configs.items():
            config = template and template.format(subject=subject, Subject=(subject or "").capitalize())
            for i, record in enumerate(datasets.load_dataset(spec.repo, config, split=hub_split), 1):
                where = f"{spec.repo} ({config or 'default'}, split {hub_split}) row {i}"
                converted = convert(record, _Row(where, f"Hub rows {spec.form}"))
                rows.extend(converted if isinstance(converted, list) else [converted])
        if not rows:
            raise BenchmarkDataError(f"{spec.repo} ({subject or 'default'}, split {hub_split}): no items")
        splits[split] = rows
    return splits


def load_benchmark(
    benchmark: str, subject: str | None = None, data_dir: str | os.PathLike | None = None, **ignored: Any
) -> datasets.DatasetDict:
    """The normalized splits of one benchmark (see `FEATURES` for the fields; `subject` is the mmlu / cmmlu / ceval
    subject, easy|challenge for arc, high|middle for race).

    Reads `data_dir`, else $DEEPSEEK_HF_EVAL_DATA; without either, the Hugging Face Hub unless offline. Other keyword
    arguments (lm-eval passes the model arguments and the task version) are ignored.
    """
    _check_names(benchmark, subject)
    root = _data_root(data_dir, benchmark)
    if root is not None:
        if benchmark in SUBJECT_FILES and subject not in (subjects := available_subjects(benchmark, root)):
            folder = (root / SUBJECT_FILES[benchmark]["dev"]).parent.parent
            raise BenchmarkDataError(f"{benchmark}: no files for subject {subject!r} in {folder}; present: {subjects}")
        splits = _LOCAL[benchmark](root, subject)
    elif _offline():
        raise BenchmarkDataError(
            f"{benchmark}: offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and no local data: set ${ENV_VAR} to a "
            f"folder laid out like cmmlu/test/<subject>.csv, mmlu/test/<subject>_test.csv, ...; for {benchmark}: "
            f"{LAYOUT[benchmark]}"
        )
    elif benchmark not in HUB:
        raise BenchmarkDataError(
            f"{benchmark}: no Hugging Face Hub copy in its original form could be confirmed; set ${ENV_VAR} to a "
            f"folder holding {LAYOUT[benchmark]}"
        )
    else:
        splits = _load_hub(benchmark, subject)
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_list(rows, features=FEATURES[benchmark]) for split, rows in splits.items()}
    )
