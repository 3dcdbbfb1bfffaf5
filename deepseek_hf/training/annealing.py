"""Instruction data annealed into pretraining: added sources that enter the run from a token fraction onward.

The paper (arXiv 2401.02954, section 5.1) mixed 5M instruction examples into the last 10% of the pretraining tokens.
Here the recipe's `anneal_sources` add corpora that way; decided once:

* **Where a source enters.** At `start_fraction` of the run's token budget D (default: where the multi-step
  schedule's last stage starts, its last milestone, 0.9 by default; other schedules: the paper's 0.9, said in the
  log), rounded up to a whole optimizer step by the LR schedule's own rule (`schedule_phase`): the first step whose
  tokens before it reach `start_fraction * D`. From there each source has `share` of the rows, the main corpus the
  rest. Every row comes from one corpus: each source is packed on its own (its labels and position ids as for the
  main corpus), so no row mixes instruction and web text.
* **The order lives in the dataset.** `AnnealedDataset` maps run position `i` (0 .. max_steps x global batch - 1)
  to (corpus, row) by a deterministic interleave, and the Trainer reads it with a sequential sampler; optimizer
  step `t` takes positions `[t*G, (t+1)*G)` for any number of processes (accelerate hands micro-batch `b` to
  process `b % world_size`), and a resume skips the steps done, so it is exact. The interleave is exact, not a draw:
  among the first `n` positions after an entry point the added sources hold `floor(n * sum(shares))`, split among
  them by the same rule nested (source 1 gets `floor(a * s1 / S)` of the first `a` added rows, and so on); every
  step's batch holds each source's share to within one row.
* **Each corpus is a stream** read in a seeded permutation of its rows; a stream that runs out starts again in a
  fresh permutation (seed, stream, pass). The passes of each corpus are counted and a re-cycled source is logged.
  The main corpus is shuffled by the same rule (not by the Trainer's `RandomSampler`), and its order does not depend
  on the budget: the rows before the first entry point are the same for any D.
* **A larger budget** (continuing from the stage-1 checkpoint with a larger `max_tokens`): the entry points move
  with the new budget, as the LR milestones do (they are fractions of D). The layout so far is kept in every
  checkpoint (`AnnealedMixtureCallback`'s state in `trainer_state.json`), so the rows before the resumed step are the
  ones trained on, and every stream continues where it stopped (nothing skipped or repeated); only the positions
  after the resumed step follow the new layout. (The resume's position in the data is a step count, as in
  `PretrainTrainer`: with another global batch size it is approximate.)
* **Instruction data as text.** A source with an SFT `format` (alpaca, messages, sharegpt, auto; read and checked
  by `deepseek_hf.alignment.data`, skips counted) is rendered as plain documents in the paper's chat format, by the
  DeepSeek chat template with no BOS / EOS text: `User: {prompt}\\n\\nAssistant: {answer}` (turns separated by a
  blank line); tokenized as documents, each gets the tokenizer's BOS and one EOS, as every document does. `text`
  (the default) reads documents as `dataset_path` does.
* **What was seen** is tallied step by step from the layout, per LR stage (`lr_phase`), and written with the
  layout to `<output_dir>/data_mixture.json` (and into `all_results.json` by the recipe).
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ..utils import entries_from_config, expand_package_path, staged_directory
from .callbacks import SchedulePhaseCallback, phase_name
from .packing import PackedDataset, build_packed_dataset, dataset_path_exists, source_fingerprint
from .schedules import PAPER_MILESTONES, schedule_phase

__all__ = [
    "ANNEAL_FORMATS",
    "AnnealSource",
    "AnnealedDataset",
    "AnnealedMixtureCallback",
    "MIXTURE_FILE",
    "build_anneal_datasets",
    "parse_anneal_sources",
    "plan_anneal",
    "render_conversation",
]

logger = logging.getLogger(__name__)

ANNEAL_FORMATS = ("text", "alpaca", "messages", "sharegpt", "auto")
MIXTURE_FILE = "data_mixture.json"
MAIN = "main"  # the name of the main corpus in layouts and reports
_RENDER_RULE = "deepseek-chat-template-no-bos-eos-v1"  # in the cache key of rendered sources: change with the rule


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnnealSource:
    """One added source: documents (`format: text`) or instruction data (an SFT format), its share of the rows from
    `start_fraction` of the token budget on (None: where the LR schedule's last stage starts)."""

    path: str
    share: float
    start_fraction: float | None = None
    text_field: str = "text"
    format: str = "text"
    name: str | None = None

    def __post_init__(self):
        where = f"anneal source {self.path!r}"
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"an anneal source needs a path, got {self.path!r}")
        if self.format not in ANNEAL_FORMATS:
            raise ValueError(f"{where}: unknown format {self.format!r}; one of {', '.join(ANNEAL_FORMATS)}")
        if not _is_fraction(self.share):
            raise ValueError(f"{where}: share must be a number in (0, 1), got {self.share!r}")
        if self.start_fraction is not None and not _is_fraction(self.start_fraction):
            raise ValueError(f"{where}: start_fraction must be in (0, 1) or null, got {self.start_fraction!r}")
        if not dataset_path_exists(self.path):
            raise FileNotFoundError(f"{where} does not exist")
        object.__setattr__(self, "name", self.name or Path(self.path).name.split(".")[0])
        if self.name == MAIN:
            raise ValueError(f"{where}: the name {MAIN!r} is the main corpus's; give another `name`")


def _is_fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < 1.0


def parse_anneal_sources(items: list[Any] | None) -> list[AnnealSource]:
    """The `anneal_sources` of a config (mappings in the YAML, JSON objects on the command line) as `AnnealSource`s;
    unknown keys, a share outside (0, 1), shares that sum to 1 or more, and names given twice are errors."""
    sources = entries_from_config(items, AnnealSource, option="anneal_sources", required=("path", "share"))
    total = sum(source.share for source in sources)
    if total >= 1.0 - 1e-9:
        raise ValueError(f"the anneal_sources' shares sum to {total:g}: they must leave the main corpus a share (< 1)")
    names = [source.name for source in sources]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"anneal sources named twice: {duplicated} (give each a distinct `name`)")
    return sources


def default_start_fraction(args) -> tuple[float, str]:
    """Where a source without `start_fraction` enters: the multi-step schedule's last milestone, else the paper's 0.9."""
    if args.lr_scheduler_type == "multi_step":
        milestones = (args.lr_scheduler_kwargs or {}).get("milestones", PAPER_MILESTONES)
        return float(milestones[-1]), "the multi-step schedule's last milestone"
    return PAPER_MILESTONES[-1], f"the paper's last 10% ({args.lr_scheduler_type} has no last stage)"


@dataclass(frozen=True)
class SourcePlan:
    """Where one source enters a run: the fraction asked for (and why), the first step and row it holds."""

    name: str
    share: float
    start_fraction: float
    start_fraction_from: str
    start_step: int
    start_row: int


def plan_anneal(sources: list[AnnealSource], plan, args) -> list[SourcePlan]:
    """The entry step of each source in a run of `plan` (a `TrainingPlan`); a source that would enter at or after
    the last step is an error (it would never be trained on)."""
    planned = []
    for source in sources:
        fraction, origin = (
            (source.start_fraction, "config") if source.start_fraction is not None else default_start_fraction(args)
        )
        step = _first_step_at(fraction, plan)
        if step >= plan.max_steps:
            raise ValueError(
                f"anneal source {source.name!r} would enter at step {step} of a {plan.max_steps}-step run "
                f"(start_fraction {fraction:g} of {plan.total_tokens:.4g} tokens): it would never be trained on; "
                "lower start_fraction or raise the budget"
            )
        planned.append(SourcePlan(source.name, source.share, fraction, origin, step, step * plan.global_batch_size))
    return planned


def _first_step_at(fraction: float, plan) -> int:
    """The first optimizer step whose tokens before it reach `fraction` of the budget (the LR milestones' rule)."""
    low, high = 0, plan.max_steps
    while low < high:
        middle = (low + high) // 2
        phase = schedule_phase(
            middle,
            middle * plan.batch_size_tokens,
            warmup_steps=0,
            total_tokens=plan.total_tokens,
            milestones=(fraction,),
        )
        low, high = (low, middle) if phase == 2 else (middle + 1, high)
    return low


# ----------------------------------------------------------------------------------------------------------------
# The added corpora: documents, or instruction data rendered as documents
# ----------------------------------------------------------------------------------------------------------------
def render_conversation(messages: list[dict[str, str]]) -> str:
    """A conversation as a plain document in the paper's chat format: the DeepSeek chat template without BOS / EOS
    text, turns separated by a blank line (`User: q\\n\\nAssistant: a`)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    from ..tokenizer import CHAT_TEMPLATE

    (text,), _ = render_jinja_template(
        conversations=[messages], chat_template=CHAT_TEMPLATE, bos_token="", eos_token="\n\n"
    )
    return text.rstrip("\n")


def _rendered_documents(source: AnnealSource, cache_dir: Path) -> Path:
    """The instruction records of `source` rendered as `{"text": ...}` lines, once per source file (cached)."""
    from ..alignment.data import convert_dataset

    path = expand_package_path(source.path)
    key = f"{source_fingerprint(path)}-{source.format}-{_RENDER_RULE}"
    folder = cache_dir / "anneal-rendered" / key
    if not folder.is_dir():
        records, report = convert_dataset(path, source.format, kind="sft")
        with staged_directory(folder, if_exists="keep") as staging:
            with open(staging / "documents.jsonl", "w", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps({"text": render_conversation(record["messages"])}, ensure_ascii=False))
                    handle.write("\n")
            (staging / "conversion.json").write_text(json.dumps(report.as_dict(), indent=2))
        logger.info(
            "Anneal source %s: %d of %d records rendered as documents", source.name, len(records), report.records
        )
    return folder / "documents.jsonl"


def build_anneal_datasets(
    sources: list[AnnealSource], tokenizer, seq_length: int, cache_dir: str | os.PathLike, *, split: str = "train"
) -> list[PackedDataset]:
    """Each source tokenized (cached as the main corpus is) and packed on its own into rows of `seq_length`."""
    datasets = []
    for source in sources:
        if source.format == "text":
            path, text_field = expand_package_path(source.path), source.text_field
        else:
            path, text_field = _rendered_documents(source, Path(cache_dir)), "text"
        dataset = build_packed_dataset(path, tokenizer, seq_length, cache_dir, text_field=text_field, split=split)
        logger.info("Anneal source %s (share %g): %s", source.name, source.share, dataset.stats())
        datasets.append(dataset)
    return datasets


# ----------------------------------------------------------------------------------------------------------------
# The layout: which corpus each run position reads
# ----------------------------------------------------------------------------------------------------------------
def _added_counts(n: int, shares: tuple[float, ...]) -> list[int]:
    """Rows of each added source among the first `n` positions of a region with these shares (nested interleave).

    Each count is a floor of a non-decreasing function of `n` that grows by at most one per position, so exactly one
    corpus (main included: `n` minus these) gains a row at each position."""
    remaining_share = sum(shares)
    remaining = math.floor(n * remaining_share)
    last = max((i for i, share in enumerate(shares) if share > 0), default=-1)
    counts = []
    for index, share in enumerate(shares):
        if share <= 0:
            count = 0
        elif index == last:
            count = remaining
        else:
            count = math.floor(remaining * min(share / remaining_share, 1.0))
        counts.append(count)
        remaining -= count
        remaining_share -= share
    return counts


@dataclass(frozen=True)
class Region:
    """From run position `start` on (until the next region), the added sources have these shares of the rows."""

    start: int
    shares: tuple[float, ...]


class AnnealedDataset(Dataset):
    """The main corpus and the added sources as one sequence of run positions (module docstring). `lay_out` (called
    by `PretrainTrainer` with its plan) sets the length and the entry points; rows are those of `PackedDataset`."""

    def __init__(
        self,
        main: PackedDataset,
        sources: list[AnnealSource],
        datasets: list[PackedDataset],
        *,
        seed: int = 0,
        main_path: str | None = None,
    ):
        if len(sources) != len(datasets) or not sources:
            raise ValueError("an AnnealedDataset needs one packed dataset per anneal source, and at least one")
        if any(dataset.seq_length != main.seq_length for dataset in datasets):
            raise ValueError("the anneal sources must be packed at the main corpus's seq_length")
        self.main, self.sources, self.datasets = main, list(sources), list(datasets)
        self.streams = [main, *datasets]  # stream 0 is the main corpus
        self.names = [MAIN, *(source.name for source in sources)]
        self.seq_length = main.seq_length
        self.seed = int(seed)
        self.main_path = main_path
        self.regions: list[Region] = [Region(0, (0.0,) * len(sources))]
        self.source_plans: list[SourcePlan] = []
        self.batch_rows = 0
        self.num_positions = 0
        self._bases = [[0] * len(self.streams)]
        self._permutations: dict[int, tuple[int, np.ndarray]] = {}

    # -- layout ---------------------------------------------------------------------------------------------------
    def lay_out(self, plan, args, *, resume_step: int = 0, previous: list[dict] | None = None) -> None:
        """Entry points for a run of `plan`; a resume keeps the layout `previous` (from the checkpoint) before
        `resume_step` and follows this plan after it."""
        self.source_plans = plan_anneal(self.sources, plan, args)
        self.batch_rows, self.num_positions = plan.global_batch_size, plan.max_steps * plan.global_batch_size
        starts = sorted({p.start_row for p in self.source_plans})
        new = [Region(0, (0.0,) * len(self.sources))] + [
            Region(start, tuple(p.share if p.start_row <= start else 0.0 for p in self.source_plans))
            for start in starts
        ]
        if previous:
            resume_row = resume_step * plan.global_batch_size
            old = [Region(int(r["start"]), tuple(r["shares"])) for r in previous]
            if len(old[0].shares) != len(self.sources):
                raise ValueError(
                    f"the checkpoint was trained with {len(old[0].shares)} anneal sources, this run has "
                    f"{len(self.sources)}: resume with the same anneal_sources"
                )
            kept = [r for r in old if r.start <= resume_row]
            if _shares_at(new, resume_row) != kept[-1].shares:
                kept.append(Region(resume_row, _shares_at(new, resume_row)))
            new = _merge(kept + [r for r in new if r.start > resume_row])
        self.regions = new
        self._bases = [[0] * len(self.streams)]
        for region, following in zip(self.regions, self.regions[1:]):
            counts = self._region_counts(region, following.start - region.start)
            self._bases.append([base + count for base, count in zip(self._bases[-1], counts)])

    def layout_state(self) -> list[dict]:
        """The regions as JSON data (kept in checkpoints, written to the report)."""
        return [{"start": region.start, "shares": list(region.shares)} for region in self.regions]

    def _region_counts(self, region: Region, n: int) -> list[int]:
        added = _added_counts(n, region.shares)
        return [n - sum(added), *added]

    def _region_of(self, position: int) -> int:
        return bisect.bisect_right([r.start for r in self.regions], position) - 1

    def counts(self, stop: int, start: int = 0) -> list[int]:
        """Rows of each stream (main first) at the run positions `[start, stop)`."""
        return [b - a for a, b in zip(self._consumed(start), self._consumed(stop))]

    def _consumed(self, position: int) -> list[int]:
        """Rows of each stream read before run position `position`."""
        index = self._region_of(position)
        region = self.regions[index]
        counts = self._region_counts(region, position - region.start)
        return [base + count for base, count in zip(self._bases[index], counts)]

    def locate(self, position: int) -> tuple[int, int]:
        """(stream, ordinal in that stream) of a run position: the stream whose count grows at it."""
        before, after = self._consumed(position), self._consumed(position + 1)
        stream = next(s for s in range(len(self.streams)) if after[s] > before[s])
        return stream, before[stream]

    # -- rows -----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_positions

    def __getitem__(self, position: int):
        if not 0 <= position < self.num_positions:
            raise IndexError(f"run position {position} out of range for {self.num_positions} (is the run laid out?)")
        stream, ordinal = self.locate(int(position))
        return self.streams[stream][self._row(stream, ordinal)]

    def _row(self, stream: int, ordinal: int) -> int:
        rows = len(self.streams[stream])
        epoch, offset = divmod(ordinal, rows)
        cached = self._permutations.get(stream)
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng([self.seed, stream, epoch])
            order = rng.permutation(rows).astype(np.uint32 if rows < 2**32 else np.int64)
            self._permutations[stream] = cached = (epoch, order)
        return int(cached[1][offset])

    def __getstate__(self):  # DataLoader workers build their own permutations
        return {**self.__dict__, "_permutations": {}}

    # -- statistics -----------------------------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return self.main.num_tokens

    def stats(self) -> dict[str, Any]:
        return {
            **self.main.stats(),
            "anneal_sources": {name: d.stats()["rows"] for name, d in zip(self.names[1:], self.datasets)},
        }

    def unigram_entropy(self, max_tokens: int = 10_000_000) -> float:
        """The main corpus's (`PackedDataset.unigram_entropy`): the baseline a language model of it must beat."""
        return self.main.unigram_entropy(max_tokens)

    def passes(self, stop: int) -> dict[str, int]:
        """How many passes over each corpus the positions before `stop` begin (2 or more: re-cycled)."""
        return {
            name: math.ceil(count / len(stream))
            for name, count, stream in zip(self.names, self._consumed(stop), self.streams)
        }


def _shares_at(regions: list[Region], position: int) -> tuple[float, ...]:
    return [r for r in regions if r.start <= position][-1].shares


def _merge(regions: list[Region]) -> list[Region]:
    merged = [regions[0]]
    for region in regions[1:]:
        if region.start == merged[-1].start:
            merged[-1] = region
        elif region.shares != merged[-1].shares:
            merged.append(region)
    return merged


# ----------------------------------------------------------------------------------------------------------------
# What was seen, per LR stage
# ----------------------------------------------------------------------------------------------------------------
class AnnealedMixtureCallback(TrainerCallback, ExportableState):
    """Tallies the rows of every optimizer step by corpus and LR stage (from the layout), and keeps the layout and the
    tally in each checkpoint (`trainer_state.json`), so a resumed run continues both."""

    def __init__(self):
        self.layout: list[dict] = []
        self.tally: dict[str, dict[str, int]] = {}  # stage name -> corpus name -> rows

    def state(self) -> dict:
        return {"args": {}, "attributes": {"layout": self.layout, "tally": self.tally}}

    def on_train_begin(self, args, state, control, **kwargs):
        # a checkpoint saved without this callback has no entry for it, which transformers' checkpoint save expects
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())

    def restore(self, saved: dict | None) -> list[dict] | None:
        """Take the tally of a checkpoint's saved state; returns its layout (None: none saved)."""
        attributes = (saved or {}).get("attributes") or {}
        self.tally = {stage: dict(rows) for stage, rows in (attributes.get("tally") or {}).items()}
        return attributes.get("layout") or None

    def on_step_end(self, args, state, control, lr_scheduler=None, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if not isinstance(dataset, AnnealedDataset):
            return
        self.layout = dataset.layout_state()
        step = state.global_step - 1
        phase = getattr(lr_scheduler, "last_step_phase", None)
        stage = phase_name(phase, SchedulePhaseCallback._factors(args)) if phase is not None else "run"
        rows = dataset.counts((step + 1) * dataset.batch_rows, step * dataset.batch_rows)
        stage_rows = self.tally.setdefault(stage, {})
        for name, count in zip(dataset.names, rows):
            stage_rows[name] = stage_rows.get(name, 0) + count

    def report(self, dataset: AnnealedDataset, steps_trained: int) -> dict[str, Any]:
        """The mixture seen: tokens per corpus per LR stage, their shares, the entry points and passes."""
        seq = dataset.seq_length
        by_stage = {
            stage: {name: rows.get(name, 0) * seq for name in dataset.names} for stage, rows in self.tally.items()
        }
        plans = {p.name: p for p in dataset.source_plans}
        return {
            "seq_length": seq,
            "global_batch_size": dataset.batch_rows,
            "steps_trained": steps_trained,
            "tokens_by_stage": by_stage,
            "share_by_stage": {
                stage: {name: round(tokens / max(sum(row.values()), 1), 4) for name, tokens in row.items()}
                for stage, row in by_stage.items()
            },
            "sources": [
                {"name": MAIN, "path": dataset.main_path, "rows": len(dataset.main)},
                *(
                    {
                        **asdict(source),
                        "rows": len(data),
                        **{k: v for k, v in asdict(plans[source.name]).items() if k.startswith("start")},
                    }
                    for source, data in zip(dataset.sources, dataset.datasets)
                ),
            ],
            "passes": dataset.passes(steps_trained * dataset.batch_rows),
            "layout": dataset.layout_state(),
            "rule": "rows per corpus per optimizer step from the deterministic interleave; tokens = rows x seq_length",
        }


def describe_plan(dataset: AnnealedDataset) -> str:
    """One line per source: where it enters and with what share (logged at the start of training)."""
    return "\n".join(
        f"{p.name}: {p.share:.1%} of the rows from step {p.start_step} (row {p.start_row}; start_fraction "
        f"{p.start_fraction:g}, {p.start_fraction_from})"
        for p in dataset.source_plans
    )
