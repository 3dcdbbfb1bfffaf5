"""Saving a tokenizer directory atomically: a crash never leaves a directory that looks like a complete tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ..utils import staged_directory


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
    with staged_directory(output_dir) as staging:
        tokenizer.save_pretrained(staging, save_jinja_files=False)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
    return output_dir
