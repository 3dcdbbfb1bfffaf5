"""The results table of a scaling study: one row per finished pretraining run, as JSONL with a CSV copy beside it.

The sweep driver (`recipes/scaling_sweep.py`) appends a row when a run finishes; the fits (`deepseek_hf.scaling.fits`)
and plots read the table back. The JSONL file is the source of truth; `results.csv` next to it holds the same rows
and columns for spreadsheets, and is rewritten on every append. Columns (`RESULT_FIELDS`):

| column | type | meaning |
|---|---|---|
| `run` | str | unique run name (the sweep's resume key) |
| `kind` | str | `grid` (batch/LR grid), `isoflop` (model/data split), `schedule` (one multi-step schedule of a Figure 1b study) or `predict` (the larger run predicted beforehand) |
| `budget` | float | target compute budget C in FLOPs (the group a run belongs to) |
| `n_layer`, `d_model`, `n_heads`, `seq_len`, `vocab_size` | int | the model shape and training sequence length |
| `model_scale` | float | M, non-embedding FLOPs per token (paper Eq. 2) |
| `tokens` | float | D, tokens actually trained |
| `flops` | float | `model_scale * tokens` actually trained (checked to 1e-6) |
| `batch_size` | int | tokens per optimizer step |
| `learning_rate` | float | peak learning rate |
| `eval_loss`, `eval_bpb` | float | final validation loss (nats/token) and bits per byte |
| `train_loss`, `wall_s` | float or null | final training loss, wall-clock seconds (null / empty when unknown) |
| `output_dir` | str | where the run's checkpoint and `all_results.json` are |

One more key is allowed: `extra`, a dict of JSON values for anything else a sweep wants to keep (kept as JSON text
in the CSV's last column). Any other key, a missing key, a wrong type, a non-finite number or a duplicate run name
is an error naming the row and the column, so that a fit never silently runs on a broken table.

Writes are atomic: the whole new file is written to a temporary file, fsynced and renamed over the old one, so a
crash leaves either the old table or the new one, never a half-written row. Appends take an exclusive `flock` on
`results.jsonl.lock`, so several processes (one cluster job per run) may append to one table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..utils import write_text_atomic

__all__ = [
    "RESULT_FIELDS",
    "RESULT_KINDS",
    "append_result",
    "csv_path_for",
    "finished_runs",
    "read_results",
    "validate_result",
    "write_results",
]

RESULT_FIELDS: tuple[str, ...] = (
    "run",
    "kind",
    "budget",
    "n_layer",
    "d_model",
    "n_heads",
    "seq_len",
    "vocab_size",
    "model_scale",
    "tokens",
    "flops",
    "batch_size",
    "learning_rate",
    "eval_loss",
    "eval_bpb",
    "train_loss",
    "wall_s",
    "output_dir",
)
RESULT_KINDS: tuple[str, ...] = ("grid", "isoflop", "schedule", "predict")
EXTRA_FIELD = "extra"

_STR_FIELDS = {"run", "kind", "output_dir"}
_INT_FIELDS = {"n_layer", "d_model", "n_heads", "seq_len", "vocab_size", "batch_size"}
_NULLABLE_FIELDS = {"train_loss", "wall_s"}
_POSITIVE_FIELDS = {"budget", "model_scale", "tokens", "flops", "learning_rate", "eval_bpb"} | _INT_FIELDS
_FLOPS_RTOL = 1e-6


def csv_path_for(path: str | os.PathLike) -> Path:
    """The CSV copy of a `results.jsonl`: same folder and stem, `.csv` suffix."""
    return Path(path).with_suffix(".csv")


def _where(row_label: str, field: str) -> str:
    return f"{row_label}, column {field!r}"


def validate_result(row: Mapping[str, Any], *, label: str = "result row") -> dict[str, Any]:
    """Check one row against `RESULT_FIELDS` and return it normalized (ints as int, numbers as float), in column
    order. `label` names the row in errors (e.g. "results.jsonl line 4")."""
    if not isinstance(row, Mapping):
        raise ValueError(f"{label}: a result row must be a JSON object, got {type(row).__name__}")
    unknown = [key for key in row if key not in RESULT_FIELDS and key != EXTRA_FIELD]
    if unknown:
        raise ValueError(
            f"{label}: unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
            f"{', '.join(RESULT_FIELDS)} (and an optional {EXTRA_FIELD!r} dict)"
        )
    missing = [field for field in RESULT_FIELDS if field not in row]
    if missing:
        raise ValueError(f"{label}: missing column(s) {', '.join(map(repr, missing))}")
    out: dict[str, Any] = {}
    for field in RESULT_FIELDS:
        value = row[field]
        where = _where(label, field)
        if field in _STR_FIELDS:
            if not isinstance(value, str) or (field != "output_dir" and not value.strip()):
                raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
            out[field] = value
            continue
        if value is None and field in _NULLABLE_FIELDS:
            out[field] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if field in _INT_FIELDS:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{where}: expected an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where}: expected a finite number, got {value!r}")
        if field in _POSITIVE_FIELDS and not value > 0:
            raise ValueError(f"{where}: must be positive, got {value!r}")
        out[field] = value
    if out["kind"] not in RESULT_KINDS:
        raise ValueError(f"{_where(label, 'kind')}: expected one of {', '.join(RESULT_KINDS)}, got {out['kind']!r}")
    expected = out["model_scale"] * out["tokens"]
    if abs(out["flops"] - expected) > _FLOPS_RTOL * expected:
        raise ValueError(
            f"{_where(label, 'flops')}: {out['flops']!r} is not model_scale * tokens = {expected!r} "
            "(flops must count the tokens actually trained)"
        )
    if EXTRA_FIELD in row:
        extra = row[EXTRA_FIELD]
        if not isinstance(extra, Mapping):
            raise ValueError(f"{_where(label, EXTRA_FIELD)}: expected a dict, got {extra!r}")
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{_where(label, EXTRA_FIELD)}: not JSON-serializable ({error})") from None
        out[EXTRA_FIELD] = dict(extra)
    return out


def _check_unique(rows: Iterable[Mapping[str, Any]], source: str) -> None:
    seen: set[str] = set()
    for row in rows:
        if row["run"] in seen:
            raise ValueError(f"{source}: duplicate run name {row['run']!r} (run names must be unique)")
        seen.add(row["run"])


def _format_csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else ""
    return str(value)


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((*RESULT_FIELDS, EXTRA_FIELD))
    for row in rows:
        writer.writerow([_format_csv_value(row.get(field)) for field in (*RESULT_FIELDS, EXTRA_FIELD)])
    return buffer.getvalue()


def _jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)


def _jsonl_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix != ".jsonl":
        raise ValueError(f"the results table is written as JSONL: expected a path ending in .jsonl, got {str(path)!r}")
    return path


@contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on `<path>.lock` (POSIX `flock`; a no-op where `fcntl` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write_results(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write a whole table (validated) to `path` (.jsonl) and its CSV copy, atomically; replaces what was there."""
    path = _jsonl_path(path)
    rows = [validate_result(row, label=f"row {index + 1}") for index, row in enumerate(rows)]
    _check_unique(rows, str(path))
    with _locked(path):
        write_text_atomic(path, _jsonl_text(rows))
        write_text_atomic(csv_path_for(path), _csv_text(rows))


def append_result(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append one finished run to `path` (.jsonl, created if missing) and rewrite the CSV copy beside it.

    The row is validated first, the existing table is read back (so a damaged table is reported, not extended)
    and a run name already in the table is an error. The new file replaces the old one in one rename.
    """
    path = _jsonl_path(path)
    new = validate_result(row, label=f"new row for {path}")
    with _locked(path):
        rows = _read_jsonl(path, allow_empty=True) if path.exists() else []
        if any(existing["run"] == new["run"] for existing in rows):
            raise ValueError(f"{path}: run {new['run']!r} is already in the table (run names must be unique)")
        rows.append(new)
        write_text_atomic(path, _jsonl_text(rows))
        write_text_atomic(csv_path_for(path), _csv_text(rows))


def _read_jsonl(path: Path, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            torn = number == len(lines) and not text.endswith("\n")
            hint = " (the last line is incomplete: a torn write?)" if torn else ""
            raise ValueError(f"{path} line {number}: not valid JSON{hint}: {error.msg}") from None
        rows.append(validate_result(record, label=f"{path} line {number}"))
    if not rows and not allow_empty:
        raise ValueError(f"{path}: the results table is empty (no finished runs)")
    _check_unique(rows, str(path))
    return rows


def _parse_csv_value(field: str, text: str, label: str) -> Any:
    if field in _STR_FIELDS:
        return text
    if field == EXTRA_FIELD:
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{_where(label, field)}: not valid JSON: {error.msg}") from None
    if not text.strip():
        if field in _NULLABLE_FIELDS:
            return None
        raise ValueError(f"{_where(label, field)}: empty value")
    try:
        return int(text) if field in _INT_FIELDS else float(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{_where(label, field)}: not a number: {text!r}") from None
        return number  # "128.0" in an integer column: validate_result decides


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: the results table is empty (no header)")
        header = [name.strip() for name in header]
        unknown = [name for name in header if name not in RESULT_FIELDS and name != EXTRA_FIELD]
        missing = [name for name in RESULT_FIELDS if name not in header]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
            if missing:
                parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
            raise ValueError(f"{path}: {'; '.join(parts)}")
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: a column appears twice in the header")
        rows = []
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            label = f"{path} line {number}"
            if len(cells) != len(header):
                raise ValueError(f"{label}: {len(cells)} values for {len(header)} columns (a torn or edited row?)")
            record = {}
            for name, cell in zip(header, cells):
                value = _parse_csv_value(name, cell, label)
                if name == EXTRA_FIELD and value is None:
                    continue
                record[name] = value
            rows.append(validate_result(record, label=label))
    if not rows:
        raise ValueError(f"{path}: the results table is empty (no finished runs)")
    _check_unique(rows, str(path))
    return rows


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a results table (`.jsonl` or `.csv`), validated, in file order.

    Raises `FileNotFoundError` for a missing file and `ValueError` naming the line and column for an empty table,
    malformed JSON (a torn last line), unknown or missing columns, non-numeric values or duplicate run names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results table at {str(path)!r}")
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    if path.suffix == ".csv":
        return _read_csv(path)
    raise ValueError(f"{path}: a results table is a .jsonl or a .csv file")


def finished_runs(path: str | os.PathLike) -> set[str]:
    """The run names already in the table at `path` (empty when the file does not exist yet): what a resumed
    sweep skips. A damaged table is an error, not an empty set, so a sweep never redoes runs by mistake."""
    path = Path(path)
    if not path.exists():
        return set()
    if path.suffix == ".jsonl":
        return {row["run"] for row in _read_jsonl(path, allow_empty=True)}
    return {row["run"] for row in read_results(path)}
