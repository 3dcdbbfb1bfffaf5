"""Checkpoint counters: documents and characters per dump and per source, between pipeline steps.

A `Ledger` passes documents through and records datatrove stats (`docs|dump=...`, `chars|source=...`); as every
datatrove stat, they are saved per task and summed over tasks. The report reads consecutive ledgers to get the
documents and characters in and out of each step, per dump; remixing reads them to know the mixture it rebalances.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from datatrove.data import DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.stats import PipelineStats

LEDGER_TYPE = "📒 - LEDGER"


class Ledger(PipelineStep):
    type = LEDGER_TYPE

    def __init__(self, checkpoint: str):
        self.name = f"after {checkpoint}"  # stats are named after the step, so set it before super().__init__
        super().__init__()
        self.checkpoint = checkpoint

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            dump = doc.metadata.get("dump", "unknown")
            source = doc.metadata.get("source", "unknown")
            self.stat_update("docs", f"docs|dump={dump}", f"docs|source={source}")
            self.stat_update("chars", f"chars|dump={dump}", f"chars|source={source}", value=len(doc.text))
            yield doc


def _total(value) -> float:
    return value.get("total", 0) if isinstance(value, dict) else value


def stage_stats(logs_folder: DataFolderLike, stage: str) -> list[dict]:
    """Stats of each step of a stage, summed over its tasks: `[{"name", "stats": {key: total}, "time"}]`."""
    folder = get_datafolder(logs_folder)
    merged = PipelineStats()
    for path in sorted(folder.list_files(f"{stage}/stats", glob_pattern="*.json")):
        with folder.open(path) as f:
            merged += PipelineStats.from_json(json.load(f))
    steps = []
    for step in merged.stats:
        data = step.to_dict()
        steps.append(
            {
                "name": data["name"],
                "stats": {k: _total(v) for k, v in data["stats"].items()},
                "time": _total(data.get("time_stats", 0)) or 0.0,
            }
        )
    return steps


@dataclass
class Counts:
    docs: int = 0
    chars: int = 0
    by_dump: dict[str, dict[str, int]] = field(default_factory=dict)
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_stats(cls, stats: dict) -> Counts:
        counts = cls(docs=int(stats.get("docs", 0)), chars=int(stats.get("chars", 0)))
        for key, value in stats.items():
            if "|" not in key:
                continue
            what, label = key.split("|", 1)
            kind, name = label.split("=", 1)
            table = counts.by_dump if kind == "dump" else counts.by_source
            table.setdefault(name, {"docs": 0, "chars": 0})[what] = int(value)
        return counts


def ledger_counts(steps: list[dict]) -> dict[str, Counts]:
    """Counts of every ledger among the steps of a stage, by checkpoint name."""
    prefix = f"{LEDGER_TYPE}: after "
    return {s["name"][len(prefix) :]: Counts.from_stats(s["stats"]) for s in steps if s["name"].startswith(prefix)}
