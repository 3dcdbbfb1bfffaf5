"""Saved tokenizers load through `AutoTokenizer`, with `deepseek_hf` imported and in plain transformers alike."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from deepseek_hf.modeling import DeepseekLLMConfig
from deepseek_hf.tokenizer import SPECIAL_TOKENS, DeepseekLLMTokenizer, train_tokenizer

REFERENCE_ASSET = (
    Path(__file__).resolve().parents[1] / "assets" / "tokenizer" / "deepseek_llm_reference_encodings.json"
)
SAMPLES = [
    "Hello world",
    " Führer über Øresund: 3.14 — ½",
    "我想在apple工作1314151天～\n\n  end  ",
    "\U0001f680 (normal) \U0001f636\u200d\U0001f32b\ufe0f",
    "한국어 텍스트\tкириллица",
]


def _added_tokens(tokenizer) -> dict[int, tuple]:
    return {
        i: (t.content, t.special, t.normalized, t.lstrip, t.rstrip) for i, t in tokenizer.added_tokens_decoder.items()
    }


def test_auto_tokenizer_resolves_our_class(trained_tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(trained_tokenizer_dir)
    assert type(tok) is DeepseekLLMTokenizer
    # a checkpoint directory: config.json with model_type deepseek_llm next to the tokenizer files
    for file in trained_tokenizer_dir.iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    DeepseekLLMConfig.from_preset("deepseek-llm-tiny", **tok.model_config_kwargs()).save_pretrained(tmp_path)
    from_checkpoint = AutoTokenizer.from_pretrained(tmp_path)
    assert type(from_checkpoint) is DeepseekLLMTokenizer
    assert from_checkpoint(SAMPLES).input_ids == tok(SAMPLES).input_ids


def test_added_tokens_survive_save_and_load(corpus_slice, tmp_path):
    fresh = train_tokenizer([corpus_slice], vocab_size=400, output_dir=tmp_path / "tok", show_progress=False)
    loaded = DeepseekLLMTokenizer.from_pretrained(tmp_path / "tok")
    assert _added_tokens(loaded) == _added_tokens(fresh)
    assert [loaded.added_tokens_decoder[400 + i].content for i in range(15)] == list(SPECIAL_TOKENS)
    assert [loaded.added_tokens_decoder[400 + i].special for i in range(15)] == [True, True] + [False] * 13
    assert loaded(SAMPLES).input_ids == fresh(SAMPLES).input_ids
    assert (loaded.add_bos_token, loaded.add_eos_token, loaded.padded_vocab_size) == (True, False, 512)
    loaded.add_eos_token = True  # the rebuilt template must keep BOS (transformers 5 would drop it, see the class)
    assert loaded("hi").input_ids == [loaded.bos_token_id, *loaded("hi", add_special_tokens=False).input_ids, 401]


def test_plain_transformers_loads_identical_ids(trained_tokenizer_dir, trained_tokenizer, request):
    # A fresh interpreter that never imports deepseek_hf: AutoTokenizer falls back to TokenizersBackend.
    # One subprocess for both tokenizers (transformers' import dominates); the real one only with the shared data.
    tokenizers = {"trained": (trained_tokenizer_dir, trained_tokenizer)}
    try:
        tokenizers["real"] = (request.getfixturevalue("real_tokenizer_dir"), request.getfixturevalue("real_tokenizer"))
    except pytest.skip.Exception as skip:
        warnings.warn(f"plain-transformers load of the real tokenizer not checked: {skip}", stacklevel=1)
    script = textwrap.dedent(
        """
        import json, sys
        from transformers import AutoTokenizer
        samples, dirs = json.loads(sys.stdin.read())
        result = {}
        for name, path in dirs.items():
            tok = AutoTokenizer.from_pretrained(path)
            ids = tok(samples).input_ids
            result[name] = {
                "class": type(tok).__name__, "ids": ids, "decoded": [tok.decode(i, skip_special_tokens=True) for i in ids],
                "added": {i: [t.content, t.special] for i, t in tok.added_tokens_decoder.items()},
                "chat": tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True),
            }
        assert not any(m == "deepseek_hf" or m.startswith("deepseek_hf.") for m in sys.modules)
        print(json.dumps(result))
        """
    )
    samples = SAMPLES + [case["text"] for case in json.loads(REFERENCE_ASSET.read_text(encoding="utf-8"))]
    dirs = {name: str(directory) for name, (directory, _) in tokenizers.items()}
    run = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps([samples, dirs]), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result) == set(tokenizers)
    for name, (_, tok) in tokenizers.items():
        plain = result[name]
        assert plain["class"] == "TokenizersBackend"
        assert plain["ids"] == tok(samples).input_ids
        assert plain["decoded"] == samples
        assert {int(i): tuple(v) for i, v in plain["added"].items()} == {
            i: (t.content, t.special) for i, t in tok.added_tokens_decoder.items()
        }
        assert plain["chat"] == f"{tok.bos_token}User: Hi\n\nAssistant:"
