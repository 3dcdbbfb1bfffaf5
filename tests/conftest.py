"""Shared test fixtures. Tests never reach the Hugging Face Hub; real data comes from `../shared/data/` when present."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
WHEEL_SOURCES = [
    *("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"),
    *("deepseek_hf", "modeling", "eval_tasks", "recipes"),
]
SHARED_DATA = Path(os.environ.get("DEEPSEEK_HF_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data/` (read-only); tests that need it skip visibly, naming the folder, when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not present: {SHARED_DATA} (set DEEPSEEK_HF_SHARED_DATA to point at it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """Build from a copy of the sources, so parallel runs never share a `build/` folder in the checkout."""
    root = tmp_path_factory.mktemp("wheel")
    source, out = root / "src", root / "dist"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in WHEEL_SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
        elif (REPO_ROOT / name).is_file():
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        timeout=300,
    )
    (wheel_file,) = out.glob("deepseek_hf-*.whl")
    return wheel_file
