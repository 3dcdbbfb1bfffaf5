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
def save_tiny_checkpoint():
    """Builds a tiny DeepSeek checkpoint in `root`: a 1000-token byte-level BPE trained on `corpus_lines` (JSONL
    lines with a "text" field) and a random model of width 64, 2 layers, 4 query / 2 key-value heads (seed 0), saved
    together as `root / "model"`, as `from_pretrained` and the recipes expect. `config` overrides the model config;
    `pad_with_eos` sets the pad token to EOS."""

    def save(root: Path, corpus_lines, pad_with_eos: bool = False, **config) -> Path:
        import torch

        from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
        from deepseek_hf.tokenizer import train_tokenizer

        corpus = root / "corpus.jsonl"
        with open(corpus, "w", encoding="utf-8") as f:
            f.writelines(corpus_lines)
        tokenizer = train_tokenizer([corpus], vocab_size=1000, output_dir=root / "tokenizer", show_progress=False)
        torch.manual_seed(0)
        special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        if pad_with_eos:
            special["pad_token_id"] = tokenizer.eos_token_id
        model_config = DeepseekLLMConfig(
            vocab_size=tokenizer.padded_vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **special,
            **config,
        )
        path = root / "model"
        DeepseekLLMForCausalLM(model_config).save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path

    return save


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
