"""The evaluation runs from an installed wheel, where the repository is absent: the task YAMLs, templates, loaders and
shipped benchmark samples all come from site-packages of a fresh virtual environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv

import pytest

pytestmark = pytest.mark.slow


def test_one_task_from_a_fresh_venv(wheel, tiny_checkpoint, tmp_path):
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    site = next((fresh / "lib").glob("python*/site-packages"))
    python = fresh / "bin" / "python"
    # The wheel goes into the fresh venv; its dependencies (torch, transformers, lm-eval, ...) are borrowed from the
    # test environment's site-packages, appended after the venv's own (a .pth path line; its own .pth files, such
    # as the editable checkout's finder, are not processed).
    subprocess.run(  # --target: pip leaves the test environment's own (editable) install alone
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    (site / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "DEEPSEEK_HF_EVAL_DATA")}
    env["OMP_NUM_THREADS"] = "1"

    where = subprocess.run(
        [str(python), "-c", "import deepseek_hf.eval; print(deepseek_hf.eval.task_dir())"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr[-3000:]
    assert where.stdout.strip() == str(site / "deepseek_hf" / "eval_tasks")

    out = tmp_path / "eval"
    command = [str(python), "-m", "deepseek_hf.cli", "eval", "run", str(tiny_checkpoint), "--tasks", "deepseek_piqa"]
    command += ["--data", "demo", "--limit", "3", "--scorer", "hf", "--device", "cpu", "--output-dir", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["n-samples"]["deepseek_piqa"] == {"original": 50, "effective": 3}
    assert "| PIQA | 3 of 50 | acc_tokens |" in (out / "results.md").read_text(encoding="utf-8")
