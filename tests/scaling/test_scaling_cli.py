"""`deepseek-hf scaling ...`: the paper's hyperparameters from the command line."""

import json

import pytest

from deepseek_hf.cli import main as deepseek_hf_main
from deepseek_hf.scaling.cli import main


def test_hparams_7b_json(capsys):
    assert main(["hparams", "--preset", "deepseek-llm-7b", "--tokens", "2e12", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch_sequences"] == pytest.approx(2251.6, abs=0.5)
    assert result["batch_sequences_rounded"] == 2252
    assert result["learning_rate"] == pytest.approx(4.25e-4, rel=2e-3)
    assert result["compute"] == pytest.approx(8.456e22, rel=1e-3)
    assert result["paper_table_2"]["batch_sequences"] == 2304


def test_hparams_table_through_the_dispatcher(capsys):
    assert deepseek_hf_main(["scaling", "hparams", "--preset", "deepseek-llm-7b", "--tokens", "2e12"]) == 0
    out = capsys.readouterr().out
    assert "2251.6 -> 2252" in out
    assert "4.246e-04" in out or "0.0004246" in out
    assert "paper Table 2" in out and "2304 sequences" in out


def test_hparams_from_compute_and_flops_per_token(capsys):
    assert main(["hparams", "--flops-per-token", "1.77e8", "--compute", "1e17", "--seq-length", "2048", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tokens"] == pytest.approx(1e17 / 1.77e8)
    assert result["batch_tokens"] == pytest.approx(0.2920 * 1e17**0.3271)


def test_allocation(capsys):
    assert main(["allocation", "--compute", "1e20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["optimal_flops_per_token"] * result["optimal_tokens"] == pytest.approx(1e20, rel=2e-4)


@pytest.mark.parametrize(
    "argv",
    [
        ["hparams", "--preset", "deepseek-llm-7b"],  # no budget
        ["hparams", "--preset", "deepseek-llm-7b", "--tokens", "2e12", "--compute", "1e22"],  # two budgets
        ["hparams", "--preset", "deepseek-llm-7b", "--tokens", "-5"],  # negative
        ["hparams", "--tokens", "2e12"],  # no model
    ],
)
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown preset"):
        main(["hparams", "--preset", "deepseek-llm-1t", "--tokens", "2e12"])


def test_flags_accept_underscores(capsys):
    assert main(["hparams", "--flops_per_token", "1.77e8", "--compute", "1e17", "--seq_length", "2048", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seq_length"] == 2048


def test_non_positive_seq_length_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["hparams", "--preset", "deepseek-llm-7b", "--tokens", "2e12", "--seq-length", "0"])
    assert exit_info.value.code == 2
    assert "--seq-length: must be positive" in capsys.readouterr().err
