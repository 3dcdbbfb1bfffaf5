"""The data mixture of an alignment stage: several datasets, each with a category and a weight, and the categories a
stage keeps (the paper's two-stage SFT: stage 1 on everything, stage 2 on dialogue only).

In a recipe YAML (`datasets` like TRL's `DatasetMixtureConfig`, with a category and a weight per dataset):

```yaml
datasets:
  - {path: package://align_demo/sft_math.jsonl, format: alpaca, category: math, weight: 1.0}
  - {path: data/chat.jsonl, format: sharegpt, category: dialogue, weight: 2.0}
categories: [dialogue]        # this stage's selection; unset: every category
```

`weight` scales a dataset's usable records: 2.0 = every record twice, 0.5 = a seeded half, 1.5 = once plus a seeded
half. The mixture actually used (records read, skips by reason, records used per dataset and per category, the share
of each category) is written as JSON beside the run (`data_mixture.json`, atomically), so what a stage trained on is
on record, not only in the config.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..utils import entries_from_config, write_json_atomic
from .data import FORMATS, convert_dataset

logger = logging.getLogger(__name__)

__all__ = ["CATEGORIES", "DatasetSpec", "Mixture", "build_mixture", "parse_dataset_specs", "write_json_atomic"]

#: The paper's SFT categories (section 4: general language, math, code; safety) plus the conversational data that
#: stage 2 keeps.
CATEGORIES = ("general", "math", "code", "safety", "dialogue")
MIXTURE_FILE = "data_mixture.json"


@dataclass
class DatasetSpec:
    """One dataset of a mixture: a JSON / JSONL file (or `package://align_demo/...`), its format, category and
    weight; `name` defaults to the file name."""

    path: str
    category: str
    format: str = "auto"
    weight: float = 1.0
    name: str | None = None

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(
                f"dataset {self.path!r}: unknown category {self.category!r}; one of {', '.join(CATEGORIES)}"
            )
        if self.format not in FORMATS:
            raise ValueError(f"dataset {self.path!r}: unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        if not (isinstance(self.weight, int | float) and math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"dataset {self.path!r}: weight must be a positive number, got {self.weight!r}")
        self.name = self.name or os.path.basename(self.path)


def parse_dataset_specs(items: list[Any] | None) -> list[DatasetSpec]:
    """The `datasets` list of a YAML (dicts; unknown keys are errors naming the valid ones) as `DatasetSpec`s."""
    if not items:
        raise ValueError("no datasets: set `datasets` (a list of {path, category, format, weight}) in the config")
    specs = entries_from_config(items, DatasetSpec, option="datasets", required=("path", "category"))
    names = Counter(spec.name for spec in specs)
    if duplicated := [name for name, count in names.items() if count > 1]:
        raise ValueError(f"datasets named twice: {duplicated} (give each a distinct `name`)")
    return specs


@dataclass
class Mixture:
    """The records of a stage and the account of how they were chosen (`as_dict()` is the JSON written)."""

    records: list[dict]
    report: dict[str, Any]


def build_mixture(
    specs: list[DatasetSpec],
    *,
    kind: str,
    categories: list[str] | None = None,
    length_fn: Callable[[dict], int] | None = None,
    max_length: int | None = None,
    seed: int = 42,
) -> Mixture:
    """Read, convert, filter and weight the datasets of the stage's `categories` (None: all) into one shuffled list.

    Each record gets a `category` column (kept through TRL's tokenization, so the data a trainer sees can be counted
    by category). Datasets outside the selection are not read; a selection that leaves no dataset is an error.
    """
    if categories is not None:
        unknown = sorted(set(categories) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; one of {', '.join(CATEGORIES)}")
    selected = [s for s in specs if categories is None or s.category in categories]
    if not selected:
        raise ValueError(
            f"no dataset in the selected categories {categories}: the datasets are "
            + ", ".join(f"{s.name} ({s.category})" for s in specs)
        )
    rng = random.Random(seed)
    records: list[dict] = []
    per_dataset = []
    for spec in selected:
        usable, report = convert_dataset(spec.path, spec.format, kind=kind, length_fn=length_fn, max_length=max_length)
        copies, fraction = divmod(spec.weight, 1.0)
        chosen = usable * int(copies) + rng.sample(usable, round(fraction * len(usable)))
        records += [{**record, "category": spec.category} for record in chosen]
        per_dataset.append({**asdict(spec), **report.as_dict(), "used": len(chosen)})
        logger.info("%s (%s, weight %g): %d usable of %d, %d used", spec.name, spec.category, spec.weight,
                    report.usable, report.records, len(chosen))  # fmt: skip
    if not records:
        raise ValueError("the mixture is empty: every selected dataset's weight rounds to zero records")
    rng.shuffle(records)
    by_category = Counter(r["category"] for r in records)
    report = {
        "kind": kind,
        "categories_selected": list(categories) if categories is not None else "all",
        "not_selected": [{"name": s.name, "category": s.category} for s in specs if s not in selected],
        "max_length": max_length,
        "length_rule": "a record longer than max_length tokens (rendered by the chat template; DPO: prompt plus the "
        "longer answer) is dropped and counted as too_long, never truncated: truncation would cut the EOS that ends "
        "the answer and teach the model not to stop",
        "datasets": per_dataset,
        "records_used": len(records),
        "by_category": dict(sorted(by_category.items())),
        "share_by_category": {c: round(n / len(records), 4) for c, n in sorted(by_category.items())},
        "skipped_total": sum(sum(d["skipped"].values()) for d in per_dataset),
        "seed": seed,
    }
    return Mixture(records=records, report=report)
