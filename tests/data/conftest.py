"""Helpers for the data-pipeline tests (fixture `dh`): synthetic corpora with known duplicates, fast configs, output
readers."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

# A small English vocabulary with Gopher's stop words, so synthetic documents pass the quality filter.
WORDS = (
    "the be to of and that have with a in is it for on as was by at from this are or an which river city music "
    "water history people between during after before under language science mountain village winter summer "
    "market school garden painter engineer library station harbor island forest bridge castle theater museum "
    "ancient modern northern southern eastern western famous quiet bright narrow wooden golden silver ancient"
).split()


def make_text(rng: random.Random, n_words: int = 100) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def near_copy(text: str, rng: random.Random, changes: int = 1) -> str:
    """`text` with `changes` words replaced (100 words, 1 change: Jaccard of 5-word shingles ~0.9)."""
    words = text.split()
    for i in rng.sample(range(len(words)), changes):
        words[i] = "zzz" + words[i]
    return " ".join(words)


def write_jsonl(path: Path, records: list, compress: bool = False) -> Path:
    lines = [r if isinstance(r, bytes) else (json.dumps(r, ensure_ascii=False) + "\n").encode() for r in records]
    data = b"".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def fast_config(tmp_path: Path, inputs: list, name: str = "run", **sections):
    """A config that runs in-process (one worker), without the language model, remix or progress bars."""
    from deepseek_hf.data.config import DataPipelineConfig

    data = {
        "output_dir": str(tmp_path / name),
        "inputs": inputs,
        "executor": {"tasks": 1, "workers": 1},
        "ingest": {"progress": False},
        "filters": {"quality": {"min_doc_words": 5}},
        "remix": {"enabled": False},
    }
    data.update(sections)
    return DataPipelineConfig(**data)


def output_records(root: str | Path) -> list[tuple]:
    """(id, text, metadata json) of every output record, sorted: comparable across runs and task counts."""
    from deepseek_hf.data.output import output_files

    records = []
    for path in output_files(str(root)):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                records.append((r["id"], r["text"], json.dumps(r["metadata"], sort_keys=True)))
    return sorted(records)


def excluded_records(root: str | Path, step: str) -> list[dict]:
    records = []
    for path in sorted((Path(root) / "excluded" / step).glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            records += [json.loads(line) for line in f]
    return records


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


@pytest.fixture(scope="session")
def dh() -> SimpleNamespace:
    """The helpers above, as a fixture (test folders are not packages, so they cannot be imported)."""
    return SimpleNamespace(
        WORDS=WORDS,
        make_text=make_text,
        near_copy=near_copy,
        write_jsonl=write_jsonl,
        fast_config=fast_config,
        output_records=output_records,
        excluded_records=excluded_records,
    )
