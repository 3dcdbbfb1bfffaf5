"""`deepseek-hf tokenizer train|from-gguf`, through the top-level dispatcher."""

from __future__ import annotations

import json

from deepseek_hf.cli import main
from deepseek_hf.tokenizer import SPECIAL_TOKENS, DeepseekLLMTokenizer


def test_train(corpus_slice, tmp_path, capsys):
    out = tmp_path / "tok"
    argv = ["tokenizer", "train", str(corpus_slice), "--vocab-size", "500", "--output-dir", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "515 tokens (500 regular + 15 special), model vocab_size 640" in capsys.readouterr().out
    tok = DeepseekLLMTokenizer.from_pretrained(out)
    assert len(tok) == 515 and tok.padded_vocab_size == 640
    assert json.loads((out / "training_stats.json").read_text())["documents"] == 575


def test_from_gguf(mini_gguf, tmp_path, capsys):
    out = tmp_path / "converted"
    assert main(["tokenizer", "from-gguf", str(mini_gguf("mini.gguf")), str(out)]) == 0
    tok = DeepseekLLMTokenizer.from_pretrained(out)
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(246, 261))
    assert tok.padded_vocab_size == 263  # the GGUF's own size, placeholders included
    assert tok.convert_ids_to_tokens(tok(" the", add_special_tokens=False).input_ids) == ["Ġthe"]  # merges applied
    assert main(["tokenizer", "from-gguf", str(mini_gguf("again.gguf")), str(out)]) == 1  # no silent overwrite
    assert "overwrite" in capsys.readouterr().err


def test_errors_exit_nonzero_with_a_message(tmp_path, capsys):
    assert main(["tokenizer", "train", str(tmp_path / "missing.txt"), "--output-dir", str(tmp_path / "o")]) == 1
    assert "missing.txt" in capsys.readouterr().err
    small = ["tokenizer", "train", str(tmp_path), "--vocab-size", "10", "--output-dir", str(tmp_path / "o")]
    assert main(small) == 1
    assert "minimum is 243" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_flags_accept_underscores_and_the_data_groups_name(tmp_path, capsys):
    """`--output_dir`, `--vocab_size` ... as well as `--output-dir`; `--text-key` (the data group's name) too."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"body": f"the quick brown fox {i} 天地玄黄"}) for i in range(50)))
    out = tmp_path / "tok"
    argv = ["tokenizer", "train", str(corpus), "--vocab_size", "260", "--output_dir", str(out), "--no_progress"]
    assert main([*argv, "--text-key", "body", "--min_frequency", "1", "--model_max_length", "128"]) == 0
    capsys.readouterr()
    tok = DeepseekLLMTokenizer.from_pretrained(out)
    assert tok.model_max_length == 128 and json.loads((out / "training_stats.json").read_text())["documents"] == 50
    assert main(["tokenizer", "train", str(corpus), "--text_field", "body", "--output-dir", str(out)]) == 1
    assert "overwrite" in capsys.readouterr().err  # parsed (the folder exists), so --text_field was understood
