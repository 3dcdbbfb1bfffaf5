"""Benchmark loaders: item counts and first rows against the real files, one error per kind of fault, Hub converters.

Real data comes from the `shared_data` fixture; the Hub is never reached (`datasets.load_dataset` is replaced).
"""

import csv
import gzip
import json

import datasets
import pytest

from deepseek_hf.eval import benchmarks
from deepseek_hf.eval.benchmarks import ENV_VAR, FEATURES, BenchmarkDataError, available_subjects, load_benchmark

# SOURCE.md of each folder: items per split (mmlu / cmmlu / ceval: summed over the subjects present)
SUBJECT_COUNTS = {
    "mmlu": (47, {"dev": 235, "val": 1354, "test": 12337}),
    "cmmlu": (57, {"dev": 285, "test": 10043}),
    "ceval": (42, {"dev": 210, "val": 1070}),
}
COUNTS = {
    ("arc", "easy"): {"test": 2376},
    ("arc", "challenge"): {"test": 1172},
    ("piqa", None): {"validation": 1838},
    ("openbookqa", None): {"train": 4957, "validation": 500},
    ("hellaswag", None): {"validation": 1000},
    ("winogrande", None): {"validation": 1267},
    ("race", "high"): {"test": 3451, "fewshot": 1436},
    ("race", "middle"): {"test": 1436, "fewshot": 3451},
    ("c3", None): {"validation": 1825 + 1991},
    ("chid", None): {"validation": 202, "train": 202},
    ("ccpm", None): {"validation": 2720},
}


@pytest.fixture(scope="module")
def real(shared_data):
    """Loads each real benchmark once for the module."""
    cache = {}

    def load(benchmark, subject=None):
        if (benchmark, subject) not in cache:
            cache[benchmark, subject] = load_benchmark(benchmark, subject, data_dir=shared_data)
        return cache[benchmark, subject]

    return load


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


# ----------------------------------------------------------------------------------------------------------------------
# Real data


@pytest.mark.parametrize("benchmark", list(SUBJECT_COUNTS))
def test_subject_benchmark_counts_match_source(shared_data, benchmark):
    num_subjects, expected = SUBJECT_COUNTS[benchmark]
    subjects = available_subjects(benchmark, shared_data)
    assert len(subjects) == num_subjects and subjects == sorted(subjects)
    totals = dict.fromkeys(expected, 0)
    for subject in subjects:
        splits = load_benchmark(benchmark, subject, data_dir=shared_data, pretrained="m", dtype="bfloat16", version=1)
        assert list(splits) == list(expected)
        for split, dataset in splits.items():
            assert dataset.column_names == list(FEATURES[benchmark])
            totals[split] += len(dataset)
    assert totals == expected


@pytest.mark.parametrize(("benchmark", "subject"), list(COUNTS))
def test_counts_match_source(real, benchmark, subject):
    splits = real(benchmark, subject)
    assert {split: len(dataset) for split, dataset in splits.items()} == COUNTS[benchmark, subject]
    for dataset in splits.values():
        assert dataset.column_names == list(FEATURES[benchmark])


def test_mmlu_cmmlu_ceval_first_rows(shared_data):
    with open(shared_data / "mmlu/test/anatomy_test.csv", encoding="utf-8", newline="") as f:
        raw = next(csv.reader(f))
    row = load_benchmark("mmlu", "anatomy", data_dir=shared_data)["test"][0]
    assert row == dict(zip(["question", "A", "B", "C", "D", "answer"], raw))

    row = load_benchmark("cmmlu", "anatomy", data_dir=shared_data)["dev"][0]
    assert row == {
        "question": "壁胸膜的分部不包括",
        "A": "肋胸膜",
        "B": "肺胸膜",
        "C": "膈胸膜",
        "D": "胸膜顶",
        "answer": "B",
    }

    with open(shared_data / "ceval/dev/civil_servant_dev.csv", encoding="utf-8", newline="") as f:
        raw = next(csv.DictReader(f))
    row = load_benchmark("ceval", "civil_servant", data_dir=shared_data)["dev"][0]
    assert "explanation" in raw and "explanation" not in row
    assert row == {key: raw[key] for key in ["question", "A", "B", "C", "D", "answer"]}


def test_english_first_rows(real, shared_data):
    raw = json.loads((shared_data / "arc/arc_easy_test.jsonl").read_text(encoding="utf-8").split("\n")[0])
    row = real("arc", "easy")["test"][0]
    assert row == {"question": raw["query"].removeprefix("Question: "), "choices": raw["choices"], "gold": raw["gold"]}
    assert row["question"].startswith("Which statement best explains")

    assert real("piqa")["validation"][1] == {
        "goal": "dresser",
        "choices": ["replace drawer with bobby pin ", "finish, woodgrain with  bobby pin "],
        "gold": 1,
    }

    dev = (shared_data / "openbookqa/Main/dev.tsv").read_text(encoding="utf-8").split("\n")[1].split("\t")
    assert real("openbookqa")["validation"][0] == {
        "question": dev[1],
        "choices": ["Deep sea animals", "fish", "Long Sea Fish", "Far Sea Animals"],
        "gold": 0,
    }
    # train line 3334: choice D itself holds "(D)"; the four choices still split after the first (A) (B) (C) (D)
    odd = real("openbookqa")["train"][3332]
    assert odd["choices"][3] == "baby birds chewing worms (D) mother dogs nursing their pups" and odd["gold"] == 1

    lines = (shared_data / "hellaswag/hellaswag_val_first1000.txt").read_text(encoding="utf-8").split("\n")
    assert real("hellaswag")["validation"][0] == {"ctx": lines[0], "endings": lines[2:6], "gold": 3}
    assert real("hellaswag")["validation"][999]["ctx"] == lines[5994]

    assert real("winogrande")["validation"][0] == {
        "context_options": [
            "Sarah was a much better surgeon than Maria so Sarah",
            "Sarah was a much better surgeon than Maria so Maria",
        ],
        "continuation": "always got the easier cases.",
        "gold": 1,
    }


def test_race_one_row_per_question_and_fewshot_never_from_the_test_passages(real, shared_data):
    with gzip.open(shared_data / "race/race_dev_middle.jsonl.gz", "rt", encoding="utf-8") as f:
        passage = json.loads(f.readline())
    test = real("race", "middle")["test"]
    for i in range(len(passage["questions"])):
        assert test[i] == {
            "article": passage["article"],
            "question": passage["questions"][i],
            "options": passage["options"][i],
            "gold": "ABCD".index(passage["answers"][i]),
        }
    for level in ("high", "middle"):
        splits = real("race", level)
        assert not set(splits["test"]["article"]) & set(splits["fewshot"]["article"])


def test_chinese_first_rows(real, shared_data):
    c3 = real("c3")["validation"]
    assert c3[0] == {
        "context": "男：听说你们公司要派你去南方工作?\n女：是呀，虽说那边环境好，待遇也不错，可我还是觉得在家里最好。",
        "question": "他们在谈论什么?",
        "choices": ["旅行", "坏境", "工作", "家庭"],
        "gold": 2,
        "source": "d",
    }
    assert c3["source"].count("d") == 1825 and c3["source"].count("m") == 1991
    first_m = json.loads((shared_data / "c3/c3-m-dev.json").read_text(encoding="utf-8"))[0]
    assert c3[1825]["context"] == "\n".join(first_m[0]) and c3[1825]["question"] == first_m[1][0]["question"]

    raw = json.loads((shared_data / "chid/dev_few_all.json").read_text(encoding="utf-8").split("\n")[0])
    row = real("chid")["validation"][0]
    assert row["prefix"] + "#idiom#" + row["suffix"] == raw["content"]
    assert row["prefix"] == "有时候我给你" and row["candidates"] == raw["candidates"] and row["gold"] == raw["answer"]

    assert real("ccpm")["validation"][0] == {
        "translation": "昏暗的灯熄灭了又被重新点亮。",
        "choices": ["渔灯灭复明", "残灯灭又然", "残灯暗复明", "残灯灭又明"],
        "gold": 3,
    }


# ----------------------------------------------------------------------------------------------------------------------
# Malformed files: each fault names the file and the line (1-based)

MMLU_ROW = "What?,a,b,c,d,A\n"
CMMLU_HEADER = ",Question,A,B,C,D,Answer\n"
OBQA_HEADER = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
WINO = {"context_options": ["x a", "x b"], "continuation": "y.", "gold": 0}
CCPM = {"translation": "t", "choices": ["a", "b", "c", "d"], "answer": 0}


def _jsonl(*records) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _race_gz(*passages) -> bytes:
    return gzip.compress(_jsonl(*passages).encode())


PASSAGE = {"article": "Text.", "questions": ["Q1?", "Q2?"], "options": [list("abcd")] * 2, "answers": ["A", "B"]}
C3_DOC = [["对话"], [{"question": "问题?", "choice": ["甲", "乙"], "answer": "甲"}], "1-1"]

# name: (benchmark, subject, {relative path: content}, where the message must point, what it must say)
FAULTS = {
    "column count": ("mmlu", "anatomy", {"mmlu/dev/anatomy_dev.csv": MMLU_ROW + "Q,a,b,c,A\n"}, "line 2", "5 columns"),
    "answer letter": ("mmlu", "anatomy", {"mmlu/dev/anatomy_dev.csv": "Q,a,b,c,d,E\n"}, "line 1", "'E'"),
    "multi-line record": (
        "mmlu",
        "anatomy",
        {"mmlu/dev/anatomy_dev.csv": MMLU_ROW + '"two\nlines",a,b,c,d,A\n"Q\nz",a,b,,d,A\n'},
        "line 4",
        "empty options #3",
    ),
    "empty option": (
        "cmmlu",
        "anatomy",
        {"cmmlu/dev/anatomy.csv": CMMLU_HEADER + "0,问,甲,乙,丙,丁,A\n1,问,甲,,丙,丁,B\n"},
        "line 3",
        "empty options #2",
    ),
    "header": ("cmmlu", "anatomy", {"cmmlu/dev/anatomy.csv": "Question,A,B,C,D,Answer\n"}, "line 1", "header"),
    "empty question": (
        "ceval",
        "law",
        {"ceval/dev/law_dev.csv": "id,question,A,B,C,D,answer,explanation\n0, ,a,b,c,d,A,e\n"},
        "line 2",
        "empty question",
    ),
    "gold out of range": (
        "arc",
        "easy",
        {"arc/arc_easy_test.jsonl": _jsonl({"query": "Question: q", "choices": ["a", "b"], "gold": 2})},
        "line 1",
        "gold 2",
    ),
    "bad JSON": (
        "arc",
        "challenge",
        {"arc/arc_challenge_test.jsonl": _jsonl({"query": "Question: q", "choices": ["a", "b"], "gold": 1}) + "{x\n"},
        "line 2",
        "bad JSON",
    ),
    "query prefix": (
        "arc",
        "easy",
        {"arc/arc_easy_test.jsonl": _jsonl({"query": "q", "choices": ["a", "b"], "gold": 1})},
        "line 1",
        "Question: ",
    ),
    "label count": (
        "piqa",
        None,
        {
            "piqa/valid.jsonl": _jsonl(*[{"goal": "g", "sol1": "a", "sol2": "b"}] * 3),
            "piqa/valid-labels.lst": "0\n1\n",
        },
        "piqa/valid.jsonl, line 3",
        "3 items in valid.jsonl but 2 labels",
    ),
    "label value": (
        "piqa",
        None,
        {
            "piqa/valid.jsonl": _jsonl(*[{"goal": "g", "sol1": "a", "sol2": "b"}] * 2),
            "piqa/valid-labels.lst": "0\n2\n",
        },
        "piqa/valid-labels.lst, line 2",
        "label '2'",
    ),
    "choices form": (
        "openbookqa",
        None,
        {"openbookqa/Main/train.tsv": OBQA_HEADER + "1\tq\t(A) a (B) b (C) c\tq (A) a\tA\n"},
        "line 2",
        "Choices",
    ),
    "answer key": (
        "openbookqa",
        None,
        {"openbookqa/Main/train.tsv": OBQA_HEADER + "1\tq\t(A) a (B) b (C) c (D) d\tq\tF\n"},
        "line 2",
        "'F'",
    ),
    "incomplete task": (
        "hellaswag",
        None,
        {"hellaswag/hellaswag_val.txt": "A: ctx\n0\na\nb\nc\nd\nB: ctx\n1\na\n"},
        "line 7",
        "incomplete task",
    ),
    "label out of range": (
        "hellaswag",
        None,
        {"hellaswag/hellaswag_val.txt": "A: ctx\n4\na\nb\nc\nd\n"},
        "line 2",
        "label 4",
    ),
    "winogrande gold": (
        "winogrande",
        None,
        {"winogrande/winogrande_dev.jsonl": _jsonl(WINO, {**WINO, "gold": 2})},
        "line 2",
        "gold 2",
    ),
    "race answer": (
        "race",
        "high",
        {"race/race_dev_high.jsonl.gz": _race_gz(PASSAGE, {**PASSAGE, "answers": ["A", "E"]})},
        "line 2 (question 2)",
        "'E'",
    ),
    "race lengths": (
        "race",
        "high",
        {"race/race_dev_high.jsonl.gz": _race_gz({**PASSAGE, "answers": ["A"]})},
        "line 1",
        "same length",
    ),
    "broken gzip": ("race", "middle", {"race/race_dev_middle.jsonl.gz": b"\x1f\x8bnot gzip"}, "", "gzip"),
    "c3 answer": (
        "c3",
        None,
        {"c3/c3-d-dev.json": json.dumps([C3_DOC, [C3_DOC[0], [{**C3_DOC[1][0], "answer": "丙"}], "1-2"]], indent=1)},
        "line 18 (question 1)",
        "is not one of the choices",
    ),
    "c3 bad JSON": (
        "c3",
        None,
        {"c3/c3-d-dev.json": "[\n" + json.dumps(C3_DOC) + ",\n[oops]\n]"},
        "line 3",
        "bad JSON",
    ),
    "two blanks": (
        "chid",
        None,
        {"chid/dev_few_all.json": _jsonl({"candidates": ["甲", "乙"], "content": "#idiom#和#idiom#", "answer": 0})},
        "line 1",
        "2 #idiom# blanks",
    ),
    "no blank": (
        "chid",
        None,
        {"chid/dev_few_all.json": _jsonl({"candidates": ["甲", "乙"], "content": "没有", "answer": 0})},
        "line 1",
        "0 #idiom# blanks",
    ),
    "empty choice": (
        "ccpm",
        None,
        {"ccpm/valid.jsonl": _jsonl(CCPM, {**CCPM, "choices": ["a", "", "c", "d"]})},
        "line 2",
        "empty choices #2",
    ),
    "invalid UTF-8": (
        "ccpm",
        None,
        {"ccpm/valid.jsonl": _jsonl(CCPM).encode() + b'{"translation": "\xff"}\n'},
        "line 2",
        "invalid UTF-8",
    ),
    "blank line": ("ccpm", None, {"ccpm/valid.jsonl": _jsonl(CCPM) + "\n" + _jsonl(CCPM)}, "line 2", "blank line"),
    "missing field": ("ccpm", None, {"ccpm/valid.jsonl": _jsonl({"translation": "t"})}, "line 1", "'choices'"),
}


def _write(root, files):
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("fault", list(FAULTS))
def test_malformed_file_names_file_and_line(tmp_path, fault):
    benchmark, subject, files, where, problem = FAULTS[fault]
    _write(tmp_path, files)
    with pytest.raises(BenchmarkDataError) as error:
        load_benchmark(benchmark, subject, data_dir=tmp_path)
    message = str(error.value)
    # `where` is "line N" in the only file, or "<file>, line N" where the fault involves two files
    if "/" not in where:
        (relative,) = files
        where = f"{relative}, {where}" if where else relative
    assert f"{tmp_path / where}" in message
    assert problem in message and "expected" in message


def test_trailing_newlines_and_crlf_are_not_records(tmp_path):
    _write(tmp_path, {"ccpm/valid.jsonl": _jsonl(CCPM, CCPM).replace("\n", "\r\n") + "\r\n\n"})
    assert len(load_benchmark("ccpm", data_dir=tmp_path)["validation"]) == 2


# ----------------------------------------------------------------------------------------------------------------------
# Missing data, unknown names, offline


def test_missing_folder_and_files_name_the_path(tmp_path, monkeypatch):
    absent = tmp_path / "nowhere"
    with pytest.raises(BenchmarkDataError, match="DEEPSEEK_HF_EVAL_DATA") as error:
        load_benchmark("piqa", data_dir=absent)
    assert str(absent) in str(error.value) and "piqa" in str(error.value)

    monkeypatch.setenv(ENV_VAR, str(absent))
    with pytest.raises(BenchmarkDataError, match=f"from \\${ENV_VAR}"):
        load_benchmark("piqa")

    with pytest.raises(BenchmarkDataError, match="DEEPSEEK_HF_EVAL_DATA") as error:
        load_benchmark("piqa", data_dir=tmp_path)
    assert str(tmp_path / "piqa" / "valid.jsonl") in str(error.value)

    _write(tmp_path, {"piqa/valid.jsonl": _jsonl({"goal": "g", "sol1": "a", "sol2": "b"})})
    with pytest.raises(BenchmarkDataError, match="piqa: not found") as error:
        load_benchmark("piqa", data_dir=tmp_path)
    assert str(tmp_path / "piqa" / "valid-labels.lst") in str(error.value)

    _write(tmp_path, {"mmlu/dev/anatomy_dev.csv": MMLU_ROW, "mmlu/test/anatomy_test.csv": MMLU_ROW})
    with pytest.raises(BenchmarkDataError) as error:
        load_benchmark("mmlu", "anatomy", data_dir=tmp_path)
    assert str(tmp_path / "mmlu" / "val" / "anatomy_val.csv") in str(error.value)
    with pytest.raises(BenchmarkDataError, match=r"subject 'virology'.*present: \['anatomy'\]"):
        load_benchmark("mmlu", "virology", data_dir=tmp_path)
    with pytest.raises(BenchmarkDataError, match="DEEPSEEK_HF_EVAL_DATA") as error:
        available_subjects("ceval", tmp_path)
    assert str(tmp_path / "ceval" / "dev") in str(error.value)


def test_env_var_names_the_folder(tmp_path, monkeypatch):
    _write(tmp_path, {"winogrande/winogrande_dev.jsonl": _jsonl(WINO)})
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert load_benchmark("winogrande")["validation"][0] == WINO
    # race without a train file: few-shot examples from the other level's dev file
    _write(tmp_path, {"race/race_dev_high.jsonl.gz": _race_gz(PASSAGE), "race/race_dev_middle.jsonl.gz": b""})
    with pytest.raises(BenchmarkDataError, match="race_dev_middle.jsonl.gz: no items"):
        load_benchmark("race", "high")
    _write(tmp_path, {"race/race_train_high.jsonl.gz": _race_gz({**PASSAGE, "article": "Train."})})
    assert load_benchmark("race", "high")["fewshot"]["article"] == ["Train.", "Train."]


@pytest.mark.parametrize(
    ("benchmark", "subject", "pattern"),
    [
        ("mmlu_pro", None, "unknown benchmark 'mmlu_pro'; valid: mmlu, cmmlu, ceval, arc, piqa"),
        ("arc", "medium", "valid: easy, challenge"),
        ("race", None, "valid: high, middle"),
        ("piqa", "x", "takes no subject"),
        ("cmmlu", None, "needs a subject"),
        ("mmlu", "../etc", "needs a subject"),
    ],
)
def test_unknown_names_list_the_valid_ones(tmp_path, benchmark, subject, pattern):
    with pytest.raises(BenchmarkDataError, match=pattern):
        load_benchmark(benchmark, subject, data_dir=tmp_path)


def test_available_subjects_only_for_per_file_subjects(tmp_path):
    with pytest.raises(BenchmarkDataError, match="mmlu, cmmlu, ceval"):
        available_subjects("arc", tmp_path)


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_offline_without_local_data_says_what_to_set(monkeypatch, no_env, variable):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the Hub was asked"))
    with pytest.raises(BenchmarkDataError, match=r"set \$DEEPSEEK_HF_EVAL_DATA to a folder laid out like cmmlu/test/"):
        load_benchmark("cmmlu", "anatomy")
    with pytest.raises(BenchmarkDataError, match="for piqa: piqa/valid.jsonl"):
        load_benchmark("piqa")


# ----------------------------------------------------------------------------------------------------------------------
# Hub converters on fake rows shaped like the Hub's


@pytest.fixture
def hub(monkeypatch, no_env):
    """Online, with `datasets.load_dataset` answering from `rows[(repo, config, split)]`; `calls` records the asks."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    rows, calls = {}, []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return list(rows[path, name, split])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return rows, calls


def test_hub_mmlu_cmmlu_ceval(hub):
    rows, calls = hub
    mmlu = {"question": "Q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 2}
    for split in ("dev", "validation", "test"):
        rows["cais/mmlu", "anatomy", split] = [mmlu]
    splits = load_benchmark("mmlu", "anatomy", pretrained="x")
    assert list(splits) == ["dev", "val", "test"]
    assert splits["val"][0] == {"question": "Q?", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "C"}
    assert calls == [("cais/mmlu", "anatomy", split) for split in ("dev", "validation", "test")]

    cmmlu = {"Question": "问?", "A": "甲", "B": "乙", "C": "丙", "D": "丁", "Answer": "D"}
    rows["haonan-li/cmmlu", "arts", "dev"] = rows["haonan-li/cmmlu", "arts", "test"] = [cmmlu]
    assert load_benchmark("cmmlu", "arts")["test"][0] == {
        "question": "问?",
        **{k: cmmlu[k] for k in "ABCD"},
        "answer": "D",
    }

    ceval = {"id": 0, "question": "问?", "A": "1", "B": "2", "C": "3", "D": "4", "answer": "B", "explanation": "因为"}
    rows["ceval/ceval-exam", "law", "dev"] = rows["ceval/ceval-exam", "law", "val"] = [ceval]
    assert load_benchmark("ceval", "law")["val"][0] == {
        "question": "问?",
        "A": "1",
        "B": "2",
        "C": "3",
        "D": "4",
        "answer": "B",
    }

    rows["cais/mmlu", "anatomy", "dev"] = [mmlu, {**mmlu, "answer": 7}]
    with pytest.raises(BenchmarkDataError, match=r"cais/mmlu \(anatomy, split dev\) row 2: answer 7"):
        load_benchmark("mmlu", "anatomy")


def test_hub_arc_openbookqa_piqa(hub):
    rows, calls = hub
    arc = {
        "id": "x",
        "question": "Q?",
        "choices": {"text": ["a", "b", "c"], "label": ["1", "2", "3"]},
        "answerKey": "3",
    }
    rows["allenai/ai2_arc", "ARC-Challenge", "test"] = [arc]
    assert load_benchmark("arc", "challenge")["test"][0] == {"question": "Q?", "choices": ["a", "b", "c"], "gold": 2}
    assert calls[-1] == ("allenai/ai2_arc", "ARC-Challenge", "test")

    obqa = {
        "id": "7",
        "question_stem": "Stem",
        "choices": {"text": list("abcd"), "label": list("ABCD")},
        "answerKey": " B",
    }
    for split in ("train", "validation", "test"):
        rows["allenai/openbookqa", "main", split] = [obqa]
    splits = load_benchmark("openbookqa")
    assert list(splits) == ["train", "validation", "test"]
    assert splits["test"][0] == {"question": "Stem", "choices": list("abcd"), "gold": 1}

    rows["baber/piqa", None, "validation"] = [{"goal": "g", "sol1": "a", "sol2": "b", "label": 1}]
    assert load_benchmark("piqa")["validation"][0] == {"goal": "g", "choices": ["a", "b"], "gold": 1}

    rows["allenai/ai2_arc", "ARC-Easy", "test"] = [{**arc, "answerKey": "E"}]
    with pytest.raises(BenchmarkDataError, match=r"ARC-Easy, split test\) row 1: answerKey 'E'"):
        load_benchmark("arc", "easy")


def test_hub_hellaswag_matches_lm_eval_preprocessing(hub):
    lm_eval_hellaswag = pytest.importorskip("lm_eval.tasks.hellaswag.utils")
    rows, _ = hub
    raw = [
        {
            "ind": 4,
            "activity_label": "Removing ice from car",
            "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter "
            "clothes smiles.",
            "ctx_b": "then",
            "endings": [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift.", "x", "y"],
            "label": "3",
        },
        {
            "ind": 9,
            "activity_label": "Home and Garden",
            "ctx_a": "[header] How to clean a grill [title] Heat the grill. [step] Turn it on.",
            "ctx_b": "",
            "endings": ["[substeps] Scrub  it.", "Wait [title] then rinse.", "a", "b"],
            "label": "0",
        },
    ]
    rows["Rowan/hellaswag", None, "validation"] = raw
    got = load_benchmark("hellaswag")["validation"]
    expected = lm_eval_hellaswag.process_docs(datasets.Dataset.from_list(raw))
    assert (
        got["ctx"] == expected["query"] and got["endings"] == expected["choices"] and got["gold"] == expected["gold"]
    )
    assert got[0]["ctx"].endswith("smiles. Then")


def test_hub_winogrande_matches_lm_eval_partial_scoring(hub):
    lm_eval_winogrande = pytest.importorskip("lm_eval.tasks.winogrande.preprocess_winogrande")
    rows, _ = hub
    doc = {
        "sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
        "option1": "Sarah",
        "option2": "Maria",
        "answer": "2",
    }
    rows["allenai/winogrande", "winogrande_xl", "validation"] = [doc]
    row = load_benchmark("winogrande")["validation"][0]
    assert row["context_options"] == lm_eval_winogrande.doc_to_choice(doc)
    assert row["continuation"] == lm_eval_winogrande.doc_to_target(doc)
    assert row["gold"] == lm_eval_winogrande.doc_to_text(doc) == 1
    # the same item in the local (converted) file gives the same row
    assert row == {
        "context_options": [
            "Sarah was a much better surgeon than Maria so Sarah",
            "Sarah was a much better surgeon than Maria so Maria",
        ],
        "continuation": "always got the easier cases.",
        "gold": 1,
    }


def test_hub_race_and_c3(hub):
    rows, calls = hub
    question = {
        "example_id": "high1.txt",
        "article": "Text.",
        "question": "Q?",
        "options": list("abcd"),
        "answer": "C",
    }
    rows["ehovy/race", "high", "test"] = [question, {**question, "answer": "A"}]
    rows["ehovy/race", "high", "validation"] = [{**question, "article": "Other."}]
    splits = load_benchmark("race", "high")
    assert splits["test"]["gold"] == [2, 0] and splits["fewshot"]["article"] == ["Other."]
    assert splits["test"][0] == {"article": "Text.", "question": "Q?", "options": list("abcd"), "gold": 2}

    columns = {"question": ["问一?", "问二?"], "answer": ["乙", "丙"], "choice": [["甲", "乙"], ["甲", "乙", "丙"]]}
    rows["dataset-org/c3", "dialog", "validation"] = [
        {"documents": ["男：你好", "女：好"], "document_id": "1", "questions": columns}
    ]
    listed = [{"question": "问?", "answer": "丁", "choice": ["丙", "丁"]}]
    rows["dataset-org/c3", "mixed", "validation"] = [{"documents": ["段落"], "document_id": "2", "questions": listed}]
    c3 = load_benchmark("c3")["validation"]
    assert c3[0] == {
        "context": "男：你好\n女：好",
        "question": "问一?",
        "choices": ["甲", "乙"],
        "gold": 1,
        "source": "d",
    }
    assert c3["gold"] == [1, 2, 1] and c3["source"] == ["d", "d", "m"]

    rows["dataset-org/c3", "mixed", "validation"] = [
        {"documents": ["段落"], "questions": [{**listed[0], "answer": "戊"}]}
    ]
    with pytest.raises(BenchmarkDataError, match=r"dataset-org/c3 \(mixed, split validation\) row 1 \(question 1\)"):
        load_benchmark("c3")


@pytest.mark.parametrize("benchmark", ["chid", "ccpm"])
def test_no_confirmed_hub_copy_asks_for_local_data(hub, benchmark):
    with pytest.raises(BenchmarkDataError, match="DEEPSEEK_HF_EVAL_DATA") as error:
        load_benchmark(benchmark)
    assert benchmarks.LAYOUT[benchmark] in str(error.value)
    assert hub[1] == []
