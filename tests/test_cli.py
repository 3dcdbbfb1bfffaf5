"""The `deepseek-hf` entry point: every command group answers `--help`, and `model generate` runs end to end."""

import os
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
    sampled = ["--temperature", "0.8", "--top_p", "0.9", "--top-k", "0", "--max_new_tokens", "5"]
    assert main(["model", "generate", str(checkpoint), "--prompt", "the quick", *sampled]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("'the quick' -> ")


def test_model_generate_names_a_missing_checkpoint(tmp_path, capsys):
    assert main(["model", "generate", str(tmp_path / "absent"), "--prompt", "x"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "-1"], "--temperature: must be >= 0"),
        (["--temperature", "1", "--top-p", "0"], "--top-p: must be in (0, 1]"),
        (["--temperature", "1", "--top-p", "1.5"], "--top-p: must be in (0, 1]"),
        (["--temperature", "1", "--top-k", "-2"], "--top-k: must be >= 0"),
        (["--max-new-tokens", "0"], "--max-new-tokens: must be >= 1"),
        (["--top-k", "5"], "--top-p / --top-k only apply when sampling"),
    ],
)
def test_model_generate_rejects_invalid_sampling_values(tmp_path, capsys, flags, message):
    """Checked before anything is loaded (the checkpoint here does not even exist); -1 used to mean greedy."""
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "generate", str(tmp_path / "absent"), "--prompt", "x", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


BAD_PRESET = ["scaling", "hparams", "--preset", "deepseek-llm-1t", "--tokens", "2e12"]


def test_user_errors_end_in_one_message_not_a_traceback(capsys, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_HF_DEBUG", raising=False)
    assert main(BAD_PRESET) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("deepseek-hf scaling: error: Unknown preset 'deepseek-llm-1t'")
    assert "--debug" in err[-1] and len(err) == 2


def test_debug_flag_or_env_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_HF_DEBUG", raising=False)
    with pytest.raises(ValueError, match="Unknown preset"):
        main(["--debug", *BAD_PRESET])
    with pytest.raises(FileNotFoundError):  # also where a group prints its own errors
        main(["--debug", "model", "info", "--config", str(tmp_path / "absent")])
    assert "DEEPSEEK_HF_DEBUG" not in os.environ  # --debug does not leak into the caller's process
    monkeypatch.setenv("DEEPSEEK_HF_DEBUG", "1")
    with pytest.raises(ValueError, match="Unknown preset"):
        main(BAD_PRESET)


def test_user_error_exit_status_in_a_real_process(tmp_path):
    cli = [sys.executable, "-m", "deepseek_hf.cli"]
    env = {**os.environ, "DEEPSEEK_HF_DEBUG": ""}
    result = subprocess.run([*cli, *BAD_PRESET], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "Unknown preset" in result.stderr
    to_llama = ["model", "to-llama", str(tmp_path), str(tmp_path / "out")]
    result = subprocess.run([*cli, "--debug", *to_llama], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1 and "Traceback" in result.stderr and "FileNotFoundError" in result.stderr
