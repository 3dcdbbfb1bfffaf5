"""A lower-quality copy of a corpus, for a scaling study by data quality (DeepSeek LLM Table 4) on one's own data.

Table 4 compares the fitted exponents on corpora of different quality. Two real corpora of known different quality
are rarely at hand in a small study, so `degrade_corpus` makes one from the other with a known, visible defect:
a fraction of its documents get their words (characters, for Chinese text) shuffled, which keeps the unigram
statistics and destroys everything a model could learn beyond them, and a fraction are repeated verbatim, as
copies left by a missing deduplication. Same documents, same vocabulary, less to learn: the study then asks
whether the compute-optimal split moves with it.

    deepseek-hf scaling degrade-corpus package://demo/corpus_sample.jsonl.gz outputs/noisy.jsonl \
        --shuffle-fraction 0.5 --duplicate-fraction 0.2
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ..utils import expand_package_path, write_text_atomic

__all__ = ["DegradeReport", "degrade_corpus", "shuffle_units"]


@dataclass(frozen=True)
class DegradeReport:
    documents: int  # in the source
    shuffled: int
    duplicated: int  # extra copies appended
    written: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def shuffle_units(text: str, rng: random.Random) -> str:
    """`text` with its units in random order: characters for text that is mostly CJK, else whitespace words."""
    visible = [char for char in text if not char.isspace()]
    if visible and sum(map(_is_cjk, visible)) > len(visible) / 2:
        rng.shuffle(visible)
        return "".join(visible)
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def _read_documents(path: Path, text_key: str) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    documents = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} line {number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get(text_key), str):
                raise ValueError(f"{path} line {number}: no string field {text_key!r}")
            documents.append(record)
    if not documents:
        raise ValueError(f"{path} holds no documents")
    return documents


def degrade_corpus(
    source: str,
    output: str,
    *,
    shuffle_fraction: float = 0.5,
    duplicate_fraction: float = 0.0,
    seed: int = 0,
    text_key: str = "text",
) -> DegradeReport:
    """Write to `output` (JSONL, atomically) every document of `source` (JSONL or .jsonl.gz, `package://` allowed),
    `shuffle_fraction` of them (drawn with `seed`) with shuffled units, then `duplicate_fraction` of them again as
    verbatim copies (the copies' `id` gets a `-copy` suffix). Records keep their other fields."""
    for name, value in (("shuffle_fraction", shuffle_fraction), ("duplicate_fraction", duplicate_fraction)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    path = Path(expand_package_path(source))
    if not path.is_file():
        raise FileNotFoundError(f"corpus {source!r} does not exist")
    if not output.endswith(".jsonl"):
        raise ValueError(f"output {output!r}: the degraded corpus is written as JSONL, name it *.jsonl")
    documents = _read_documents(path, text_key)
    rng = random.Random(seed)
    order = list(range(len(documents)))
    rng.shuffle(order)
    to_shuffle = set(order[: round(shuffle_fraction * len(documents))])
    rng.shuffle(order)
    to_copy = sorted(order[: round(duplicate_fraction * len(documents))])
    out = []
    for index, record in enumerate(documents):
        if index in to_shuffle:
            record = {**record, text_key: shuffle_units(record[text_key], rng)}
        out.append(record)
    for index in to_copy:
        copy = dict(out[index])
        if "id" in copy:
            copy["id"] = f"{copy['id']}-copy"
        out.append(copy)
    write_text_atomic(Path(output), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    return DegradeReport(len(documents), len(to_shuffle), len(to_copy), len(out))
