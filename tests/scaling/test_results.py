"""The results table of a scaling study: validated rows, atomic appends, JSONL and CSV read back, clear errors."""

import csv
import json
import multiprocessing
import os

import pytest
from scaling_synthetic import isoflop_rows

from deepseek_hf.scaling import results as results_module
from deepseek_hf.scaling.results import (
    RESULT_FIELDS,
    append_result,
    csv_path_for,
    finished_runs,
    read_results,
    validate_result,
    write_results,
)


@pytest.fixture
def rows():
    return isoflop_rows(budgets=(1e13, 1e14), n_per_budget=3)


def test_append_then_read_back_jsonl_and_csv(tmp_path, rows):
    path = tmp_path / "sweep" / "results.jsonl"
    assert finished_runs(path) == set()  # a sweep that has not started
    rows[1]["extra"] = {"seed": 3, "note": 'a, "quoted" value'}
    for row in rows:
        append_result(path, row)
    from_jsonl = read_results(path)
    from_csv = read_results(csv_path_for(path))
    assert from_jsonl == from_csv
    assert [row["run"] for row in from_jsonl] == [row["run"] for row in rows]
    assert from_jsonl[1]["extra"] == rows[1]["extra"] and "extra" not in from_jsonl[0]
    assert from_jsonl[0]["train_loss"] is None and isinstance(from_jsonl[0]["n_layer"], int)
    assert from_jsonl[0]["eval_bpb"] == rows[0]["eval_bpb"]  # floats round-trip exactly through the CSV
    with open(csv_path_for(path), newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == (*RESULT_FIELDS, "extra")
    assert finished_runs(path) == {row["run"] for row in rows} == finished_runs(csv_path_for(path))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_append_refuses_a_run_already_in_the_table(tmp_path, rows):
    path = tmp_path / "results.jsonl"
    append_result(path, rows[0])
    with pytest.raises(ValueError, match="already in the table"):
        append_result(path, rows[0])
    assert len(read_results(path)) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rat": 1e-3}, "unknown column.*'learning_rat'"),
        ({"eval_bpb": "1.2"}, "'eval_bpb'.*expected a number"),
        ({"n_layer": True}, "'n_layer'.*expected a number"),
        ({"n_layer": 2.5}, "'n_layer'.*expected an integer"),
        ({"eval_loss": float("nan")}, "'eval_loss'.*finite"),
        ({"tokens": -1.0}, "'tokens'.*positive"),
        ({"kind": "sweep"}, "'kind'.*grid, isoflop, schedule, predict"),
        ({"run": ""}, "'run'.*non-empty string"),
        ({"flops": 1.0}, "'flops'.*model_scale \\* tokens"),
        ({"extra": [1, 2]}, "'extra'.*expected a dict"),
    ],
)
def test_bad_rows_are_refused_naming_the_column(tmp_path, rows, change, message):
    path = tmp_path / "results.jsonl"
    with pytest.raises(ValueError, match=message):
        append_result(path, {**rows[0], **change})
    assert not path.exists()


def test_missing_column_is_refused(rows):
    row = dict(rows[0])
    del row["eval_bpb"]
    with pytest.raises(ValueError, match="missing column.*'eval_bpb'"):
        validate_result(row)


def test_write_results_refuses_duplicates_and_a_non_jsonl_path(tmp_path, rows):
    with pytest.raises(ValueError, match="duplicate run name"):
        write_results(tmp_path / "results.jsonl", [rows[0], rows[0]])
    with pytest.raises(ValueError, match="ending in .jsonl"):
        write_results(tmp_path / "results.json", rows)


def test_a_crash_while_writing_leaves_the_old_table(tmp_path, rows, monkeypatch):
    path = tmp_path / "results.jsonl"
    append_result(path, rows[0])
    before = path.read_bytes(), csv_path_for(path).read_bytes()

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(results_module.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        append_result(path, rows[1])
    monkeypatch.undo()
    assert (path.read_bytes(), csv_path_for(path).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.jsonl", "results.jsonl.lock"]


def _append_many(path, rows):
    for row in rows:
        append_result(path, row)


def test_concurrent_appends_from_several_processes_all_land(tmp_path):
    rows = isoflop_rows(budgets=(1e13, 3e13, 1e14, 3e14), n_per_budget=6)
    path = tmp_path / "results.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, rows[i::4])) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert finished_runs(path) == {row["run"] for row in rows}
    assert len(read_results(csv_path_for(path))) == len(rows)


def test_read_errors_are_clear(tmp_path, rows):
    with pytest.raises(FileNotFoundError, match="no results table"):
        read_results(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_results(empty)
    assert finished_runs(empty) == set()
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_results(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match=".jsonl or a .csv"):
        (tmp_path / "results.txt").write_text("x")
        read_results(tmp_path / "results.txt")


def test_a_torn_last_line_is_named(tmp_path, rows):
    path = tmp_path / "results.jsonl"
    write_results(path, rows[:2])
    text = json.dumps(rows[2])
    with open(path, "a") as handle:
        handle.write(text[: len(text) // 2])  # what a non-atomic writer killed mid-row would leave
    with pytest.raises(ValueError, match="line 3: not valid JSON.*torn write"):
        read_results(path)
    with pytest.raises(ValueError, match="torn write"):
        append_result(path, rows[2])  # a damaged table is reported, not extended
    with pytest.raises(ValueError, match="torn write"):
        finished_runs(path)


def test_duplicate_runs_in_a_hand_edited_table(tmp_path, rows):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in (rows[0], rows[1], rows[0])))
    with pytest.raises(ValueError, match="duplicate run name"):
        read_results(path)


def _csv_table(tmp_path, rows, edit):
    path = tmp_path / "results.jsonl"
    write_results(path, rows)
    lines = csv_path_for(path).read_text().splitlines()
    csv_path_for(path).write_text("\n".join(edit(lines)) + "\n")
    return csv_path_for(path)


def test_mismatched_csv_tables(tmp_path, rows):
    renamed = _csv_table(tmp_path, rows, lambda lines: [lines[0].replace("eval_bpb", "bpb"), *lines[1:]])
    with pytest.raises(ValueError, match="unknown column.*'bpb'.*missing column.*'eval_bpb'"):
        read_results(renamed)
    short = _csv_table(tmp_path, rows, lambda lines: [*lines[:-1], lines[-1].rsplit(",", 3)[0]])
    with pytest.raises(ValueError, match=f"line {len(rows) + 1}: 16 values for 19 columns"):
        read_results(short)
    position = RESULT_FIELDS.index("eval_bpb")

    def garble(lines):
        cells = lines[1].split(",")
        cells[position] = "n/a"
        return [lines[0], ",".join(cells), *lines[2:]]

    with pytest.raises(ValueError, match="line 2, column 'eval_bpb': not a number: 'n/a'"):
        read_results(_csv_table(tmp_path, rows, garble))
    header_only = _csv_table(tmp_path, rows, lambda lines: lines[:1])
    with pytest.raises(ValueError, match="empty"):
        read_results(header_only)
    assert os.path.exists(tmp_path / "results.jsonl")
