"""Small helpers shared by the parts of the package: atomic output directories and batching of streams."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

T = TypeVar("T")


@contextmanager
def staged_directory(output_dir: str | os.PathLike, *, if_exists: Literal["replace", "keep"] = "replace"):
    """Yield an empty folder next to `output_dir`; on success it becomes `output_dir` in one rename.

    A crash or an exception inside the block deletes the staging folder, so a directory that looks complete is
    always complete. An existing `output_dir` is swapped out (`"replace"`) or left in place with the new one thrown
    away (`"keep"`, for a result another process may have finished first). Callers decide beforehand whether an
    existing directory may be overwritten at all.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the result should be an ordinary directory
    try:
        yield staging
        if not output_dir.exists():
            os.replace(staging, output_dir)
        elif if_exists == "keep":
            shutil.rmtree(staging)
        else:  # a non-empty directory cannot be renamed over: move the old one aside first
            retired = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".old", dir=output_dir.parent))
            os.replace(output_dir, retired / output_dir.name)
            os.replace(staging, output_dir)
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` consecutive items (the last one shorter), like Python 3.12's `itertools.batched`."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
