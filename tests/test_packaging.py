"""The built wheel installs `modeling/` and `eval_tasks/` *inside* the package and ships the demo assets."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "deepseek_hf/__init__.py",
        "deepseek_hf/modeling/__init__.py",
        "deepseek_hf/modeling/configuration_deepseek_llm.py",
        "deepseek_hf/modeling/modeling_deepseek_llm.py",
        "deepseek_hf/eval_tasks/__init__.py",
        "deepseek_hf/assets/demo/SOURCE.md",
        "deepseek_hf/assets/demo/corpus_sample.jsonl.gz",
        "deepseek_hf/assets/eval_demo/SOURCE.md",
        "deepseek_hf/assets/eval_demo/arc/arc_easy_test.jsonl",
        "deepseek_hf/eval/reference/deepseek_llm_more_results.md",
        "deepseek_hf/eval_tasks/_ppl_template_yaml",
        "deepseek_hf/eval_tasks/cmmlu/_default_template_yaml",
        "deepseek_hf/eval_tasks/cmmlu/deepseek_cmmlu_agronomy.yaml",
    ):
        assert required in names, required
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"deepseek_hf"}, top_level  # no generic `modeling` / `eval_tasks` package in site-packages
    # every file of the two mapped folders made it into the package
    for folder in ("modeling", "eval_tasks"):
        for path in (REPO / folder).rglob("*"):
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and (path.suffix in (".py", ".yaml") or path.name.endswith("_yaml"))
            ):
                assert f"deepseek_hf/{folder}/{path.relative_to(REPO / folder).as_posix()}" in names, path
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "deepseek-hf = deepseek_hf.cli:main" in entry_points


INSTALLED_CHECK = """
import importlib.resources, importlib.util, sys, torch
import deepseek_hf
from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
target = sys.argv[1]
assert deepseek_hf.__file__.startswith(target), deepseek_hf.__file__
assert deepseek_hf.modeling.__file__.startswith(target), deepseek_hf.modeling.__file__
assert importlib.util.find_spec("modeling") is None and importlib.util.find_spec("eval_tasks") is None
assert importlib.resources.files("deepseek_hf.eval_tasks").is_dir()
assert (importlib.resources.files("deepseek_hf") / "assets" / "demo" / "corpus_sample.jsonl.gz").is_file()
config = DeepseekLLMConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=4, bos_token_id=1, eos_token_id=2)
print(DeepseekLLMForCausalLM(config)(torch.tensor([[1, 5, 7]])).logits.shape)
"""


def test_installed_wheel_imports_from_site_packages(wheel, tmp_path):
    """Install the wheel into its own folder and import from there (the editable checkout's finder comes later
    on `sys.meta_path` than PYTHONPATH, so the installed copy is the one imported)."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1, 3, 64])" in result.stdout
