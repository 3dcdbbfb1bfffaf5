"""Saving a tokenizer directory atomically: a crash never leaves a directory that looks like a complete tokenizer."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from transformers import PreTrainedTokenizerBase


def save_tokenizer(
    tokenizer: PreTrainedTokenizerBase,
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """`tokenizer.save_pretrained` into a temporary sibling directory, then rename it to `output_dir`.

    The chat template is kept inside `tokenizer_config.json` (`save_jinja_files=False`), where older transformers
    releases and other tools look for it. `extra_files` ({name: text}) are written alongside. An existing non-empty
    `output_dir` is an error unless `overwrite=True`.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} is not empty; pass overwrite=True (CLI: --overwrite) to replace it")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the result should be an ordinary directory
    try:
        tokenizer.save_pretrained(staging, save_jinja_files=False)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
        if output_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".old", dir=output_dir.parent))
            os.replace(output_dir, retired / output_dir.name)
            os.replace(staging, output_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
