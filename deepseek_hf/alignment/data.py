"""Instruction and preference data in TRL's conversational format, with every unusable record counted.

Readers for the common formats, each turning one record into TRL's conversational form or a skip reason:

| format | record | becomes |
|---|---|---|
| `alpaca` | `{instruction, input?, output, system?, history?: [[q, a], ...]}` | `{"messages": [...]}` |
| `messages` | `{"messages": [{"role", "content"}, ...]}` (roles user / assistant / system) | `{"messages": [...]}` |
| `sharegpt` | `{"conversations": [{"from", "value"}, ...]}` (human / gpt / system; user / assistant too) | `{"messages"}` |
| `preference` | `{prompt, chosen, rejected}`, each a string or a list of messages | `{prompt, chosen, rejected}` |
| `sharegpt_preference` | LLaMA-Factory's `{conversations, chosen: {from, value}, rejected: {from, value}}` | same |

`auto` picks the format from the first record's keys. A record that cannot be used is not an exception but a counted
skip (`SKIP_REASONS`), reported per dataset (`ConversionReport`) and written to the run's mixture JSON; a dataset
with no usable record at all is an error, as is a file that is missing or not JSON / JSONL.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils import expand_package_path

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "SFT_FORMATS",
    "PREFERENCE_FORMATS",
    "SKIP_REASONS",
    "ConversionReport",
    "Skip",
    "convert_records",
    "detect_format",
    "read_records",
    "resolve_data_path",
]

SFT_FORMATS = ("alpaca", "messages", "sharegpt")
PREFERENCE_FORMATS = ("preference", "sharegpt_preference")
FORMATS = (*SFT_FORMATS, *PREFERENCE_FORMATS, "auto")

#: Why a record is not used (the keys of the skip counts).
SKIP_REASONS = {
    "malformed": "not an object, or a field of the wrong type (e.g. content that is not a string)",
    "missing_role": "a message without a role (`role` / `from`)",
    "unknown_role": "a role other than user / assistant / system (ShareGPT: human / gpt / system)",
    "empty_prompt": "no user message, or an empty one",
    "empty_response": "an assistant message that is empty or only whitespace",
    "no_response": "a conversation with no assistant turn after the last user turn (nothing to learn)",
    "identical_pair": "a preference pair whose chosen and rejected answers are the same text",
    "too_long": "longer than max_length tokens once rendered by the chat template (dropped, not truncated)",
}
_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class Skip(Exception):
    """A record that cannot be used; `reason` is a key of `SKIP_REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        assert reason in SKIP_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class ConversionReport:
    """What became of one dataset's records: read, usable, and the skips by reason (with the first few examples)."""

    path: str
    format: str
    records: int = 0
    usable: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # "record 7: unknown_role: 'function_call'" (the first 5)

    def skip(self, index: int, error: Skip) -> None:
        self.skipped[error.reason] += 1
        if len(self.examples) < 5:
            self.examples.append(f"record {index}: {error}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "records": self.records,
            "usable": self.usable,
            "skipped": dict(sorted(self.skipped.items())),
            "skip_examples": list(self.examples),
        }


def resolve_data_path(path: str) -> Path:
    """`package://align_demo/x.jsonl` -> the file shipped in `deepseek_hf/assets/`; a missing file is an error."""
    resolved = Path(expand_package_path(path)).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(
            f"dataset file {path!r} not found" + (f" ({resolved})" if str(resolved) != path else "")
        )
    return resolved


def read_records(path: str) -> list[Any]:
    """All records of a JSON array file or a JSONL file (optionally .gz): malformed JSON is a `ValueError` naming the
    file and line; a JSON object holding one list (e.g. `{"data": [...]}`) is not guessed at: it is an error too."""
    file = resolve_data_path(path)
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
        return records
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
    if len(records) == 1 and _wraps_records(records[0]):
        raise ValueError(f"{path}: a single JSON object, not a list of records (JSON array or JSONL expected)")
    return records


def _wraps_records(value: Any) -> bool:
    """`{"data": [{...}, ...]}`: one object whose only job is to hold the records."""
    return (
        isinstance(value, dict)
        and not (value.keys() & {*_FORMAT_KEYS, "chosen"})
        and any(isinstance(v, list) and v and isinstance(v[0], dict) for v in value.values())
    )


_FORMAT_KEYS = {  # a key that only one format has -> that format
    "instruction": "alpaca",
    "messages": "messages",
    "conversations": "sharegpt",
    "prompt": "preference",
}


def detect_format(record: Any, path: str = "") -> str:
    """The format of a record from its keys (the `auto` format): see the module docstring's table."""
    if isinstance(record, dict):
        if "chosen" in record and "rejected" in record:
            return "sharegpt_preference" if "conversations" in record else "preference"
        for key, name in _FORMAT_KEYS.items():
            if key in record:
                return name
        keys = sorted(record)
    else:
        keys = type(record).__name__
    raise ValueError(
        f"{path}: cannot tell the format of the first record (keys {keys}); set `format` to one of "
        f"{', '.join(FORMATS[:-1])}"
    )


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Skip("malformed", f"{what} is {type(value).__name__}, not a string")
    return value


def _check_conversation(messages: list[dict[str, str]], *, needs_answer: bool = True) -> list[dict[str, str]]:
    if not any(m["role"] == "user" and m["content"].strip() for m in messages):
        raise Skip("empty_prompt")
    for message in messages:
        if message["role"] == "assistant" and not message["content"].strip():
            raise Skip("empty_response")
    if needs_answer and messages[-1]["role"] != "assistant":
        raise Skip("no_response", f"the last turn is {messages[-1]['role']!r}")
    return messages


def _chat_messages(raw: Any, *, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise Skip("malformed", "the conversation is not a non-empty list")
    messages = []
    for turn in raw:
        if not isinstance(turn, dict):
            raise Skip("malformed", "a turn is not an object")
        if turn.get(role_key) in (None, ""):
            raise Skip("missing_role", f"a turn without {role_key!r}")
        role = turn[role_key]
        if role not in roles:
            raise Skip("unknown_role", repr(role))
        messages.append({"role": roles[role], "content": _text(turn.get(content_key), f"{role_key}={role!r} text")})
    return messages


def _from_alpaca(record: dict) -> dict:
    instruction = _text(record.get("instruction"), "instruction")
    extra = record.get("input") or ""
    prompt = f"{instruction}\n\n{_text(extra, 'input')}" if extra.strip() else instruction
    messages = []
    if record.get("system"):
        messages.append({"role": "system", "content": _text(record["system"], "system")})
    for pair in record.get("history") or []:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise Skip("malformed", "a history entry is not a [query, answer] pair")
        messages += [
            {"role": "user", "content": _text(pair[0], "history query")},
            {"role": "assistant", "content": _text(pair[1], "history answer")},
        ]
    messages += [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": _text(record.get("output"), "output")},
    ]
    return {"messages": _check_conversation(messages)}


def _from_messages(record: dict) -> dict:
    messages = _chat_messages(record.get("messages"), role_key="role", content_key="content", roles=_ROLES)
    return {"messages": _check_conversation(messages)}


def _from_sharegpt(record: dict) -> dict:
    turns = _chat_messages(record.get("conversations"), role_key="from", content_key="value", roles=_SHAREGPT_ROLES)
    if record.get("system"):
        turns.insert(0, {"role": "system", "content": _text(record["system"], "system")})
    return {"messages": _check_conversation(turns)}


def _answer(value: Any, what: str, roles: dict[str, str], role_key: str, content_key: str) -> list[dict[str, str]]:
    """A preference answer: a string, one message, or a list of messages (TRL's conversational form)."""
    if isinstance(value, str):
        messages = [{"role": "assistant", "content": value}]
    elif isinstance(value, dict):
        messages = _chat_messages([value], role_key=role_key, content_key=content_key, roles=roles)
    else:
        messages = _chat_messages(value, role_key=role_key, content_key=content_key, roles=roles)
    if any(m["role"] != "assistant" for m in messages):
        raise Skip("unknown_role", f"{what} holds a non-assistant turn")
    if not "".join(m["content"] for m in messages).strip():
        raise Skip("empty_response", what)
    return messages


def _preference(prompt: list[dict[str, str]], chosen, rejected) -> dict:
    _check_conversation(prompt, needs_answer=False)
    if prompt[-1]["role"] != "user":
        raise Skip("empty_prompt", f"the prompt ends with a {prompt[-1]['role']!r} turn, not a user turn")
    if [m["content"].strip() for m in chosen] == [m["content"].strip() for m in rejected]:
        raise Skip("identical_pair")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _from_preference(record: dict) -> dict:
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    else:
        prompt = _chat_messages(prompt, role_key="role", content_key="content", roles=_ROLES)
    chosen = _answer(record.get("chosen"), "chosen", _ROLES, "role", "content")
    rejected = _answer(record.get("rejected"), "rejected", _ROLES, "role", "content")
    return _preference(prompt, chosen, rejected)


def _from_sharegpt_preference(record: dict) -> dict:
    prompt = _chat_messages(record.get("conversations"), role_key="from", content_key="value", roles=_SHAREGPT_ROLES)
    if record.get("system"):
        prompt.insert(0, {"role": "system", "content": _text(record["system"], "system")})
    chosen = _answer(record.get("chosen"), "chosen", _SHAREGPT_ROLES, "from", "value")
    rejected = _answer(record.get("rejected"), "rejected", _SHAREGPT_ROLES, "from", "value")
    return _preference(prompt, chosen, rejected)


_CONVERTERS = {
    "alpaca": _from_alpaca,
    "messages": _from_messages,
    "sharegpt": _from_sharegpt,
    "preference": _from_preference,
    "sharegpt_preference": _from_sharegpt_preference,
}


def convert_records(records: list[Any], fmt: str, *, path: str = "", kind: str = "sft") -> tuple[list[dict], str]:
    """Convert `records` (format `fmt`, or `auto`) for `kind` "sft" (-> messages) or "dpo" (-> prompt/chosen/rejected).

    Returns the converted records and the format used; skips are raised as `Skip` per record and counted by the
    caller (`convert_dataset`). A format that does not fit the kind (Alpaca data for DPO) is an error.
    """
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        if not records:
            raise ValueError(f"{path}: no records")
        fmt = detect_format(records[0], path)
    wanted = SFT_FORMATS if kind == "sft" else PREFERENCE_FORMATS
    if fmt not in wanted:
        raise ValueError(
            f"{path}: format {fmt!r} is not {'instruction' if kind == 'sft' else 'preference'} data for {kind.upper()} "
            f"(expected one of {', '.join(wanted)})"
        )
    return [_CONVERTERS[fmt](r) if isinstance(r, dict) else _raise_malformed(r) for r in records], fmt


def _raise_malformed(record):
    raise Skip("malformed", f"a record is {type(record).__name__}, not an object")


def convert_dataset(path: str, fmt: str = "auto", *, kind: str = "sft", length_fn=None, max_length: int | None = None):
    """Read and convert one file; returns (usable records, `ConversionReport`). Each record is converted on its own,
    so one bad record is one counted skip. `length_fn(record) -> tokens` with `max_length` drops the over-long."""
    records = read_records(path)
    if fmt == "auto":
        if not records:
            raise ValueError(f"{path}: no records")
        fmt = detect_format(records[0], path)
    convert_records([], fmt, path=path, kind=kind)  # checks the format against the kind
    report = ConversionReport(path=path, format=fmt, records=len(records))
    usable = []
    for index, record in enumerate(records):
        try:
            (converted,), _ = convert_records([record], fmt, path=path, kind=kind)
            if max_length is not None and length_fn is not None:
                length = length_fn(converted)
                if length > max_length:
                    raise Skip("too_long", f"{length} tokens > max_length {max_length}")
        except Skip as skip:
            report.skip(index, skip)
            continue
        usable.append(converted)
    report.usable = len(usable)
    if report.skipped:
        logger.warning(
            "%s: %d of %d records skipped (%s)",
            path,
            sum(report.skipped.values()),
            report.records,
            ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items())),
        )
    if not usable:
        detail = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items())) or "empty file"
        raise ValueError(f"{path}: no usable record ({report.records} read; {detail})")
    return usable, report
