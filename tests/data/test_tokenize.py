"""Tokenizing on the data pipeline's executors (`deepseek-hf data tokenize`) and reading the shards as one corpus.

The oracle throughout is today's single-process path (`build_packed_dataset`): the sharded corpus must give the
same packed rows (input ids, position ids, labels), row for row, for 1 and for 4 tasks.
"""

from __future__ import annotations

import glob
import gzip
import json
import multiprocessing
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from deepseek_hf.data.errors import ConfigError, InputNotFoundError, RunFolderError
from deepseek_hf.data.tokenize import MANIFEST_FILE, TokenizeConfig, TokenShardWriter, contiguous_blocks, run_tokenize
from deepseek_hf.training.packing import PackedDataset, build_packed_dataset
from deepseek_hf.training.shards import ConcatenatedTokens, ShardedTokenizedCorpus, load_tokenized_corpus

REPO = Path(__file__).resolve().parents[2]
DEMO_CORPUS = REPO / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"
SEQ = 48


@pytest.fixture(scope="module")
def texts() -> list[str]:
    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle][::12]  # ~290 documents, English and Chinese


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, texts) -> str:
    from deepseek_hf.tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("tok")
    corpus = folder / "train.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[::2]))
    train_tokenizer([str(corpus)], vocab_size=300, output_dir=folder / "tok", show_progress=False)
    return str(folder / "tok")


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from deepseek_hf.training import load_tokenizer

    return load_tokenizer(tokenizer_dir)


def _write(path: Path, lines: list) -> Path:
    data = b"".join(line if isinstance(line, bytes) else (json.dumps(line) + "\n").encode() for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, texts) -> Path:
    """Seven files of uneven sizes (one gzipped), in a folder: the single-process path reads them sorted."""
    folder = tmp_path_factory.mktemp("corpus") / "in"
    cuts = [0, 10, 70, 90, 150, 160, 230, len(texts)]
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        _write(
            folder / f"part{i}.jsonl{'.gz' if i == 3 else ''}",
            [{"text": t, "id": f"{i}-{j}"} for j, t in enumerate(texts[a:b])],
        )
    return folder


def _config(tmp_path: Path, source, tokenizer_dir: str, name: str, tasks: int, **kw) -> TokenizeConfig:
    return TokenizeConfig(
        input=str(source),
        tokenizer=tokenizer_dir,
        output_dir=str(tmp_path / name),
        batch_size=16,
        executor={"tasks": tasks, "workers": 1},
        **kw,
    )


def _rows(dataset) -> list[tuple]:
    return [
        tuple(dataset[i][k].tolist() for k in ("input_ids", "position_ids", "labels")) for i in range(len(dataset))
    ]


def test_1_and_4_tasks_give_the_single_process_rows(tmp_path, corpus, tokenizer, tokenizer_dir):
    reference = build_packed_dataset(str(corpus), tokenizer, SEQ, tmp_path / "cache")
    expected = _rows(reference)
    for tasks in (1, 4):
        root = run_tokenize(_config(tmp_path, corpus, tokenizer_dir, f"tasks{tasks}", tasks))
        sharded = load_tokenized_corpus(root)
        assert isinstance(sharded, ShardedTokenizedCorpus) and len(sharded.meta["shards"]) == tasks
        dataset = PackedDataset(sharded, SEQ)  # a TokenizedCorpus subclass: PackedDataset takes it as it is
        assert _rows(dataset) == expected
        assert np.array_equal(sharded.doc_offsets, reference.corpus.doc_offsets)
        assert dataset.stats() == reference.stats()
        assert sharded.meta["tokenizer_fingerprint"] and sharded.meta["bad_records_total"] == 0
    # with 4 tasks, every task got files, and some packed rows straddle two shards
    shards = json.loads((tmp_path / "tasks4" / MANIFEST_FILE).read_text())["shards"]
    assert all(s["num_documents"] for s in shards)
    assert any(s["token_offset"] % SEQ for s in shards[1:])
    # pickled as its path (DataLoader workers under spawn) and read back with the same rows
    clone = pickle.loads(pickle.dumps(sharded))
    assert len(pickle.dumps(sharded)) < 1000 and _rows(PackedDataset(clone, SEQ)) == expected
    sharded.check_tokenizer(tokenizer)
    # a finished tokenization is not redone
    stamp = (tmp_path / "tasks4" / MANIFEST_FILE).stat().st_mtime_ns
    run_tokenize(_config(tmp_path, corpus, tokenizer_dir, "tasks4", 4))
    assert (tmp_path / "tasks4" / MANIFEST_FILE).stat().st_mtime_ns == stamp


def test_validation_fraction_holds_out_the_documents_of_the_one_process_split(
    tmp_path, corpus, tokenizer, tokenizer_dir
):
    """The oracle: the pretraining recipe's own split of the same corpus (`build_pretraining_datasets`), whose
    training rows and validation documents (bytes, hashes, tokens) the shards must hold for 1 and 4 tasks."""
    from deepseek_hf.training.validation import build_pretraining_datasets

    train, validation = build_pretraining_datasets(
        str(corpus), tokenizer, SEQ, tmp_path / "cache", validation_fraction=0.2
    )
    expected_rows, expected = _rows(train), validation.corpus
    assert 0 < expected.num_documents < train.corpus.num_documents
    for tasks in (1, 4):
        root = run_tokenize(_config(tmp_path, corpus, tokenizer_dir, f"split{tasks}", tasks, validation_fraction=0.2))
        sharded = ShardedTokenizedCorpus.load(root)
        held_out = ShardedTokenizedCorpus.load(root, part="validation")
        assert sharded.validation_fraction == 0.2 and held_out.part == "validation"
        assert _rows(PackedDataset(sharded, SEQ)) == expected_rows
        assert np.array_equal(held_out.doc_hashes, expected.doc_hashes)
        assert np.array_equal(held_out.doc_bytes, expected.doc_bytes)
        assert np.array_equal(held_out.tokens[:], np.asarray(expected.tokens))
        assert np.array_equal(held_out.doc_offsets, expected.doc_offsets)
        assert (held_out.num_documents, held_out.num_tokens) == (expected.num_documents, expected.num_tokens)
        again = pickle.loads(pickle.dumps(held_out))
        assert again.part == "validation" and np.array_equal(again.doc_hashes, held_out.doc_hashes)
    # the pretraining recipe on the split shards: their training rows, and the one-process validation set
    shard_train, shard_validation = build_pretraining_datasets(
        root, tokenizer, SEQ, tmp_path / "unused", validation_fraction=0.2
    )
    assert _rows(shard_train) == expected_rows and shard_validation.stats() == validation.stats()
    assert [shard_validation[i]["labels"].tolist() for i in range(len(shard_validation))] == [
        validation[i]["labels"].tolist() for i in range(len(validation))
    ]
    with pytest.raises(ValueError, match="tokenized with validation_fraction 0.2, and this run asks for 0.1"):
        build_pretraining_datasets(root, tokenizer, SEQ, tmp_path / "unused", validation_fraction=0.1)
    with pytest.raises(ValueError, match="leaving validation_path's documents out of training needs the documents"):
        build_pretraining_datasets(root, tokenizer, SEQ, tmp_path / "unused", validation_path=str(corpus))
    # an unsplit tokenization has no validation part, said by name
    root = run_tokenize(_config(tmp_path, corpus, tokenizer_dir, "unsplit", 2))
    with pytest.raises(ValueError, match="tokenized without validation_fraction"):
        ShardedTokenizedCorpus.load(root, part="validation")
    # a fraction too small for the corpus ends the manifest stage with the remedy, and no manifest
    config = _config(tmp_path, corpus, tokenizer_dir, "tiny-split", 2, validation_fraction=1e-12)
    with pytest.raises(Exception, match="put none of the"):
        run_tokenize(config)
    assert not (tmp_path / "tiny-split" / MANIFEST_FILE).exists()
    with pytest.raises(ConfigError, match="validation_fraction must be in"):
        _config(tmp_path, corpus, tokenizer_dir, "bad", 1, validation_fraction=1.0)


def test_a_data_pipeline_run_folder_is_read_in_its_manifest_order(tmp_path, texts, tokenizer, tokenizer_dir):
    run = tmp_path / "run"
    (run / "run.json").parent.mkdir()
    (run / "run.json").write_text("{}")
    shards = []
    for i, (a, b) in enumerate([(0, 50), (50, 80), (80, 140)]):
        path = _write(
            run / "output" / f"{i:05d}.jsonl.gz", [{"text": t, "id": str(j)} for j, t in enumerate(texts[a:b])]
        )
        shards.append({"file": path.name, "bytes": path.stat().st_size})
    (run / "output" / "_COMPLETE.json").write_text(json.dumps({"shards": shards[::-1]}))  # manifest order rules
    expected = _rows(build_packed_dataset(str(run), tokenizer, SEQ, tmp_path / "cache"))
    root = run_tokenize(_config(tmp_path, run, tokenizer_dir, "tokens", 2))
    assert _rows(PackedDataset(load_tokenized_corpus(root), SEQ)) == expected


def test_parquet_files_give_the_rows_of_the_same_documents_as_jsonl(tmp_path, texts, tokenizer, tokenizer_dir):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"text": texts[:30]}), tmp_path / "pq" / "a.parquet")
    pq.write_table(pa.table({"text": texts[30:80]}), tmp_path / "pq" / "b.parquet")
    jsonl = _write(tmp_path / "same.jsonl", [{"text": t} for t in texts[:80]])
    expected = _rows(build_packed_dataset(str(jsonl), tokenizer, SEQ, tmp_path / "cache"))
    root = run_tokenize(_config(tmp_path, tmp_path / "pq", tokenizer_dir, "tokens", 2, format="parquet"))
    assert _rows(PackedDataset(load_tokenized_corpus(root), SEQ)) == expected


def test_bad_records_are_counted_not_fatal(tmp_path, texts, tokenizer, tokenizer_dir):
    good = [{"text": t} for t in texts[:40]]
    lines = [
        *good[:10],
        b'{"text": "unterminated\n',
        {"body": "no text field"},
        {"text": 42},
        b'{"text": "bad \xff utf-8"}\n',
        {"text": "   "},
        *good[10:25],
        {"text": ""},
        *good[25:],
    ]
    _write(tmp_path / "dirty" / "a.jsonl", lines[:20])
    _write(tmp_path / "dirty" / "b.jsonl", lines[20:])
    _write(tmp_path / "clean" / "a.jsonl", good + [{"text": ""}, {"text": "   "}])
    root = run_tokenize(_config(tmp_path, tmp_path / "dirty", tokenizer_dir, "tokens", 2))
    manifest = json.loads((Path(root) / MANIFEST_FILE).read_text())
    assert manifest["bad_records"] == {"bad_text_type": 1, "invalid_utf8": 1, "malformed_json": 1, "missing_text": 1}
    assert manifest["bad_records_total"] == 4 and manifest["skipped_empty"] == 2
    assert manifest["num_documents"] == len(good)
    reference = build_packed_dataset(str(tmp_path / "clean"), tokenizer, SEQ, tmp_path / "cache")
    dataset = PackedDataset(load_tokenized_corpus(root), SEQ)
    assert _rows(dataset) == _rows(reference) and dataset.stats() == reference.stats()


def _killed_run(config: TokenizeConfig) -> None:
    """In a forked child: run the tokenization, SIGKILL-ing the process mid-way through task 2's shard."""
    original = TokenShardWriter._texts

    def killed(self, documents, counts):
        for i, text in enumerate(original(self, documents, counts)):
            if counts["rank"] == 2 and i == 30:  # two batches written: no clean-up code can run after this
                os.kill(os.getpid(), signal.SIGKILL)
            yield text

    TokenShardWriter._texts = killed
    run_tokenize(config)


def test_a_task_killed_with_sigkill_leaves_no_complete_looking_shard(tmp_path, corpus, tokenizer, tokenizer_dir):
    config = _config(tmp_path, corpus, tokenizer_dir, "tokens", 4)
    child = multiprocessing.get_context("fork").Process(target=_killed_run, args=(config,))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    shards = tmp_path / "tokens" / "shards"
    assert sorted(p.name for p in shards.iterdir() if not p.name.startswith(".")) == ["00000", "00001"]
    (leftover,) = shards.glob(".00002.*.tmp")  # the killed task's staging folder: hidden, never a shard
    assert (leftover / "tokens.bin").exists() and not (leftover / "meta.json").exists()
    assert not (tmp_path / "tokens" / MANIFEST_FILE).exists()
    with pytest.raises(FileNotFoundError, match="run it again to resume"):
        load_tokenized_corpus(tmp_path / "tokens")
    stamps = {name: (shards / name / "meta.json").stat().st_mtime_ns for name in ("00000", "00001")}
    run_tokenize(config)
    assert {name: (shards / name / "meta.json").stat().st_mtime_ns for name in stamps} == stamps  # not redone
    assert not leftover.exists()
    expected = _rows(build_packed_dataset(str(corpus), tokenizer, SEQ, tmp_path / "cache"))
    assert _rows(PackedDataset(load_tokenized_corpus(tmp_path / "tokens"), SEQ)) == expected


def test_concatenated_tokens_slice_like_one_array():
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 500, n).astype(np.uint16) for n in (5, 0, 17, 1, 30)]
    whole = np.concatenate(parts)
    tokens = ConcatenatedTokens(parts, np.uint16)
    assert len(tokens) == len(whole) and np.array_equal(np.asarray(tokens), whole)
    for start in range(-3, len(whole) + 2):
        for stop in (start + 1, start + 7, start + 25, len(whole) + 5):
            assert np.array_equal(tokens[start:stop], whole[start:stop]), (start, stop)
    assert [tokens[i] for i in (0, 5, 22, -1)] == [whole[i] for i in (0, 5, 22, -1)]
    positions = rng.integers(-len(whole), len(whole), 40)
    assert np.array_equal(tokens[positions], whole[positions]) and tokens[positions].dtype == np.uint16
    with pytest.raises(IndexError):
        tokens[len(whole)]
    with pytest.raises(IndexError):
        tokens[np.array([0, len(whole)])]


def test_contiguous_blocks_keep_the_file_order_and_balance_bytes():
    assert contiguous_blocks([5] * 8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert contiguous_blocks([100, 1, 1, 1, 1, 1], 4) == [(0, 1), (1, 2), (2, 3), (3, 6)]  # every task a file
    assert contiguous_blocks([3, 3], 4) == [(0, 0), (0, 1), (1, 1), (1, 2)]  # fewer files: empty tasks


@pytest.mark.parametrize("path", sorted(glob.glob(str(REPO / "recipes/*/tokenize/*.yaml"))))
def test_shipped_tokenize_configs_parse_strictly(path):
    config = TokenizeConfig.from_yaml(path)
    assert config.input and config.tokenizer and config.executor.tasks >= 1


def test_config_and_input_errors_are_clear(tmp_path, corpus, texts, tokenizer_dir, capsys):
    from deepseek_hf.data.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"input": str(corpus), "tokenizer": tokenizer_dir, "output_dir": "x", "tasks": 2}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['tasks'\]"):
        TokenizeConfig.from_yaml(str(bad))
    assert main(["tokenize", "--config", str(bad)]) == 1
    assert "unknown key(s) ['tasks']" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"executor: unknown key\(s\) \['task'\]"):
        TokenizeConfig(input="a", tokenizer="b", output_dir="c", executor={"task": 2})
    with pytest.raises(ConfigError, match="tokenizer is required"):
        TokenizeConfig(input="a", output_dir="c")
    with pytest.raises(InputNotFoundError, match="no files match"):
        run_tokenize(_config(tmp_path, tmp_path / "missing.jsonl", tokenizer_dir, "out", 1))
    with pytest.raises(InputNotFoundError, match="tokenizer folder"):
        run_tokenize(_config(tmp_path, corpus, str(tmp_path / "no_tok"), "out", 1))
    # a folder of another tokenization is refused, naming the change, and nothing is deleted
    run_tokenize(_config(tmp_path, corpus, tokenizer_dir, "out", 1))
    with pytest.raises(RunFolderError, match=r"executor\.tasks: 1 -> 2"):
        run_tokenize(_config(tmp_path, corpus, tokenizer_dir, "out", 2))
    assert (tmp_path / "out" / MANIFEST_FILE).is_file()
    # the command line: a config file, a top-level key overridden by a flag
    good = tmp_path / "good.yaml"
    cli = {"input": str(corpus), "tokenizer": tokenizer_dir, "output_dir": "unused", "executor": {"workers": 1}}
    good.write_text(yaml.safe_dump(cli))
    capsys.readouterr()
    assert main(["tokenize", "--config", str(good), "--output-dir", str(tmp_path / "cli")]) == 0
    assert f"{len(texts)} documents" in capsys.readouterr().out and (tmp_path / "cli" / MANIFEST_FILE).is_file()


def test_pretraining_reads_token_shards_as_its_dataset_path(tmp_path, corpus, tokenizer, tokenizer_dir):
    """`dataset_path: <tokenize output>`: resolved as it is, packed without tokenizing again, the same rows; a
    validation split the shards were not tokenized with (they keep no text) is refused by name before anything
    runs."""
    from types import SimpleNamespace

    from deepseek_hf.training import load_tokenizer
    from deepseek_hf.training.packing import resolve_dataset_path
    from deepseek_hf.training.validation import check_validation_settings

    root = run_tokenize(_config(tmp_path, corpus, tokenizer_dir, "tokens", 2))
    assert resolve_dataset_path(str(root)) == str(root)
    expected = _rows(build_packed_dataset(str(corpus), tokenizer, SEQ, tmp_path / "cache"))
    assert _rows(build_packed_dataset(str(root), tokenizer, SEQ, tmp_path / "unused-cache")) == expected
    assert not (tmp_path / "unused-cache").exists()
    other = load_tokenizer(tokenizer_dir)
    other.add_tokens(["<another-token>"])
    with pytest.raises(ValueError, match="another tokenizer"):
        build_packed_dataset(str(root), other, SEQ, tmp_path / "cache")
    data_args = SimpleNamespace(dataset_path=str(root), validation_fraction=0.01, validation_path=None)
    with pytest.raises(ValueError, match="tokenized with validation_fraction 0.0, and this run asks for 0.01"):
        check_validation_settings(data_args, SimpleNamespace(eval_strategy="no"))
