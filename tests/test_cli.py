"""The `deepseek-hf` entry point: every command group answers `--help`, and `model generate` runs end to end."""

import subprocess
import sys

import pytest

from deepseek_hf.cli import COMMANDS, main


def test_top_level_help_lists_every_group(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_group_is_an_error(capsys):
    assert main(["no-such-group"]) == 2
    assert "unknown command 'no-such-group'" in capsys.readouterr().err


@pytest.mark.parametrize("group", sorted(COMMANDS))
def test_group_help(group):
    """Each group's parser builds and prints its help (catches broken imports or argparse definitions)."""
    result = subprocess.run(
        [sys.executable, "-m", "deepseek_hf.cli", group, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_model_generate_from_a_saved_checkpoint(tmp_path, capsys):
    from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
    from deepseek_hf.tokenizer import train_tokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "the quick brown fox jumps over the lazy dog\n" * 50 + "天地玄黄，宇宙洪荒。\n" * 20, encoding="utf-8"
    )
    tokenizer = train_tokenizer([corpus], vocab_size=300, show_progress=False)
    config = DeepseekLLMConfig.from_preset(
        "deepseek-llm-tiny",
        num_hidden_layers=1,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        **tokenizer.model_config_kwargs(),
    )
    checkpoint = tmp_path / "ckpt"
    DeepseekLLMForCausalLM(config).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)

    assert main(["model", "generate", str(checkpoint), "--prompt", "the quick", "--max-new-tokens", "5"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("'the quick' -> ")


def test_model_generate_names_a_missing_checkpoint(tmp_path, capsys):
    assert main(["model", "generate", str(tmp_path / "absent"), "--prompt", "x"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
