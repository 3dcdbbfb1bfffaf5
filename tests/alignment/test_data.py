"""Conversion of the instruction / preference formats to TRL's, the counted skips, the mixture and its errors."""

from __future__ import annotations

import json

import pytest

from deepseek_hf.alignment.data import convert_dataset, read_records
from deepseek_hf.alignment.mixture import build_mixture, parse_dataset_specs

U, A, S = "user", "assistant", "system"


def _write(path, records, jsonl=True):
    with open(path, "w", encoding="utf-8") as handle:
        if jsonl:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        else:
            json.dump(records, handle, ensure_ascii=False)
    return str(path)


def test_alpaca_with_input_system_and_history(tmp_path):
    path = _write(
        tmp_path / "a.jsonl",
        [
            {"instruction": "Add.", "input": "2 and 3", "output": "5"},
            {"instruction": "Hi", "input": "", "output": "Hello", "system": "Be brief.", "history": [["q", "a"]]},
        ],
    )
    records, report = convert_dataset(path, "alpaca")
    assert records[0] == {"messages": [{"role": U, "content": "Add.\n\n2 and 3"}, {"role": A, "content": "5"}]}
    assert [(m["role"], m["content"]) for m in records[1]["messages"]] == [
        (S, "Be brief."), (U, "q"), (A, "a"), (U, "Hi"), (A, "Hello")
    ]  # fmt: skip
    assert (report.records, report.usable, dict(report.skipped)) == (2, 2, {})


def test_sharegpt_roles_map_and_bad_turns_are_counted(tmp_path):
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    records = [
        good,
        {"conversations": [{"from": "human", "value": "x"}, {"from": "function_call", "value": "{}"}]},
        {"conversations": [{"value": "no role"}, {"from": "gpt", "value": "y"}]},
        {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "   "}]},
        {"conversations": [{"from": "human", "value": "x"}]},
        {"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "y"}]},
        ["not", "an", "object"],
    ]
    converted, report = convert_dataset(_write(tmp_path / "s.json", records, jsonl=False), "auto")
    assert report.format == "sharegpt"
    assert converted == [{"messages": [{"role": U, "content": "hi"}, {"role": A, "content": "hello"}]}]
    assert dict(report.skipped) == {
        "unknown_role": 1, "missing_role": 1, "empty_response": 1, "no_response": 1, "malformed": 2
    }  # fmt: skip
    assert report.usable == 1 and len(report.examples) == 5 and "function_call" in report.examples[0]


def test_messages_multi_turn_and_unknown_role(tmp_path):
    turns = [{"role": U, "content": "a"}, {"role": A, "content": "b"}, {"role": U, "content": "c"}]
    path = _write(
        tmp_path / "m.jsonl",
        [
            {"messages": [*turns, {"role": A, "content": "d"}]},
            {"messages": [*turns, {"role": "tool", "content": "d"}]},
            {"messages": [{"role": A, "content": "no user"}]},
        ],
    )
    records, report = convert_dataset(path, "messages")
    assert len(records[0]["messages"]) == 4 and dict(report.skipped) == {"unknown_role": 1, "empty_prompt": 1}


def test_preference_forms_and_identical_pairs(tmp_path):
    path = _write(
        tmp_path / "p.jsonl",
        [
            {"prompt": "Say hi", "chosen": "hi", "rejected": "bye"},
            {"prompt": [{"role": U, "content": "Q"}], "chosen": [{"role": A, "content": "good"}], "rejected": "bad"},
            {"prompt": "Say hi", "chosen": "same ", "rejected": "same"},
            {"prompt": "", "chosen": "a", "rejected": "b"},
            {"prompt": "x", "chosen": "", "rejected": "b"},
        ],
    )
    records, report = convert_dataset(path, "preference", kind="dpo")
    assert records[0] == {
        "prompt": [{"role": U, "content": "Say hi"}],
        "chosen": [{"role": A, "content": "hi"}],
        "rejected": [{"role": A, "content": "bye"}],
    }
    assert records[1]["rejected"] == [{"role": A, "content": "bad"}]
    assert dict(report.skipped) == {"identical_pair": 1, "empty_prompt": 1, "empty_response": 1}


def test_llama_factory_preference_demo_as_shipped():
    records, report = convert_dataset("package://align_demo/dpo_en.json", "auto", kind="dpo")
    assert report.format == "sharegpt_preference" and report.records == 40 and report.usable == 40
    multi_turn = [r for r in records if len(r["prompt"]) > 1]
    assert multi_turn and all(r["prompt"][-1]["role"] == U for r in records)
    assert all(r["chosen"][0]["role"] == A and r["chosen"] != r["rejected"] for r in records)


def test_over_long_records_are_dropped_and_counted(tmp_path):
    path = _write(tmp_path / "a.jsonl", [{"instruction": "q" * n, "output": "a"} for n in (5, 50, 500)])
    length = lambda record: sum(len(m["content"]) for m in record["messages"])  # noqa: E731  (chars as "tokens")
    records, report = convert_dataset(path, "alpaca", length_fn=length, max_length=60)
    assert (
        len(records) == 2
        and dict(report.skipped) == {"too_long": 1}
        and "501 tokens > max_length 60" in str(report.examples)
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"instruction": "a", "output": "b"}\n{"instruction": ', "line 2 is not valid JSON"),
        ('[{"instruction": "a", "output": "b"},', "not valid JSON"),
        ('{"data": [{"instruction": "a"}]}', "a single JSON object"),
    ],
)
def test_malformed_files_are_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        read_records(str(path))
    assert "bad.jsonl" in str(error.value)


def test_a_dataset_with_no_usable_record_is_an_error(tmp_path):
    path = _write(tmp_path / "empty.jsonl", [{"instruction": "a", "output": ""}, {"instruction": "", "output": "b"}])
    with pytest.raises(ValueError, match=r"no usable record \(2 read; empty_prompt 1, empty_response 1\)"):
        convert_dataset(path, "alpaca")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        convert_dataset(str(tmp_path / "missing.jsonl"))


def test_format_must_fit_the_stage(tmp_path):
    path = _write(tmp_path / "a.jsonl", [{"instruction": "a", "output": "b"}])
    with pytest.raises(ValueError, match="not preference data for DPO"):
        convert_dataset(path, "auto", kind="dpo")
    with pytest.raises(ValueError, match="cannot tell the format"):
        convert_dataset(_write(tmp_path / "x.jsonl", [{"text": "a"}]), "auto")


def test_mixture_weights_selection_and_report(tmp_path):
    general = _write(tmp_path / "g.jsonl", [{"instruction": f"g{i}", "output": "x"} for i in range(10)])
    math = _write(tmp_path / "m.jsonl", [{"instruction": f"m{i}", "output": "x"} for i in range(4)] + [{"bad": 1}])
    chat = _write(tmp_path / "d.jsonl", [{"messages": [{"role": U, "content": "c"}, {"role": A, "content": "d"}]}])
    specs = parse_dataset_specs(
        [
            {"path": general, "category": "general", "weight": 0.5},
            {"path": math, "category": "math", "format": "alpaca", "weight": 2.5},
            {"path": chat, "category": "dialogue", "weight": 3},
        ]
    )
    mixture = build_mixture(specs, kind="sft")
    counts = {d["name"]: (d["usable"], d["used"]) for d in mixture.report["datasets"]}
    assert counts == {"g.jsonl": (10, 5), "m.jsonl": (4, 10), "d.jsonl": (1, 3)}
    assert mixture.report["by_category"] == {"dialogue": 3, "general": 5, "math": 10}
    assert mixture.report["skipped_total"] == 1 and len(mixture.records) == 18
    instructions = [r["messages"][0]["content"] for r in mixture.records if r["category"] == "math"]
    assert sorted(set(instructions)) == ["m0", "m1", "m2", "m3"] and len(instructions) == 10  # 2 copies + half
    assert build_mixture(specs, kind="sft").records == mixture.records  # seeded

    stage2 = build_mixture(specs, kind="sft", categories=["dialogue"])
    assert {r["category"] for r in stage2.records} == {"dialogue"}
    assert [d["name"] for d in stage2.report["datasets"]] == ["d.jsonl"]
    assert {d["category"] for d in stage2.report["not_selected"]} == {"general", "math"}
    with pytest.raises(ValueError, match="no dataset in the selected categories"):
        build_mixture(specs, kind="sft", categories=["safety"])
    with pytest.raises(ValueError, match="unknown categories"):
        build_mixture(specs, kind="sft", categories=["chat"])


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"path": "x.json", "category": "general", "wieght": 2}, "wieght"),
        ({"path": "x.json", "category": "poetry"}, "unknown category 'poetry'"),
        ({"path": "x.json", "category": "math", "weight": 0}, "weight must be a positive number"),
        ({"path": "x.json", "category": "math", "format": "csv"}, "unknown format 'csv'"),
        ({"path": "x.json"}, "no 'category'"),
        ("not json", "not a JSON object"),
    ],
)
def test_bad_dataset_entries_are_errors(entry, message):
    with pytest.raises(ValueError, match=message):
        parse_dataset_specs([entry])
