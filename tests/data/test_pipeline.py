import gzip
import json
import shutil
from pathlib import Path

import pytest

from deepseek_hf.data import load_output
from deepseek_hf.data.filters import QualityFilter
from deepseek_hf.data.output import COMPLETE_MARKER
from deepseek_hf.data.pipeline import run_pipeline


def _mixed_corpus(dh, rng, tmp_path: Path) -> list[dict]:
    """Three files, two sources, two dumps, with exact, near and line-level duplicates across files."""
    texts = [dh.make_text(rng, 80) for _ in range(60)]
    files = []
    for f in range(3):
        records = []
        for i in range(20):
            k = f * 20 + i
            records.append(
                {"id": f"f{f}-{i}", "text": texts[k], "source": "web" if k % 3 else "books", "dump": f"CC-{k % 2}"}
            )
        records.append({"id": f"f{f}-copy", "text": texts[(f + 1) * 7 % 60].upper(), "dump": "CC-1"})
        records.append({"id": f"f{f}-near", "text": dh.near_copy(texts[(f + 2) * 5], rng), "dump": "CC-0"})
        records.append({"id": f"f{f}-boiler", "text": dh.make_text(rng, 60) + "\nSubscribe to our newsletter today!!"})
        files.append({"path": str(dh.write_jsonl(tmp_path / f"in{f}.jsonl.gz", records, compress=True))})
    return files


def test_output_contract_and_report(tmp_path, dh, rng):
    inputs = _mixed_corpus(dh, rng, tmp_path)
    root = run_pipeline(dh.fast_config(tmp_path, inputs, remix={"temperature": 2.0}))
    out = Path(root)
    manifest = json.loads((out / "output" / COMPLETE_MARKER).read_text())
    assert [s["file"] for s in manifest["shards"]] == ["00000.jsonl.gz"]

    ds = load_output(root)
    assert ds.column_names == ["text", "id", "metadata"] and ds.num_rows == manifest["documents"] > 0
    assert set(ds[0]["metadata"]) == {"dump", "source"}
    assert sum(1 for _ in load_output(root, streaming=True)) == ds.num_rows

    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["documents_in"] == 69 and report["totals"]["documents_out"] == ds.num_rows
    steps = report["steps"]
    assert [s["step"] for s in steps] == ["ingest", "dedup", "line_dedup", "quality", "remix"]
    for before, after in zip(steps, steps[1:]):
        assert before["documents_out"] == after["documents_in"] and before["characters_out"] == after["characters_in"]
    for step in steps:
        assert sum(d["documents_out"] for d in step["per_dump"].values()) == step["documents_out"]
        if step["step"] not in ("remix", "line_dedup"):  # remix adds copies; line dedup only shortens documents
            assert step["documents_in"] - step["documents_out"] == sum(step["dropped"].values())
    assert steps[1]["dropped"] == {"exact_duplicate": 3, "near_duplicate": 3}
    assert report["line_dedup"]["boilerplate_lines"] == 1 and report["line_dedup"]["lines_removed"] == 3
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    assert "| dedup | dedup_filter | 69 | 63 |" in markdown and "Dedup rate vs number of dumps" in markdown


def test_several_tasks_give_the_same_output_as_one(tmp_path, dh, rng):
    inputs = _mixed_corpus(dh, rng, tmp_path)
    sections = {"remix": {"temperature": 2.0}, "line_dedup": {"finder_workers": 2}}
    one = run_pipeline(dh.fast_config(tmp_path, inputs, "one", **sections))
    three = run_pipeline(dh.fast_config(tmp_path, inputs, "three", executor={"tasks": 3, "workers": 1}, **sections))
    reference = dh.output_records(one)
    assert len(reference) > 40
    assert dh.output_records(three) == reference
    assert len(list((Path(three) / "output").glob("*.jsonl.gz"))) == 3
    for step in ("dedup", "line_dedup", "quality", "remix"):
        ids = sorted(r["id"] for r in dh.excluded_records(one, step))
        assert sorted(r["id"] for r in dh.excluded_records(three, step)) == ids


def test_bad_input_is_counted_reported_and_audited(tmp_path, dh):
    bad = dh.write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "good", "text": "the river and the city of the people with a market"},
            b'{"text": "unterminated\n',
            {"id": "no-text"},
            {"id": "empty", "text": ""},
            {"id": "blank", "text": "  \n\t "},
            b'{"id": "latin1", "text": "caf\xe9 in the city of the river"}\n',
            {"id": "huge", "text": "x" * 50_000_000},  # a 50 MB single document
        ],
    )
    full = dh.write_jsonl(
        tmp_path / "t.jsonl.gz", [{"id": f"t{i}", "text": f"doc {i} " * 400} for i in range(200)], compress=True
    )
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    cfg = dh.fast_config(
        tmp_path,
        [{"path": str(bad)}, {"path": str(truncated)}],
        filters={},
        dedup={"enabled": False},
        line_dedup={"enabled": False},
    )
    root = run_pipeline(cfg)
    report = json.loads((Path(root) / "report.json").read_text())
    assert report["input_problems"] == {
        "malformed_json": 1,
        "missing_text": 1,
        "empty": 2,
        "invalid_utf8": 1,
        "too_long": 1,
        "corrupt_file": 1,
    }
    ids = {r[0] for r in dh.output_records(root)}
    assert "good" in ids and not ids & {"no-text", "empty", "blank", "latin1", "huge"}
    assert any(i.startswith("t") for i in ids)  # what preceded the truncation survives
    audit = {r["id"]: r for r in dh.excluded_records(root, "ingest")}
    assert audit["huge"]["metadata"]["filter_reason"] == "too_long" and len(audit["huge"]["text"]) == 10_000
    assert audit["huge"]["metadata"]["original_chars"] == 50_000_000


def test_a_failed_run_never_leaves_output_that_looks_complete(tmp_path, dh, rng, monkeypatch):
    inputs = _mixed_corpus(dh, rng, tmp_path)
    root = run_pipeline(dh.fast_config(tmp_path, inputs))
    assert load_output(root).num_rows > 0

    def explode(self, doc):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(QualityFilter, "filter", explode)
    with pytest.raises(RuntimeError, match="stage 'filter' failed"):  # a fresh run, which fails
        run_pipeline(dh.fast_config(tmp_path, inputs, filters={"quality": {"min_doc_words": 6}}, overwrite=True))
    assert not (Path(root) / "output" / COMPLETE_MARKER).exists()
    assert not list((Path(root) / "output").glob("*.jsonl.gz"))
    with pytest.raises(FileNotFoundError, match="no complete data-pipeline output"):
        load_output(root)


def test_reruns_resume_or_restart_and_foreign_folders_are_refused(tmp_path, dh, rng):
    inputs = _mixed_corpus(dh, rng, tmp_path)
    cfg = dh.fast_config(tmp_path, inputs)
    root = run_pipeline(cfg)
    first = dh.output_records(root)
    marker = Path(root) / "output" / COMPLETE_MARKER
    stamp = marker.stat().st_mtime_ns
    run_pipeline(dh.fast_config(tmp_path, inputs))  # same configuration: nothing to do
    assert marker.stat().st_mtime_ns == stamp and dh.output_records(root) == first
    shutil.rmtree(Path(root) / "output")  # a finished run whose output was deleted is redone
    run_pipeline(dh.fast_config(tmp_path, inputs))
    assert dh.output_records(root) == first
    run_pipeline(dh.fast_config(tmp_path, inputs, dedup={"enabled": False}, overwrite=True))  # asked: redone
    assert len(dh.output_records(root)) > len(first)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a data-pipeline run folder"):
        run_pipeline(dh.fast_config(tmp_path, inputs, name="foreign"))
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_a_changed_configuration_is_refused_naming_the_changes_and_deleting_nothing(tmp_path, dh, rng):
    inputs = _mixed_corpus(dh, rng, tmp_path)
    root = Path(run_pipeline(dh.fast_config(tmp_path, inputs)))
    first, report = dh.output_records(root), (root / "report.json").read_text()
    edited = dh.fast_config(tmp_path, inputs, filters={"quality": {"min_doc_words": 6}}, executor={"tasks": 2})
    with pytest.raises(FileExistsError) as info:
        run_pipeline(edited)
    message = str(info.value)
    assert "filters.quality.min_doc_words: 5 -> 6" in message and "executor.tasks: 1 -> 2" in message
    assert "overwrite: true" in message and message.count("->") == 2  # only what changed
    assert dh.output_records(root) == first and (root / "report.json").read_text() == report  # nothing deleted
    run_pipeline(dh.fast_config(tmp_path, inputs))  # the original configuration still finds its finished run
    assert dh.output_records(root) == first

    edited.overwrite = True
    run_pipeline(edited)
    assert (root / "logs/ingest/completions/00001").exists()  # redone with two tasks
    assert dh.output_records(root) == first  # (the same documents: the edit changes none, by design)


def test_an_empty_input_or_everything_filtered_gives_an_empty_reported_run(tmp_path, dh, rng):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    root = Path(run_pipeline(dh.fast_config(tmp_path, [{"path": str(empty)}], executor={"tasks": 2, "workers": 1})))
    report = json.loads((root / "report.json").read_text())
    assert report["totals"]["documents_in"] == report["totals"]["documents_out"] == 0
    assert json.loads((root / "output" / COMPLETE_MARKER).read_text())["shards"] == []
    with pytest.raises(ValueError, match="kept no documents"):
        load_output(str(root))

    inputs = _mixed_corpus(dh, rng, tmp_path)  # every document dropped by the filters, remix on
    cfg = dh.fast_config(
        tmp_path, inputs, "dropped", filters={"quality": {"min_doc_words": 10**6}}, remix={"temperature": 2.0}
    )
    report = json.loads((Path(run_pipeline(cfg)) / "report.json").read_text())
    assert report["totals"]["documents_in"] == 69 and report["totals"]["documents_out"] == 0
    assert len(dh.excluded_records(cfg.output_dir, "quality")) == report["steps"][2]["documents_out"] > 0


def test_output_shards_are_gzip_jsonl_with_text(tmp_path, dh, rng):
    inputs = _mixed_corpus(dh, rng, tmp_path)
    root = run_pipeline(dh.fast_config(tmp_path, inputs, executor={"tasks": 2, "workers": 1}))
    for path in sorted((Path(root) / "output").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            assert all(json.loads(line)["text"] for line in f)
