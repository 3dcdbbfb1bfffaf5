import gzip
import json

import pytest

from deepseek_hf.data.config import IngestConfig, InputConfig
from deepseek_hf.data.errors import INPUT_ERROR
from deepseek_hf.data.readers import make_reader, pseudo_dump

QUIET = IngestConfig(progress=False, pseudo_dumps=4)


def read_all(spec: InputConfig, ingest: IngestConfig = QUIET, world_size: int = 1):
    docs = []
    for rank in range(world_size):
        docs += list(make_reader(spec, ingest).run(None, rank, world_size))
    return docs


def errors(docs):
    return sorted(d.metadata[INPUT_ERROR] for d in docs if INPUT_ERROR in d.metadata)


BAD_LINES = [
    {"id": "ok", "text": "a valid document", "source": "web", "dump": "CC-1", "url": "u"},
    b'{"text": "unterminated\n',
    {"id": "no-text"},
    {"id": "empty", "text": ""},
    b'{"id": "latin1", "text": "caf\xe9"}\n',
    b"[1, 2, 3]\n",
    b"\n",
    {"id": "number", "text": 12},
    {"id": "poem", "text": ["line one", "line two"]},
]


def test_every_bad_line_becomes_a_tagged_document(tmp_path, dh):
    path = dh.write_jsonl(tmp_path / "in.jsonl.gz", BAD_LINES, compress=True)
    docs = read_all(InputConfig(path=str(path)))
    assert len(docs) == len(BAD_LINES) - 1  # the blank line is only counted
    assert errors(docs) == ["bad_text_type", "invalid_utf8", "malformed_json", "missing_text", "not_a_json_object"]
    ok = next(d for d in docs if d.id == "ok")
    assert (ok.text, ok.metadata["dump"], ok.metadata["source"], ok.metadata["url"]) == (
        "a valid document",
        "CC-1",
        "web",
        "u",
    )
    assert next(d for d in docs if d.id == "poem").text == "line one\nline two"
    assert next(d for d in docs if d.id == "empty").text == ""  # left to the validator ("empty")


def test_invalid_utf8_replace_mode_keeps_the_document(tmp_path, dh):
    path = dh.write_jsonl(tmp_path / "in.jsonl", [b'{"id": "latin1", "text": "caf\xe9"}\n'])
    (doc,) = read_all(InputConfig(path=str(path)), IngestConfig(progress=False, invalid_utf8="replace"))
    assert doc.text == "caf\ufffd" and doc.metadata["repaired_utf8"] and INPUT_ERROR not in doc.metadata


def test_truncated_gzip_keeps_what_was_read_and_reports_the_loss(tmp_path, dh):
    full = dh.write_jsonl(
        tmp_path / "full.jsonl.gz", [{"id": str(i), "text": "x" * 2000 + str(i)} for i in range(200)], compress=True
    )
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    docs = read_all(InputConfig(path=str(cut)))
    assert errors(docs) == ["corrupt_file"]
    good = [d for d in docs if INPUT_ERROR not in d.metadata]
    assert 0 < len(good) < 200 and [d.id for d in good] == [str(i) for i in range(len(good))]


def test_labels_fixed_from_fields_or_pseudo_dumps(tmp_path, dh):
    path = dh.write_jsonl(tmp_path / "my_corpus.jsonl", [{"id": f"d{i}", "text": "t"} for i in range(50)])
    docs = read_all(InputConfig(path=str(path)))
    assert {d.metadata["source"] for d in docs} == {"my_corpus"}  # the file name when there is no source field
    assert all(d.metadata["dump"] == pseudo_dump(d.id, 4) for d in docs)
    assert len({d.metadata["dump"] for d in docs}) == 4
    fixed = read_all(InputConfig(path=str(path), dump="CC-7", source="books"))
    assert {(d.metadata["dump"], d.metadata["source"]) for d in fixed} == {("CC-7", "books")}


def test_one_file_is_split_by_lines_between_tasks(tmp_path, dh):
    path = dh.write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": f"doc {i}"} for i in range(10)])
    single = [d.id for d in read_all(InputConfig(path=str(path)))]
    three = [d.id for d in read_all(InputConfig(path=str(path)), world_size=3)]
    assert sorted(three) == sorted(single) and len(three) == 10


def test_exact_file_name_is_not_a_suffix_match(tmp_path, dh):
    dh.write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "x"}])
    dh.write_jsonl(tmp_path / "old_in.jsonl", [{"id": "b", "text": "y"}])
    assert [d.id for d in read_all(InputConfig(path=str(tmp_path / "in.jsonl")))] == ["a"]
    assert sorted(d.id for d in read_all(InputConfig(path=str(tmp_path)))) == ["a", "b"]


def test_parquet_reader(tmp_path, dh):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": ["p0", "p1"], "text": ["first", None], "dump": ["CC-1", "CC-2"], "source": ["a", "b"]})
    pq.write_table(table, tmp_path / "x.parquet")
    docs = read_all(InputConfig(path=str(tmp_path / "x.parquet")))
    assert [(d.id, d.metadata["dump"], d.metadata["source"]) for d in docs] == [
        ("p0", "CC-1", "a"),
        ("p1", "CC-2", "b"),
    ]
    assert errors(docs) == ["missing_text"]


def test_datasets_reader_saved_dataset_and_split(tmp_path, dh):
    from datasets import Dataset, DatasetDict

    rows = {"text": [f"row {i}" for i in range(6)], "source": ["s"] * 6}
    DatasetDict({"train": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    spec = InputConfig(path=str(tmp_path / "dd"))
    assert spec.resolved_format == "datasets"
    one = sorted((d.id, d.text) for d in read_all(spec))
    two = sorted((d.id, d.text) for d in read_all(spec, world_size=2))
    assert sorted(t for _, t in one) == rows["text"] and one == two  # ids from content: independent of the sharding
    with pytest.raises(ValueError, match="no split 'test'"):
        read_all(InputConfig(path=str(tmp_path / "dd"), split="test"))


def test_missing_input_is_a_clear_error(tmp_path, dh):
    with pytest.raises(FileNotFoundError, match="no files match"):
        InputConfig(path=str(tmp_path / "nope.jsonl")).check_exists()


def test_a_missing_input_is_named_as_written_not_glob_escaped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        InputConfig(path="does_not_exist.jsonl").check_exists()
    assert str(info.value) == (
        f"input does_not_exist.jsonl: no files match (no such file: {tmp_path / 'does_not_exist.jsonl'})"
    )
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^input data/: no files match \(\*\*/\*\.jsonl\* in "):
        InputConfig(path="data/").check_exists()


def test_package_paths_resolve_to_shipped_files():
    spec = InputConfig(path="package://demo/corpus_sample.jsonl.gz")
    spec.check_exists()
    with gzip.open(spec.resolved_path, "rt") as f:
        assert "text" in json.loads(f.readline())
