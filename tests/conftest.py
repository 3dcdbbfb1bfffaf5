"""Shared test fixtures. Tests never reach the Hugging Face Hub; real data comes from `../shared/data/` when present."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
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
