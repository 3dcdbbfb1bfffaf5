"""Tokenize-and-pack: exact rows, per-document positions and labels, long documents, bad input, caching."""

import collections
import gzip
import json
import math
import os
import pickle

import numpy as np
import pytest
import torch

from deepseek_hf.training.corpus import TokenizedCorpus, document_token_ids, tokenize_corpus
from deepseek_hf.training.packing import (
    IGNORE_INDEX,
    PackedDataset,
    build_packed_dataset,
    iter_texts,
    load_documents,
    pack_position_ids,
    resolve_dataset_path,
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "子曰：学而时习之，不亦说乎？",
    "Numbers 12345 are split into digits.",
    "A fourth document, a little longer than the others, so that rows cut through it somewhere in the middle.",
]


def concat_ids(tokenizer, texts):
    return [token for ids in document_token_ids(tokenizer, texts) for token in ids]


def test_document_ids_have_bos_and_one_eos(tokenizer):
    for text, ids in zip(TEXTS, document_token_ids(tokenizer, TEXTS)):
        assert ids[0] == tokenizer.bos_token_id  # DeepSeek's tokenizer adds BOS (add_bos_token like the official)
        assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_rows_are_the_token_stream_cut_into_sequences(tmp_path, tokenizer, write_jsonl):
    source = write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in TEXTS * 3])
    dataset = build_packed_dataset(source, tokenizer, seq_length=16, cache_dir=tmp_path / "cache")
    stream = concat_ids(tokenizer, TEXTS * 3)
    assert len(dataset) == len(stream) // 16
    rows = torch.cat([dataset[i]["input_ids"] for i in range(len(dataset))]).tolist()
    assert rows == stream[: len(dataset) * 16]  # nothing lost, reordered or padded; only the tail is dropped
    stats = dataset.stats()
    assert stats["dropped_tail_tokens"] == len(stream) % 16 and stats["documents"] == 12


def test_positions_restart_per_document_and_labels_skip_document_starts(tmp_path, tokenizer, write_jsonl):
    source = write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in TEXTS * 3])
    dataset = build_packed_dataset(source, tokenizer, seq_length=32, cache_dir=tmp_path / "cache")
    lengths = [len(ids) for ids in document_token_ids(tokenizer, TEXTS * 3)]
    doc_starts = set(np.cumsum([0] + lengths[:-1]).tolist())
    for index in range(len(dataset)):
        row = dataset[index]
        expected_positions, position = [], 0
        for offset in range(32):
            absolute = index * 32 + offset
            position = 0 if (absolute in doc_starts or offset == 0) else position + 1
            expected_positions.append(position)
        assert row["position_ids"].tolist() == expected_positions
        expected_labels = [
            IGNORE_INDEX if p == 0 else t for p, t in zip(expected_positions, row["input_ids"].tolist())
        ]
        assert row["labels"].tolist() == expected_labels
        # every document start inside a row is a BOS; the token before it is an EOS (a target)
        for offset in range(1, 32):
            if expected_positions[offset] == 0 and index * 32 + offset in doc_starts:
                assert row["input_ids"][offset] == tokenizer.bos_token_id
                assert row["input_ids"][offset - 1] == tokenizer.eos_token_id
                if expected_positions[offset - 1] != 0:  # (unless the EOS itself opens the row)
                    assert row["labels"][offset - 1] == tokenizer.eos_token_id


def test_documents_longer_than_the_sequence_continue_on_the_next_row(tmp_path, tokenizer, write_jsonl):
    long_text = " ".join(f"word{i}" for i in range(200))
    source = write_jsonl(tmp_path / "long.jsonl", [{"text": "short one"}, {"text": long_text}, {"text": "tail"}])
    dataset = build_packed_dataset(source, tokenizer, seq_length=32, cache_dir=tmp_path / "cache")
    stream = concat_ids(tokenizer, ["short one", long_text, "tail"])
    long_ids = document_token_ids(tokenizer, [long_text])[0]
    assert len(long_ids) > 3 * 32
    assert dataset.stats()["documents_longer_than_seq_length"] == 1
    assert torch.cat([dataset[i]["input_ids"] for i in range(len(dataset))]).tolist() == stream[: len(dataset) * 32]
    for index in range(1, len(dataset) - 1):  # rows fully inside the long document: one segment from 0 to 31
        row = dataset[index]
        assert row["position_ids"].tolist() == list(range(32))
        assert row["labels"][0] == IGNORE_INDEX and (row["labels"][1:] != IGNORE_INDEX).all()


def test_pack_position_ids():
    assert pack_position_ids(np.array([3, 5]), 8).tolist() == [0, 1, 2, 0, 1, 0, 1, 2]
    assert pack_position_ids(np.array([], dtype=np.int64), 4).tolist() == [0, 1, 2, 3]


def test_packed_attention_keeps_documents_apart(tmp_path, tokenizer, write_jsonl):
    """The model on a packed row gives each document the logits it gets alone (block-diagonal attention)."""
    from deepseek_hf.training import build_model

    texts = TEXTS[:3]
    source = write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in texts])
    ids = document_token_ids(tokenizer, texts)
    seq_length = sum(len(x) for x in ids)
    dataset = build_packed_dataset(source, tokenizer, seq_length=seq_length, cache_dir=tmp_path / "cache")
    torch.manual_seed(0)
    model = build_model(tokenizer, preset="deepseek-llm-tiny", overrides="num_hidden_layers=2,hidden_size=64").eval()
    row = dataset[0]
    with torch.no_grad():
        packed = model(input_ids=row["input_ids"][None], position_ids=row["position_ids"][None]).logits[0]
        start = 0
        for doc in ids:
            alone = model(input_ids=torch.tensor([doc])).logits[0]
            torch.testing.assert_close(packed[start : start + len(doc)], alone, atol=1e-5, rtol=1e-5)
            start += len(doc)


def test_empty_documents_are_skipped_and_counted(tmp_path, tokenizer, write_jsonl):
    records = [{"text": "one"}, {"text": ""}, {"text": "   \n "}, {"text": "two"}]
    source = write_jsonl(tmp_path / "docs.jsonl", records * 20)
    dataset = build_packed_dataset(source, tokenizer, seq_length=8, cache_dir=tmp_path / "cache")
    assert dataset.stats()["documents"] == 40 and dataset.stats()["skipped_empty_documents"] == 40


@pytest.mark.parametrize(
    "records, message",
    [
        ([{"text": "fine"}, {"text": 42}], "record 1: field 'text' is int, expected a string"),
        ([{"text": "fine"}, {"body": "no text"}], "record 1 has no 'text' field"),
        ([{"text": ""}, {"text": "  "}], "no documents with text"),
        ([{"text": "too short"}], "fewer than one sequence of 4096"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, tokenizer, records, message, write_jsonl):
    source = write_jsonl(tmp_path / "docs.jsonl", records)
    with pytest.raises(ValueError, match=message):
        build_packed_dataset(source, tokenizer, seq_length=4096, cache_dir=tmp_path / "cache")


def test_empty_dataset_file(tmp_path, tokenizer):
    source = tmp_path / "empty.jsonl"
    source.write_text("")
    with pytest.raises(ValueError, match="no documents with text"):
        build_packed_dataset(source, tokenizer, seq_length=16, cache_dir=tmp_path / "cache")
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())  # no half-written corpus left behind


def test_tokenizing_is_atomic(tmp_path, tokenizer):
    def texts():
        yield from TEXTS
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        tokenize_corpus(texts(), tokenizer, tmp_path / "corpus")
    assert list(tmp_path.iterdir()) == []  # neither the corpus nor its staging folder


def test_cache_is_reused_and_invalidated(tmp_path, tokenizer, monkeypatch, write_jsonl):
    source = write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in TEXTS * 5])
    first = build_packed_dataset(source, tokenizer, seq_length=16, cache_dir=tmp_path / "cache")
    import deepseek_hf.training.packing as packing

    def must_not_tokenize(*args, **kwargs):
        raise AssertionError("the cached corpus should have been reused")

    monkeypatch.setattr(packing, "tokenize_corpus", must_not_tokenize)
    second = build_packed_dataset(source, tokenizer, seq_length=32, cache_dir=tmp_path / "cache")
    assert second.corpus.path == first.corpus.path
    monkeypatch.undo()
    write_jsonl(source, [{"text": t} for t in TEXTS * 6])  # the file changed: tokenized again
    third = build_packed_dataset(source, tokenizer, seq_length=16, cache_dir=tmp_path / "cache")
    assert third.corpus.path != first.corpus.path and third.corpus.num_documents == 24


def test_reads_gzip_text_and_pipeline_output(tmp_path, tokenizer, write_jsonl):
    gz = write_jsonl(tmp_path / "docs.jsonl.gz", [{"text": t} for t in TEXTS * 4])
    txt = tmp_path / "docs.txt"
    txt.write_text("\n".join(TEXTS * 4) + "\n")
    from deepseek_hf.data.output import publish

    pipeline = tmp_path / "pipeline_run"  # a finished `deepseek-hf data run`: shards + completion manifest
    (pipeline / "work" / "final").mkdir(parents=True)
    records = [{"text": t, "id": str(i), "metadata": {"dump": "d0", "source": "s"}} for i, t in enumerate(TEXTS * 4)]
    write_jsonl(pipeline / "work" / "final" / "00000.jsonl.gz", records)
    publish(str(pipeline))
    expected = concat_ids(tokenizer, TEXTS * 4)
    for source in (gz, txt, pipeline):
        dataset = build_packed_dataset(source, tokenizer, seq_length=16, cache_dir=tmp_path / f"cache-{source.name}")
        assert (
            torch.cat([dataset[i]["input_ids"] for i in range(len(dataset))]).tolist() == expected[: len(dataset) * 16]
        )


def test_unfinished_pipeline_output_is_refused(tmp_path, tokenizer, write_jsonl):
    pipeline = tmp_path / "crashed_run"
    (pipeline / "output").mkdir(parents=True)
    write_jsonl(pipeline / "output" / "00000.jsonl.gz", [{"text": t} for t in TEXTS])  # no _COMPLETE.json
    with pytest.raises(FileNotFoundError, match="no complete data-pipeline output"):
        build_packed_dataset(pipeline, tokenizer, seq_length=16, cache_dir=tmp_path / "cache")


def test_unigram_entropy_matches_a_direct_count(tmp_path, tokenizer, corpus_slice):
    dataset = build_packed_dataset(corpus_slice, tokenizer, seq_length=64, cache_dir=tmp_path / "cache")
    counts = collections.Counter()
    for index in range(len(dataset)):
        labels = dataset[index]["labels"]
        counts.update(labels[labels != IGNORE_INDEX].tolist())
    total = sum(counts.values())
    expected = -sum(c / total * math.log(c / total) for c in counts.values())
    assert dataset.unigram_entropy() == pytest.approx(expected, rel=1e-9)


def test_corpus_on_disk_is_checked(tmp_path, tokenizer):
    corpus = tokenize_corpus(iter(TEXTS), tokenizer, tmp_path / "corpus")
    assert TokenizedCorpus.load(corpus.path).num_tokens == len(concat_ids(tokenizer, TEXTS))
    with open(corpus.path / "tokens.bin", "ab") as handle:  # a truncated / appended file is detected
        handle.write(b"\0\0")
    with pytest.raises(ValueError, match="disagree"):
        PackedDataset(corpus.path, seq_length=8)


def test_pickles_as_a_path(tmp_path, tokenizer, corpus_slice):
    """DataLoader workers started with `spawn` get the dataset pickled: it must not carry the tokens along."""
    dataset = build_packed_dataset(corpus_slice, tokenizer, seq_length=64, cache_dir=tmp_path / "cache")
    payload = pickle.dumps(dataset)
    assert len(payload) < 10_000 < dataset.corpus.tokens.nbytes
    copy = pickle.loads(payload)
    assert len(copy) == len(dataset)
    for index in (0, len(dataset) // 2, len(dataset) - 1):
        assert all(
            torch.equal(copy[index][key], dataset[index][key]) for key in ("input_ids", "position_ids", "labels")
        )


def test_iter_texts_counts_skips():
    stats = {}
    assert list(iter_texts([{"text": "a"}, {"text": " "}, {"text": "b"}], stats=stats)) == ["a", "b"]
    assert stats == {"skipped_empty": 1}


def test_resolve_dataset_path(tmp_path, caplog):
    existing = tmp_path / "docs.jsonl.gz"
    with gzip.open(existing, "wt") as handle:
        handle.write('{"text": "x"}\n')
    assert resolve_dataset_path(str(existing), None) == str(existing)
    missing = str(tmp_path / "outputs" / "demo" / "data")
    assert resolve_dataset_path(missing, str(existing)) == str(existing)  # the explicit dataset_path_if_missing
    assert "does not exist: training on dataset_path_if_missing" in caplog.text
    with pytest.raises(FileNotFoundError, match="neither"):
        resolve_dataset_path(missing, str(tmp_path / "also" / "missing.jsonl"))
    with pytest.raises(FileNotFoundError, match=f"dataset_path '{missing}' does not exist"):  # no fallback asked for
        resolve_dataset_path(missing)
    with pytest.raises(ValueError, match="matches no files"):
        resolve_dataset_path(str(tmp_path / "*.parquet"))
    with pytest.raises(ValueError, match="no dataset"):
        resolve_dataset_path(None, None)
    assert resolve_dataset_path("HuggingFaceFW/fineweb", None) == "HuggingFaceFW/fineweb"  # a Hub name, not loaded
    shipped = resolve_dataset_path(missing, "package://demo/corpus_sample.jsonl.gz")
    assert shipped.endswith("deepseek_hf/assets/demo/corpus_sample.jsonl.gz") and os.path.isfile(shipped)


def _data_run(root, *, finished: bool, documents=()):
    """A `deepseek-hf data run` folder as the pipeline lays it out: run.json, logs/, and output/ once finished."""
    (root / "logs" / "ingest").mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({"fingerprint": "0", "config": {}}))
    (root / "logs" / "ingest" / "executor.json").write_text(json.dumps({"_launched": True, "tasks": 1}))
    if finished:
        (root / "output").mkdir()
        shard = root / "output" / "00000.jsonl.gz"
        with gzip.open(shard, "wt") as handle:
            handle.writelines(
                json.dumps({"text": text, "id": str(i), "metadata": {}}) + "\n" for i, text in enumerate(documents)
            )
        manifest = {"shards": [{"file": shard.name, "bytes": shard.stat().st_size}]}
        (root / "output" / "_COMPLETE.json").write_text(json.dumps(manifest))
    return root


def test_an_unfinished_data_run_is_an_error_that_says_so(tmp_path, write_jsonl):
    """Before: "record 0 has no 'text' field (fields: ['_launched', ...])", read from its logs."""
    run = _data_run(tmp_path / "run", finished=False)
    message = f"no complete data-pipeline output: .* run has not finished .* read from {run}/output"
    with pytest.raises(FileNotFoundError, match=message):
        resolve_dataset_path(str(run))
    (run / "output").mkdir()  # a publish cut short: shards but no manifest; named as the run or as its output/
    write_jsonl(run / "output" / "00000.jsonl.gz", [{"text": t} for t in TEXTS])
    for path in (run, run / "output"):
        with pytest.raises(FileNotFoundError, match=message):
            resolve_dataset_path(str(path))
        with pytest.raises(FileNotFoundError, match="has not finished"):
            load_documents(str(path))


def test_a_finished_data_run_is_read_through_its_manifest(tmp_path):
    run = _data_run(tmp_path / "run", finished=True, documents=TEXTS)
    for path in (run, run / "output"):  # the run folder, or its output/ (what the tokenizer stage is given)
        assert resolve_dataset_path(str(path)) == str(path)
        assert [record["text"] for record in load_documents(str(path))] == TEXTS


def test_the_data_run_layout_is_the_pipelines():
    from deepseek_hf.data.pipeline import RUN_FILE
    from deepseek_hf.training import packing

    assert packing._DATA_RUN_FILE == RUN_FILE
