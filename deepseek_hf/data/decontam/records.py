"""Decontaminating SFT / DPO data files with the pipeline's `DecontaminationFilter` (`deepseek-hf data decontaminate`).

A record's text is every turn of its conversation (SFT), or its prompt, chosen and rejected answers (DPO), as the
alignment recipes read them (`deepseek_hf.alignment.data`: Alpaca, messages, ShareGPT and preference formats), or
the `text` field of a plain document. The output holds the input records unchanged, minus the contaminated ones
(`drop`), or all with a `contamination` list added (`flag`). A record the alignment readers cannot use (no answer,
an unknown role, ...) cannot be checked: it is not written, and counted by reason in the report.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections import Counter
from pathlib import Path

from datatrove.data import Document

from deepseek_hf.data.decontam.index import NGramIndex, Thresholds
from deepseek_hf.data.decontam.steps import CONTAMINATION_KEY, DecontaminationFilter, build_report, write_report
from deepseek_hf.data.errors import InputError

logger = logging.getLogger(__name__)

TEXT_FORMAT = "text"
_RECORD = "_record"


def detect(record, path: str) -> str:
    """The alignment format of a record, or `text` for a plain `{"text": ...}` document."""
    from deepseek_hf.alignment.data import detect_format

    if isinstance(record, dict) and "text" in record:
        return TEXT_FORMAT
    return detect_format(record, path)


def record_text(record, fmt: str) -> str:
    """All the text a training run would see of one record; raises the alignment readers' `Skip` if unusable."""
    from deepseek_hf.alignment.data import SFT_FORMATS, Skip, convert_records

    if fmt == TEXT_FORMAT:
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise Skip("malformed", "no string `text` field")
        return record["text"]
    (converted,), _ = convert_records([record], fmt, kind="sft" if fmt in SFT_FORMATS else "dpo")
    turns = converted.get("messages") or [m for key in ("prompt", "chosen", "rejected") for m in converted[key]]
    return "\n".join(message["content"] for message in turns)


def _write_jsonl(records: list, path: Path) -> None:
    """All records, to a temporary file beside `path`, then renamed (gzip for a `.gz` name)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with (gzip.open if path.suffix == ".gz" else open)(tmp, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    os.replace(tmp, path)


def decontaminate_file(
    input_path: str,
    output_path: str,
    index: NGramIndex,
    thresholds: Thresholds,
    mode: str = "drop",
    fmt: str = "auto",
    settings: dict | None = None,
) -> dict:
    """Check every record of `input_path`, write the kept ones to `output_path` and the report beside it
    (`<output>.decontamination.{json,md}`); returns the report."""
    from deepseek_hf.alignment.data import FORMATS, Skip, read_records

    if fmt not in (*FORMATS, TEXT_FORMAT):
        raise InputError(f"--format {fmt!r}: expected one of {', '.join((*FORMATS, TEXT_FORMAT))}")
    try:
        records = read_records(input_path)
        if not records:
            raise InputError(f"{input_path}: no records")
        fmt = detect(records[0], input_path) if fmt == "auto" else fmt
    except (ValueError, FileNotFoundError) as error:
        raise InputError(str(error)) from None
    skipped, docs = Counter(), []
    for number, record in enumerate(records, 1):
        try:
            text = record_text(record, fmt)
        except Skip as skip:
            skipped[skip.reason] += 1
            continue
        except ValueError as error:  # a format that does not fit the kind (Alpaca data read as preference pairs)
            raise InputError(str(error)) from None
        name = str(record["id"]) if isinstance(record, dict) and "id" in record else f"record {number}"
        docs.append(Document(text, name, metadata={_RECORD: number - 1}))
    if not docs:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
        raise InputError(
            f"{input_path}: no usable {fmt} record ({len(records)} read; {reasons}) (the format is set with --format)"
        )
    if skipped:
        logger.warning(
            "%s: %d records not usable, not checked, not written: %s", input_path, sum(skipped.values()), dict(skipped)
        )
    step = DecontaminationFilter(index, thresholds, mode)
    kept = []
    for doc in step.run(iter(docs)):
        record = records[doc.metadata[_RECORD]]
        if mode == "flag":
            record = {**record, CONTAMINATION_KEY: doc.metadata[CONTAMINATION_KEY]}
        kept.append(record)
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(kept, output)
    extra = {"input": input_path, "format": fmt, "records": len(records), "written": len(kept)}
    report = build_report(index, [{"documents": step.documents, "hits": step.hits}], settings or {}, **extra)
    report["skipped"] = dict(sorted(skipped.items()))
    write_report(
        report, str(output.parent), (f"{output.name}.decontamination.json", f"{output.name}.decontamination.md")
    )
    return report
