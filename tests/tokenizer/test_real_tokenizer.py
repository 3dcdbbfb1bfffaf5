"""The real DeepSeek LLM tokenizer rebuilt from llama.cpp's vocab GGUF, checked against the official encodings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepseek_hf.modeling import DeepseekLLMConfig
from deepseek_hf.tokenizer import BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN, SPECIAL_TOKENS, tokenizer_from_gguf

# The 46 strings + official ids (llama.cpp `ggml-vocab-deepseek-llm.gguf.inp/.out`), shipped as a test asset.
ASSET = Path(__file__).resolve().parents[1] / "assets" / "tokenizer" / "deepseek_llm_reference_encodings.json"
REFERENCE_CASES = json.loads(ASSET.read_text(encoding="utf-8"))


def test_reference_asset_is_a_faithful_copy(gguf_path):
    # The shipped JSON must say exactly what llama.cpp's .inp/.out files say.
    raw_inputs = gguf_path.with_name(gguf_path.name + ".inp").read_text(encoding="utf-8")
    texts = raw_inputs.split("\n__ggml_vocab_test__\n")[:-1]
    ids = [[int(i) for i in line.split()] for line in gguf_path.with_name(gguf_path.name + ".out").read_text().split("\n")[:-1]]  # fmt: skip
    assert [case["text"] for case in REFERENCE_CASES] == texts
    assert [case["ids"] for case in REFERENCE_CASES] == ids
    assert len(REFERENCE_CASES) == 46


@pytest.mark.parametrize(
    "case", REFERENCE_CASES, ids=[f"{i:02d}:{c['text'][:20]!r}" for i, c in enumerate(REFERENCE_CASES)]
)
def test_reproduces_official_encoding(real_tokenizer, case):
    assert real_tokenizer(case["text"], add_special_tokens=False).input_ids == case["ids"]
    assert real_tokenizer.decode(case["ids"]) == case["text"]


def test_layout_special_tokens_and_bos(real_tokenizer, gguf_vocab):
    tok = real_tokenizer
    assert len(tok) == 100015 and tok.padded_vocab_size == 102400
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(100000, 100015))
    assert (tok.bos_token, tok.bos_token_id, tok.eos_token, tok.eos_token_id) == (BOS_TOKEN, 100000, EOS_TOKEN, 100001)
    assert tok.pad_token_id == 100001  # GGUF padding_token_id
    assert tok.add_bos_token and not tok.add_eos_token
    assert tok("Hello world").input_ids == [100000, 17464, 1843]  # BOS added by default, no EOS
    assert tok("Führer", add_special_tokens=False).input_ids == [37, 100014, 71, 6245]  # added token before BPE
    # every regular token and merge of the file is in the rebuilt tokenizer, at the same id
    assert tok.convert_ids_to_tokens(list(range(100015))) == gguf_vocab.tokens[:100015]
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    assert [" ".join(pair) for pair in merges] == gguf_vocab.merges


def test_saved_config(real_tokenizer_dir):
    config = json.loads((real_tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "DeepseekLLMTokenizer"
    assert (config["add_bos_token"], config["add_eos_token"]) == (True, False)
    assert config["padded_vocab_size"] == 102400 and config["model_max_length"] == 4096
    assert config["chat_template"] == CHAT_TEMPLATE


def test_model_config_agrees(real_tokenizer):
    config = DeepseekLLMConfig.from_preset("deepseek-llm-7b")
    assert config.vocab_size == real_tokenizer.padded_vocab_size
    assert (config.bos_token_id, config.eos_token_id) == (real_tokenizer.bos_token_id, real_tokenizer.eos_token_id)
    kwargs = real_tokenizer.model_config_kwargs()
    assert kwargs == {"vocab_size": 102400, "bos_token_id": 100000, "eos_token_id": 100001, "pad_token_id": 100001}
    assert DeepseekLLMConfig.from_preset("deepseek-llm-7b", **kwargs).vocab_size == config.vocab_size
    config.check_vocab_covers(real_tokenizer)
    too_small = DeepseekLLMConfig.from_preset("deepseek-llm-7b", vocab_size=100014)  # bos/eos fit, 100014 doesn't
    with pytest.raises(ValueError, match="100015"):
        too_small.check_vocab_covers(real_tokenizer)


def test_converter_rejects_what_it_cannot_rebuild(mini_gguf, tmp_path):
    assert len(tokenizer_from_gguf(mini_gguf("ok.gguf"))) == 243 + 3 + 15  # the valid baseline
    with pytest.raises(ValueError, match="llama-bpe"):
        tokenizer_from_gguf(mini_gguf("llama3.gguf", pre="llama-bpe"))
    shuffled = (SPECIAL_TOKENS[1], SPECIAL_TOKENS[0], *SPECIAL_TOKENS[2:])
    with pytest.raises(ValueError, match="expected"):
        tokenizer_from_gguf(mini_gguf("swapped.gguf", specials=shuffled))
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"definitely not a gguf file")
    with pytest.raises(ValueError, match="not a readable GGUF"):
        tokenizer_from_gguf(not_gguf)
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        tokenizer_from_gguf(tmp_path / "missing.gguf")
