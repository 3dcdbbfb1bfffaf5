"""Remixing: rebalance sources (domains) toward target proportions, deterministically.

The rule (`remix_rates`), on the size of each source after filtering (characters by default, or documents):

* `weights`: the listed sources share their current total size in proportion to their weights; unlisted sources
  keep their size. `temperature` T instead: every source's target share is proportional to size ** (1 / T)
  (T = 1 keeps the mixture; larger T moves it toward uniform, raising under-represented sources, as the paper's
  remixing does), with the total size unchanged.
* rate = target size / current size, capped at `max_repeat`.
* each document is emitted floor(rate) times plus once more with probability frac(rate), the coin being
  u = xxh64(seed, id) / 2**64. The decision depends only on the document's id and the seed: reproducible, and the
  same for any number of tasks. Extra copies get the id `<id>#remix<i>`.
"""

from __future__ import annotations

import json
import math

from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.logging import logger
from datatrove.utils.typeshelper import StatHints

from deepseek_hf.data.config import RemixConfig
from deepseek_hf.data.ledger import ledger_counts, stage_stats
from deepseek_hf.data.text import hash64

PLAN_FILE = "remix_plan.json"


def remix_rates(sizes: dict[str, float], config: RemixConfig) -> dict[str, float]:
    """Sampling rate per source (see the module docstring)."""
    present = {s: float(v) for s, v in sizes.items() if v > 0}
    targets = dict(present)
    if config.weights:
        listed = [s for s in present if s in config.weights]
        weight_sum = sum(config.weights[s] for s in listed)
        if weight_sum > 0:
            mass = sum(present[s] for s in listed)
            targets.update({s: mass * config.weights[s] / weight_sum for s in listed})
        else:
            targets.update({s: 0.0 for s in listed})
    elif config.temperature is not None:
        total = sum(present.values())
        powered = {s: v ** (1.0 / config.temperature) for s, v in present.items()}
        norm = sum(powered.values())
        targets = {s: total * p / norm for s, p in powered.items()}
    return {s: min(targets[s] / present[s], config.max_repeat) for s in present}


def copies(doc_id: str, rate: float, seed: int) -> int:
    whole = math.floor(rate)
    coin = hash64(doc_id, salt=f"remix/{seed}") / 2**64
    return whole + int(coin < rate - whole)


class DomainRemixer(PipelineStep):
    """Up-/down-samples documents by the rate of their `metadata["source"]`; the rates come from the ledger
    `checkpoint` of the stage whose stats are in `counts_folder/<counts_stage>` (all of whose tasks are done)."""

    type = "⚖️ - REMIX"
    name = "⚖️ domain remix"

    def __init__(
        self,
        logs_folder: DataFolderLike,
        counts_stage: str,
        checkpoint: str,
        config: RemixConfig,
        plan_folder: DataFolderLike,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__()
        self.logs_folder = get_datafolder(logs_folder)
        self.counts_stage = counts_stage
        self.checkpoint = checkpoint
        self.config = config
        self.plan_folder = get_datafolder(plan_folder)
        self.exclusion_writer = exclusion_writer

    def plan(self) -> dict:
        counts = ledger_counts(stage_stats(self.logs_folder, self.counts_stage))[self.checkpoint]
        sizes = {source: c[self.config.unit] for source, c in counts.by_source.items()}
        rates = remix_rates(sizes, self.config)
        return {
            "unit": self.config.unit,
            "sizes": sizes,
            "rates": rates,
            "expected": {s: sizes[s] * rates.get(s, 1.0) for s in sizes},
        }

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        plan = self.plan()
        if rank == 0:
            with self.plan_folder.open(PLAN_FILE, "w") as f:
                json.dump(plan, f, indent=2)
            logger.info(f"remix rates: { {s: round(r, 3) for s, r in plan['rates'].items()} }")
        rates = plan["rates"]
        writer = self.exclusion_writer
        try:
            for doc in data:
                self.stat_update(StatHints.total)
                n = copies(doc.id, rates.get(doc.metadata.get("source"), 1.0), self.config.seed)
                if n == 0:
                    self.stat_update(StatHints.dropped, "dropped_remix_downsampled")
                    if writer:
                        doc.metadata["filter_reason"] = "remix_downsampled"
                        writer.write(doc, rank)
                    continue
                self.stat_update(StatHints.forwarded)
                yield doc
                for i in range(1, n):
                    self.stat_update("upsampled_copies")
                    yield Document(text=doc.text, id=f"{doc.id}#remix{i}", metadata=dict(doc.metadata))
        finally:
            if writer:
                writer.close()
