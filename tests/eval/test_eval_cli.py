"""`deepseek-hf eval` and plain `lm_eval` on our checkpoints: results written, the table, the built-in cmmlu on local
files, and the usual mistakes (a typo in a task name, a wrong data path, an existing output folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deepseek_hf.eval import task_dir
from deepseek_hf.eval.cli import main, resolve_data_dir
from deepseek_hf.eval.report import markdown_table, published_scores

pytestmark = pytest.mark.slow


def test_published_scores_are_the_papers():
    scores = published_scores()
    assert len(scores) == 14
    assert scores["CMMLU"] == {"DeepSeek 7B Base": 47.2, "DeepSeek 67B Base": 70.8}
    assert scores["ARC-Challenge"] == {"DeepSeek 7B Base": 48.1, "DeepSeek 67B Base": 59.0}
    assert scores["C3"] == {"DeepSeek 7B Base": 65.4, "DeepSeek 67B Base": 75.3}  # Table 5, not in more_results.md


def test_table_of_subject_tasks_without_their_group():
    results = {
        "results": {
            "deepseek_mmlu_anatomy": {"acc_tokens,none": 0.5, "acc,none": 0.5},
            "deepseek_mmlu_virology": {"acc_tokens,none": 0.2, "acc,none": 0.1},
        },
        "n-samples": {
            "deepseek_mmlu_anatomy": {"effective": 10, "original": 135},
            "deepseek_mmlu_virology": {"effective": 30, "original": 166},
        },
    }
    table = markdown_table(results)
    row = next(line for line in table.splitlines() if line.startswith("| MMLU"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:6] == ["MMLU (2 of 57 subjects)", "40 of 301", "acc_tokens", "27.5", "48.2", "71.3"]
    with pytest.raises(ValueError, match="no deepseek_\\* benchmark"):
        markdown_table({"results": {"arc_easy": {"acc,none": 0.3}}})


def test_run_writes_results_and_table(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    args = [str(tiny_checkpoint), "--tasks", "deepseek_arc_easy,deepseek_piqa", "--data", "demo", "--limit", "4"]
    assert main(["run", *args, "--device", "cpu", "--output-dir", str(out), "--log-samples"]) == 0  # scorer: deepseek
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results["results"]) == {"deepseek_arc_easy", "deepseek_piqa"}
    assert results["n-samples"]["deepseek_arc_easy"] == {"original": 50, "effective": 4}  # the shipped sample
    assert len((out / "samples_deepseek_piqa.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    table = (out / "results.md").read_text(encoding="utf-8")
    assert table in capsys.readouterr().out
    arc = 100 * results["results"]["deepseek_arc_easy"]["acc_uncond,none"]
    assert f"| ARC-Easy | 4 of 50 | acc_uncond | {arc:.1f} | 67.9 | 76.9 |" in table

    # the usual mistakes: an existing output folder, a wrong data path, a typo in a task name
    assert main(["run", *args, "--output-dir", str(out)]) == 1
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert main(["run", str(tiny_checkpoint), "--data", str(tmp_path / "nowhere"), "--output-dir", str(out)]) == 1
    assert "nowhere: no such folder" in capsys.readouterr().err
    typo = ["run", str(tiny_checkpoint), "--tasks", "deepseek_arc_esay", "--data", "demo", "--device", "cpu"]
    assert main([*typo, "--output-dir", str(tmp_path / "typo")]) == 1
    assert "deepseek_arc_esay" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_builtin_cmmlu_on_local_files(tiny_checkpoint, eval_data, tmp_path, caplog):
    """lm-eval's own cmmlu (letters, 0-shot by default) with its data given locally instead of the Hub."""
    out = tmp_path / "builtin"
    args = ["run", str(tiny_checkpoint), "--tasks", "cmmlu_anatomy", "--data", str(eval_data), "--limit", "3"]
    assert main([*args, "--scorer", "hf", "--device", "cpu", "--output-dir", str(out), "--log-samples"]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["n-samples"]["cmmlu_anatomy"]["original"] == 148  # cmmlu/test/anatomy.csv
    sample = json.loads((out / "samples_cmmlu_anatomy.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert [continuation for _, continuation in sample["arguments"]] == [" A", " B", " C", " D"]
    assert sample["arguments"][0][0].endswith("\n答案：")  # lm-eval's cmmlu template, untouched
    assert "57 of 67 subjects have local files" in caplog.text


def test_plain_lm_eval_cli_on_a_checkpoint(tiny_checkpoint, tmp_path):
    """`lm_eval --include_path <task folder>` with `hf` on a checkpoint that carries its code (remote code)."""
    env = {**os.environ, "DEEPSEEK_HF_EVAL_DATA": resolve_data_dir("demo")}
    command = [sys.executable, "-m", "lm_eval", "run", "--model", "hf"]
    command += ["--model_args", f"pretrained={tiny_checkpoint},trust_remote_code=True", "--trust_remote_code"]
    command += ["--include_path", task_dir(), "--tasks", "deepseek_openbookqa", "--limit", "2", "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "deepseek_openbookqa" in result.stdout and "acc_uncond" in result.stdout
