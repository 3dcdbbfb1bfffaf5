"""Small helpers shared by the parts of the package: atomic output directories, batching of streams, shipped files
(`package://`), and the command-line conventions of `deepseek-hf` (one flag spelling, typed `key=value` overrides, user-error reporting)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")

#: `package://demo/x.jsonl.gz` names a file shipped inside the package (`deepseek_hf/assets/demo/x.jsonl.gz`), in
#: every config that takes a path: the data pipeline's, the pretraining, alignment and scaling recipes'.
PACKAGE_PREFIX = "package://"


def expand_package_path(path: str | None) -> str | None:
    """`package://<folder>/<file>` -> the path of that file in `deepseek_hf/assets/`; any other path unchanged."""
    if path and path.startswith(PACKAGE_PREFIX):
        from importlib import resources

        return str(resources.files("deepseek_hf").joinpath("assets", path[len(PACKAGE_PREFIX) :]))
    return path


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


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a fsynced temporary file in the same folder, one `os.replace` and a fsync of
    the folder: a crash leaves the old file or the new one, never half of one (permissions as `open` would give)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """`data` as indented JSON (UTF-8, non-ASCII kept) and a final newline, through `write_text_atomic`."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


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


# ----------------------------------------------------------------------------------------------------------------
# Command-line helpers shared by the `deepseek-hf` groups and the recipes
# ----------------------------------------------------------------------------------------------------------------

# What the `deepseek-hf` dispatcher reports as one line instead of a traceback: the user's paths, configuration or
# data are wrong (missing / unreadable / existing files, bad values or keys, malformed JSON or pickles, a missing
# optional package). Everything else (TypeError, AttributeError, RuntimeError from torch, AssertionError ...) is a
# bug and keeps its traceback, which a one-line message would hide. `--debug` / DEEPSEEK_HF_DEBUG=1 re-raise all.
USER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    ModuleNotFoundError,
    pickle.UnpicklingError,
)
DEBUG_ENV = "DEEPSEEK_HF_DEBUG"


def debug_requested() -> bool:
    """Whether `DEEPSEEK_HF_DEBUG` asks for tracebacks (set by `deepseek-hf --debug`; "0" / "false" mean no)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def describe_error(error: BaseException) -> str:
    """One line for a user error; `KeyError('x')` alone would print as just `'x'`."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        return f"missing key {error.args[0]!r}"
    if isinstance(error, ModuleNotFoundError):
        return f"{error} (a dependency of this command is not installed)"
    return str(error) or type(error).__name__


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` that reads `--output_dir` as `--output-dir` (and `--text-key` as a declared
    `--text_key`), so each flag has one name whichever separator the user types; `--help` shows the declared form.

    Sub-parsers made with `add_subparsers()` are of this class too, so every command of a group gets it.
    """

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._normalize_flags(args), namespace)

    def _normalize_flags(self, args: list[str]) -> list[str]:
        known = self._option_string_actions
        normalized = []
        for position, arg in enumerate(args):
            if arg == "--":  # everything after it is positional
                return normalized + args[position:]
            flag, eq, value = arg.partition("=")
            if flag.startswith("--") and len(flag) > 2 and flag not in known:
                for other in ("--" + flag[2:].replace("_", "-"), "--" + flag[2:].replace("-", "_")):
                    if other in known or (self.allow_abbrev and any(name.startswith(other) for name in known)):
                        arg = other + eq + value
                        break
            normalized.append(arg)
        return normalized


_KEYWORDS = {"true": True, "false": False, "none": None, "null": None}


def bounded_number(kind: type, condition, expected: str):
    """An argparse `type` of `kind` that rejects values failing `condition`, saying `expected` (not silently clamping)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if not condition(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    return parse


def parse_value(text: str) -> Any:
    """A command-line value with its type: `2` -> 2, `0.5` / `1e-5` -> float, `true` / `False` -> bool,
    `none` / `null` -> None, JSON lists and objects as such, anything else the (stripped) string, e.g. `silu`.

    Typed values matter because configs check types: `num_hidden_layers="2"` is an error, not a 2-layer model.
    """
    text = text.strip()
    if text.lower() in _KEYWORDS:
        return _KEYWORDS[text.lower()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# A comma starts a new item only when `key=` follows, so `eos_token_id=[1,2],hidden_size=64` has two items.
_ITEM_SEPARATOR = re.compile(r",(?=\s*[A-Za-z_][\w.]*\s*=)")


def parse_overrides(
    items: str | Iterable[str] | None, *, valid_keys: Collection[str] | None = None, what: str = "override"
) -> dict[str, Any]:
    """`"a=1,b=silu"` (one string, comma-separated) or `["a=1", "b=silu"]` -> `{"a": 1, "b": "silu"}`.

    Values go through `parse_value`. With `valid_keys`, an unknown key is a `ValueError` naming it and the closest
    valid keys: a typo such as `num_hidden_layer=2` would otherwise be stored as a stray attribute and ignored.
    A key given twice keeps its last value, as on a command line.
    """
    if items is None:
        return {}
    if isinstance(items, str):
        items = _ITEM_SEPARATOR.split(items)
    overrides: dict[str, Any] = {}
    for item in items:
        item = item.strip().strip(",").strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{what} {item!r} is not of the form key=value")
        overrides[key] = parse_value(value)
    if valid_keys is not None:
        check_keys(overrides, valid_keys, what=what)
    return overrides


def check_keys(keys: Iterable[str], valid_keys: Collection[str], *, what: str = "key") -> None:
    """Raise a `ValueError` for the first key not in `valid_keys`, naming the closest valid ones (difflib; the near
    ties of the best match only, so `num_hidden_layer` suggests `num_hidden_layers` alone), else listing them all."""
    for key in keys:
        if key in valid_keys:
            continue
        close = difflib.get_close_matches(key, sorted(valid_keys), n=3, cutoff=0.6)
        best = difflib.SequenceMatcher(None, key, close[0]).ratio() if close else 0.0
        close = [name for name in close if difflib.SequenceMatcher(None, key, name).ratio() >= best - 0.1]
        hint = (
            f"did you mean {' or '.join(map(repr, close))}?"
            if close
            else "valid keys: " + ", ".join(sorted(valid_keys))
        )
        raise ValueError(f"unknown {what} key {key!r}; {hint}")


def entries_from_config(items: Iterable[Any] | None, cls: type, *, option: str, required: tuple[str, ...]) -> list:
    """A config option's list of entries as `cls` dataclasses: mappings (YAML), JSON objects (a command-line flag)
    or `cls` instances; an entry that is neither, an unknown key (naming the closest valid ones) or a missing
    required key is a `ValueError` naming `option`."""
    valid = [f.name for f in dataclasses.fields(cls)]
    entries = []
    for item in items or []:
        if isinstance(item, cls):
            entries.append(item)
            continue
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except json.JSONDecodeError:
                raise ValueError(f"an entry of `{option}` is not a JSON object: {item!r}") from None
        if not isinstance(item, dict):
            raise ValueError(f"an entry of `{option}` must be a mapping with {' and '.join(required)}, got {item!r}")
        check_keys(item, valid, what=option)
        for key in required:
            if key not in item:
                raise ValueError(f"an entry of `{option}` has no {key!r}: {item}")
        entries.append(cls(**item))
    return entries


# Bookkeeping fields of every transformers config: written by save_pretrained, never meant as overrides.
_CONFIG_BOOKKEEPING = {"transformers_version", "architectures", "_name_or_path", "model_type", "auto_map"}
# Legacy keywords a transformers config converts in __post_init__ (into `dtype` / `rope_parameters`).
_CONFIG_LEGACY_KEYWORDS = {"torch_dtype": "dtype", "rope_theta": "rope_parameters", "rope_scaling": "rope_parameters"}


def config_keys(config_class) -> set[str]:
    """The keyword arguments a (dataclass-style) transformers config class takes: its fields, its `attribute_map`
    aliases and the legacy `torch_dtype` / `rope_theta` / `rope_scaling`; the valid keys of model overrides."""
    keys = {field.name for field in dataclasses.fields(config_class)} | set(getattr(config_class, "attribute_map", {}))
    keys |= {legacy for legacy, field in _CONFIG_LEGACY_KEYWORDS.items() if field in keys}
    return keys - _CONFIG_BOOKKEEPING


def merge_config_fields(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`{**base, **overrides}`, except that a legacy `rope_theta` override updates `base["rope_parameters"]`:
    transformers reads `rope_theta` only where `rope_parameters` has none, so it would be dropped without a word."""
    merged = {**base, **overrides}
    if "rope_theta" in overrides and "rope_parameters" not in overrides and base.get("rope_parameters"):
        merged["rope_parameters"] = {**base["rope_parameters"], "rope_theta": merged.pop("rope_theta")}
    return merged
