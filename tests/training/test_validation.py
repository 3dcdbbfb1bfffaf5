"""The validation split and its loss / bits-per-byte: the split by text hash (the same for any sharding, order and
number of processes; never trained on), bits-per-byte against the model run on each document directly, the cache,
and the errors."""

import hashlib
import json
import math
import random

import numpy as np
import pytest
import torch

import deepseek_hf.training.validation as validation
from deepseek_hf.training import (
    PretrainConfig,
    PretrainDataArguments,
    PretrainTrainer,
    ValidationDataset,
    build_model,
    build_pretraining_datasets,
    check_validation_settings,
    score_validation,
)

# A model far from uniform (init std 0.5): a token scored at the wrong position or twice changes the result.
TINY = "num_hidden_layers=2,hidden_size=64,intermediate_size=128,num_attention_heads=4,num_key_value_heads=4"
SHARP = f"{TINY},initializer_range=0.5"
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "子曰：学而时习之，不亦说乎？有朋自远方来，不亦乐乎？",
    "Numbers 12345 and symbols ©, é, ß take more than one byte each in UTF-8.",
    "A longer document that runs past one window of the validation rows, so that it is scored in windows which "
    "overlap by one token: every token after the first is predicted once, from its own document only. " * 3,
]


def blake2b_fraction(text: str) -> float:
    """The split rule, computed here from its definition: BLAKE2b-64 of the UTF-8 text, as a fraction of 2**64."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") / 2**64


@pytest.fixture(scope="module")
def split_slice(tmp_path_factory, tokenizer, corpus_slice):
    """The corpus slice split with validation_fraction 0.1: (training rows of 64, validation rows of 64)."""
    cache = tmp_path_factory.mktemp("split")
    return build_pretraining_datasets(corpus_slice, tokenizer, 64, cache, validation_fraction=0.1)


@pytest.fixture(scope="module")
def sharp_model(tokenizer):
    torch.manual_seed(0)
    return build_model(tokenizer, preset="deepseek-llm-tiny", overrides=SHARP).eval()


def reference_nll(model, tokenizer, text: str, seq_length: int) -> tuple[float, int]:
    """Summed -ln p of a document's tokens after its BOS, the model run on the document itself (full logits,
    log_softmax); a document longer than `seq_length` in windows of `seq_length` that overlap by one token."""
    ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    assert ids[0] == tokenizer.bos_token_id
    total, predicted = 0.0, 0
    for start in range(0, len(ids) - 1, seq_length - 1):
        window = torch.tensor(ids[start : start + seq_length])
        with torch.no_grad():
            logits = model(window[None]).logits[0].double()
        total -= torch.log_softmax(logits[:-1], dim=-1).gather(1, window[1:, None]).sum().item()
        predicted += len(window) - 1
    return total, predicted


def texts_of(corpus, tokenizer) -> list[str]:
    offsets = corpus.doc_offsets
    return [
        tokenizer.decode(corpus.tokens[offsets[i] : offsets[i + 1]], skip_special_tokens=True)
        for i in range(corpus.num_documents)
    ]


def trainer_for(tmp_path, model, tokenizer, train, valid, **kwargs):
    args = PretrainConfig(
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=2,
        per_device_eval_batch_size=3,
        learning_rate=1e-3,
        max_steps=2,
        warmup_steps=1,
        disable_tqdm=True,
        **kwargs,
    )
    return PretrainTrainer(model=model, args=args, train_dataset=train, eval_dataset=valid, processing_class=tokenizer)


def test_bits_per_byte_equals_the_model_on_each_document(tmp_path, tokenizer, sharp_model, write_jsonl):
    """Trainer.evaluate on packed rows = sum over documents of -log2 p (each document alone) / their UTF-8 bytes."""
    seq_length = 128
    source = write_jsonl(tmp_path / "train.jsonl", [{"text": f"training document {i}"} for i in range(40)])
    held_out = write_jsonl(tmp_path / "valid.jsonl", [{"text": t} for t in TEXTS])
    train, valid = build_pretraining_datasets(
        source, tokenizer, seq_length, tmp_path / "cache", validation_path=held_out
    )
    lengths = [len(tokenizer(text)["input_ids"]) + 1 for text in TEXTS]
    windows = sum(math.ceil((n - 1) / (seq_length - 1)) for n in lengths)
    assert lengths[-1] > 2 * seq_length and len(valid) < windows  # one document in windows; others share a row

    metrics = trainer_for(tmp_path, sharp_model, tokenizer, train, valid).evaluate()

    reference = [reference_nll(sharp_model, tokenizer, text, seq_length) for text in TEXTS]
    nll, tokens = sum(r[0] for r in reference), sum(r[1] for r in reference)
    num_bytes = sum(len(text.encode("utf-8")) for text in TEXTS)
    assert metrics["eval_tokens"] == tokens and metrics["eval_bytes"] == num_bytes
    assert metrics["eval_bits_per_byte"] == pytest.approx(nll / math.log(2) / num_bytes, rel=1e-5)
    assert metrics["eval_loss"] == pytest.approx(nll / tokens, rel=1e-5)
    assert nll / tokens > 1.2 * math.log(len(tokenizer))  # far from uniform: a misplaced target would show


def test_the_score_is_the_same_for_any_number_of_processes(sharp_model, split_slice):
    valid = ValidationDataset(split_slice[1].corpus, 32, max_tokens=1500)
    single = score_validation(sharp_model, valid, batch_size=4)
    assert single[1] == valid.num_tokens
    assert len(valid) % 3  # the shares of 3 processes differ by a row: topped up with a row without targets
    calls = []
    hook = sharp_model.register_forward_hook(
        lambda module, args, kwargs, output: calls.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    try:
        for world_size in (2, 3):
            shares = []
            for rank in range(world_size):
                calls.clear()
                shares.append(score_validation(sharp_model, valid, batch_size=4, rank=rank, world_size=world_size))
                if rank == 0:
                    batches = list(calls)
                assert calls == batches  # the same forward calls on every process (FSDP / ZeRO-3 collectives)
            assert sum(s[1] for s in shares) == single[1]  # every row once
            assert sum(s[0] for s in shares) == pytest.approx(single[0], rel=1e-6)
    finally:
        hook.remove()


def test_the_split_does_not_depend_on_sharding_or_order(tmp_path, tokenizer, demo_texts, write_jsonl):
    """The same documents as one file, or shuffled into three shards: the same validation rows, the same training
    documents; the validation documents are exactly those the rule, computed here, selects."""
    texts = demo_texts[::24]
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": t} for t in texts])
    shuffled = random.Random(0).sample(texts, len(texts))
    (tmp_path / "shards").mkdir()
    for shard in range(3):
        write_jsonl(tmp_path / "shards" / f"{shard}.jsonl", [{"text": t} for t in shuffled[shard::3]])
    fraction = 0.1
    train_a, valid_a = build_pretraining_datasets(one, tokenizer, 64, tmp_path / "a", validation_fraction=fraction)
    train_b, valid_b = build_pretraining_datasets(
        tmp_path / "shards", tokenizer, 64, tmp_path / "b", validation_fraction=fraction
    )
    expected = sorted(t for t in texts if blake2b_fraction(t) < fraction)
    assert 0 < len(expected) < len(texts)
    assert sorted(texts_of(valid_a.corpus, tokenizer)) == expected == sorted(texts_of(valid_b.corpus, tokenizer))
    assert sorted(texts_of(train_a.corpus, tokenizer)) == sorted(set(texts) - set(expected))
    assert sorted(texts_of(train_b.corpus, tokenizer)) == sorted(texts_of(train_a.corpus, tokenizer))
    assert len(valid_a) == len(valid_b)
    for row in range(len(valid_a)):  # rows follow the hash order, not the corpus order
        for key, value in valid_a[row].items():
            assert torch.equal(value, valid_b[row][key]), (row, key)


def test_validation_documents_never_appear_in_the_training_rows(
    tmp_path, tokenizer, corpus_slice, split_slice, write_jsonl
):
    train, valid = split_slice
    stream = np.concatenate([train[i]["input_ids"].numpy() for i in range(len(train))]).astype(np.int32).tobytes()
    offsets = valid.corpus.doc_offsets
    assert valid.corpus.num_documents >= 20
    for doc in range(valid.corpus.num_documents):
        body = np.asarray(valid.corpus.tokens[offsets[doc] + 1 : offsets[doc + 1]], dtype=np.int32).tobytes()
        position = stream.find(body)
        while position != -1:  # a match must start on a token boundary to count
            assert position % 4, f"validation document {doc} is in the training rows"
            position = stream.find(body, position + 1)
    # a validation document planted in the training source is dropped from training when it is the validation_path
    texts = [json.loads(line)["text"] for line in corpus_slice.read_text().splitlines()]
    held_out = write_jsonl(tmp_path / "held_out.jsonl", [{"text": t} for t in texts[:5]])
    train, _ = build_pretraining_datasets(corpus_slice, tokenizer, 64, tmp_path / "cache", validation_path=held_out)
    assert train.corpus.meta["excluded_documents"] == 5
    assert train.corpus.num_documents == len(texts) - 5


def test_max_validation_tokens_takes_whole_documents_in_hash_order(split_slice):
    full = split_slice[1]
    lengths = np.diff(full.corpus.doc_offsets) - 1
    order = np.argsort(full.corpus.doc_hashes)
    bound = int(lengths[order[:3]].sum())  # exactly the three documents of lowest hash
    capped = ValidationDataset(full.corpus, 64, max_tokens=bound + 1)
    assert sorted(capped.documents.tolist()) == sorted(order[:3].tolist())
    assert capped.num_tokens == bound and capped.num_bytes == int(full.corpus.doc_bytes[order[:3]].sum())
    assert full.num_tokens == int(lengths.sum()) > bound


def test_the_cache_key_holds_the_split_rule(tmp_path, tokenizer, demo_texts, write_jsonl, monkeypatch):
    source = write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in demo_texts[::40]])
    cache = tmp_path / "cache"
    _, first = build_pretraining_datasets(source, tokenizer, 32, cache, validation_fraction=0.05)
    _, other = build_pretraining_datasets(source, tokenizer, 32, cache, validation_fraction=0.1)
    assert other.corpus.path != first.corpus.path and other.corpus.num_documents > first.corpus.num_documents
    assert "blake2b64" in str(first.corpus.path) and first.corpus.meta["split_rule"].startswith("blake2b64 < 0.05")
    plain, none = build_pretraining_datasets(source, tokenizer, 32, cache)  # no split: the usual packed cache
    assert none is None and plain.corpus.num_documents == len(demo_texts[::40])

    def must_not_tokenize(*args, **kwargs):
        raise AssertionError("the cached split should have been reused")

    monkeypatch.setattr(validation, "tokenize_split_corpus", must_not_tokenize)
    _, again = build_pretraining_datasets(source, tokenizer, 64, cache, validation_fraction=0.05)
    assert again.corpus.path == first.corpus.path


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation_fraction": -0.1}, r"validation_fraction must be in \[0, 1\)"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \[0, 1\)"),
        ({"validation_fraction": 0.1, "validation_path": "v.jsonl"}, "not both"),
        ({"max_validation_tokens": 0}, "max_validation_tokens must be positive"),
    ],
)
def test_bad_validation_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PretrainDataArguments(dataset_path="d.jsonl", **kwargs)


def test_settings_that_cannot_work_together(tmp_path):
    args = PretrainConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", eval_strategy="steps")
    with pytest.raises(ValueError, match="eval_strategy 'steps' needs a validation set"):
        check_validation_settings(PretrainDataArguments(dataset_path="d.jsonl"), args)
    missing = PretrainDataArguments(dataset_path="d.jsonl", validation_path=str(tmp_path / "nope.jsonl"))
    with pytest.raises(FileNotFoundError, match="validation_path .*nope.jsonl.* does not exist"):
        check_validation_settings(missing, args)


def test_an_empty_split_is_a_clear_error_and_caches_nothing(tmp_path, tokenizer, write_jsonl):
    source = write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in TEXTS])
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="put none of the documents .* in the validation split"):
        build_pretraining_datasets(source, tokenizer, 32, cache, validation_fraction=1e-12)
    with pytest.raises(ValueError, match="left no document .* for training"):
        build_pretraining_datasets(source, tokenizer, 32, cache, validation_fraction=0.999999999)
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"text": "  "}])
    with pytest.raises(ValueError, match="validation_path .*blank.jsonl holds no document with text"):
        build_pretraining_datasets(source, tokenizer, 32, cache, validation_path=blank)
    assert not cache.exists()
    with pytest.raises(ValueError, match="every document of .* is also in validation_path"):
        build_pretraining_datasets(source, tokenizer, 32, cache, validation_path=source)


@pytest.mark.parametrize(
    "flags, error, message",
    [
        (["--eval_strategy", "steps", "--eval_steps", "2"], ValueError, "needs a validation set"),
        (["--validation_path", "held-out-that-is-not-there.jsonl"], FileNotFoundError, "validation_path .* not exist"),
        (["--validation_fraction", "1.5"], ValueError, r"validation_fraction must be in \[0, 1\)"),
    ],
    ids=["eval-without-split", "missing-validation-path", "bad-fraction"],
)
def test_the_recipe_refuses_them_before_tokenizing(tmp_path, tokenizer_dir, corpus_slice, flags, error, message):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "pretrain_recipe_validation_checks", Path(__file__).resolve().parents[2] / "recipes" / "pretrain.py"
    )
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    argv = [
        *("--dataset_path", corpus_slice, "--tokenizer_name_or_path", tokenizer_dir, "--seq_length", 32),
        *("--model_preset", "deepseek-llm-tiny", "--config_overrides", TINY, "--use_cpu", "true"),
        *("--max_steps", 2, "--learning_rate", 1e-3, "--report_to", "none", "--output_dir", tmp_path / "out"),
        *flags,
    ]
    with pytest.raises(error, match=message):
        recipe.main(*recipe.make_parser().parse_args_and_config([str(a) for a in argv]))
    assert not (tmp_path / "out").exists()
