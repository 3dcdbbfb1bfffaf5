"""Build the pipeline's datatrove stages from a `DataPipelineConfig` and run them on the configured executor.

Stages (each a list of datatrove steps, run with `tasks` tasks; `work/` holds what passes between them):

| stage              | tasks             | steps                                                                   |
|--------------------|-------------------|-------------------------------------------------------------------------|
| `ingest`           | tasks             | readers -> InputValidator -> work/ingest                                |
| `dedup_signatures` | tasks             | work/ingest -> DedupSignature                                           |
| `dedup_buckets`    | bands x workers   | DedupBuckets (LSH candidate pairs per band; one band = exact hash)      |
| `dedup_clusters`   | 1                 | DedupClusters (each distinct pair verified once, kept doc per cluster)  |
| `dedup_filter`     | tasks             | work/ingest -> DocDedupFilter -> LineDedupSignature -> work/deduped     |
| `line_dedup_find`  | finder_workers    | LineDedupFinder                                                         |
| `filter`           | tasks             | work/deduped -> LineDedupFilter -> filters... [-> decontamination]      |
|                    |                   | -> work/filtered                                                        |
| `remix`            | tasks             | work/filtered -> DomainRemixer -> work/final                            |
| `finalize`         | 1                 | [decontamination.{md,json}]; report.{md,json,png};                      |
|                    |                   | work/final -> output/ + output/_COMPLETE.json                           |

Decontamination (a `decontaminate:` section with benchmarks) is the last step of `filter`: after dedup and the
filters, so it scans only documents that would otherwise be trained on and its report names no document that another
step removed anyway; before remix, so an up-sampled copy is never reported twice and remixing plans on what is left.
Its n-gram index is built once, by the driver, before any stage runs (`work/decontam/index/`): a missing benchmark
folder or a bad item is one error up front, not a failed task.

Every dropping step writes what it drops to `excluded/<step>/`; a `Ledger` after each step counts documents and
characters per dump and source for the report. The executor (local / Ray / Slurm) is chosen here from the config
and never appears in a step.

>>> from deepseek_hf.data import DataPipelineConfig, run_pipeline
>>> run_pipeline(DataPipelineConfig(output_dir="outputs/demo/data"))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field

from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.logging import logger

from deepseek_hf.data import lifetime
from deepseek_hf.data.boilerplate import LineDedupFilter, LineDedupFinder, LineDedupSignature
from deepseek_hf.data.config import DataPipelineConfig, result_settings
from deepseek_hf.data.decontam import DecontaminationFilter, DecontaminationReport, NGramIndex, Thresholds
from deepseek_hf.data.decontam.steps import REPORT_FILES as DECONT_REPORT_FILES
from deepseek_hf.data.decontam.steps import flagged_output_record
from deepseek_hf.data.dedup import DedupBuckets, DedupClusters, DedupSignature, DocDedupFilter, minhash_config
from deepseek_hf.data.errors import RunFolderError, StageFailedError
from deepseek_hf.data.filters import InputValidator, build_filter
from deepseek_hf.data.ledger import Ledger
from deepseek_hf.data.output import COMPLETE_MARKER, output_record, publish, unpublish
from deepseek_hf.data.readers import make_reader
from deepseek_hf.data.remix import DomainRemixer

RUN_FILE = "run.json"
RUN_SUBDIRS = ("logs", "work", "excluded", "output")
RUN_FILES = ("report.md", "report.json", "report.png", *DECONT_REPORT_FILES, RUN_FILE)


@dataclass
class Stage:
    name: str
    pipeline: list
    tasks: int


@dataclass
class RunLayout:
    """Absolute paths of one run folder."""

    root: str
    logs: str = field(init=False)
    work: str = field(init=False)
    excluded: str = field(init=False)

    def __post_init__(self):
        self.logs, self.work, self.excluded = f"{self.root}/logs", f"{self.root}/work", f"{self.root}/excluded"


def _writer(folder: str, adapter=None) -> JsonlWriter:
    return JsonlWriter(folder, output_filename="${rank}.jsonl.gz", adapter=adapter)


class StageReader(JsonlReader):
    """Reads the shards the previous stage wrote. A stage that kept no documents writes no shard, so an empty
    folder is an empty stage (empty input, or every document filtered out), not an error."""

    name = "📖 stage shards"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if not self.data_folder.exists("") or not self.data_folder.list_files(glob_pattern=self.glob_pattern):
            yield from data or ()
            return
        yield from super().run(data, rank, world_size)


def _reader(folder: str) -> JsonlReader:
    return StageReader(folder, glob_pattern="*.jsonl.gz", add_file_path=False)


class Finalize(PipelineStep):
    """Last stage (one task): writes the report, then publishes the output shards with their manifest."""

    type = "🏁 - FINALIZE"
    name = "🏁 report + publish"

    def __init__(self, root: str, stage_names: list[str], config: dict, keep_intermediate: bool = False):
        super().__init__()
        self.root = root
        self.stage_names = stage_names
        self.config = config
        self.keep_intermediate = keep_intermediate

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from deepseek_hf.data.report import build_report, write_report

        for _ in data or ():  # runs the steps before this one (the decontamination report) to their end
            pass
        layout = RunLayout(self.root)
        report = build_report(layout, self.stage_names, self.config)
        write_report(report, self.root)
        publish(
            self.root,
            summary={"documents": report["totals"]["documents_out"], "characters": report["totals"]["characters_out"]},
        )
        if not self.keep_intermediate:
            folder = get_datafolder(layout.work)
            for sub in ("ingest", "deduped", "filtered", "final", "dedup/signatures", "lines/sig"):
                if folder.exists(sub):
                    folder.rm(sub, recursive=True)
        logger.success(f"data pipeline done: {report['totals']['documents_out']} documents in {self.root}/output")
        return iter(())


def build_stages(config: DataPipelineConfig) -> list[Stage]:
    """The datatrove stages of `config`, in order (see the module docstring)."""
    layout = RunLayout(config.resolved_output_dir)
    tasks = config.executor.tasks
    dd, ld = config.dedup, config.line_dedup

    def excluded(step: str) -> JsonlWriter:
        return _writer(f"{layout.excluded}/{step}")

    stages = [
        Stage(
            "ingest",
            [
                *[make_reader(spec, config.ingest) for spec in config.inputs],
                Ledger("read"),
                InputValidator(config.ingest.max_chars, exclusion_writer=excluded("ingest")),
                Ledger("ingest"),
                _writer(f"{layout.work}/ingest"),
            ],
            tasks,
        )
    ]
    current = f"{layout.work}/ingest"

    between = []
    if dd.enabled and (dd.exact or dd.near):
        mh = minhash_config(dd)
        signatures, buckets, clusters = (f"{layout.work}/dedup/{s}" for s in ("signatures", "buckets", "clusters"))
        band_step = DedupBuckets(signatures, buckets, mh, dd.threshold, dd.exact, dd.near, dd.bucket_workers)
        stages += [
            Stage("dedup_signatures", [_reader(current), DedupSignature(signatures, mh, dd.scope, dd.near)], tasks),
            Stage("dedup_buckets", [band_step], band_step.num_bands * dd.bucket_workers),
            Stage("dedup_clusters", [DedupClusters(signatures, buckets, clusters, dd.scope)], 1),
        ]
        between += [DocDedupFilter(clusters, exclusion_writer=excluded("dedup")), Ledger("dedup")]
    if ld.enabled:
        between.append(LineDedupSignature(f"{layout.work}/lines", ld.min_chars, ld.finder_workers))
    if between:
        stages.append(Stage("dedup_filter", [_reader(current), *between, _writer(f"{layout.work}/deduped")], tasks))
        current = f"{layout.work}/deduped"
    if ld.enabled:
        stages.append(
            Stage("line_dedup_find", [LineDedupFinder(f"{layout.work}/lines", ld.min_docs)], ld.finder_workers)
        )

    steps = []
    if ld.enabled:
        steps += [
            LineDedupFilter(f"{layout.work}/lines", ld.min_chars, ld.min_remaining_chars, excluded("line_dedup")),
            Ledger("line_dedup"),
        ]
    for name, kwargs in config.filters.items():
        steps += [build_filter(name, kwargs, excluded(name)), Ledger(name)]
    dc = config.decontaminate
    final_record = output_record
    if dc.active:
        thresholds = Thresholds(dc.min_fraction, dc.min_ngrams)
        decont = DecontaminationFilter(
            f"{layout.work}/decontam/index",
            thresholds,
            dc.mode,
            f"{layout.work}/decontam/hits",
            excluded("decontaminate"),
        )
        steps += [decont, Ledger("decontaminate")]
        final_record = flagged_output_record if dc.mode == "flag" else output_record
    if not steps:
        steps = [Ledger("filters")]
    last_checkpoint = steps[-1].checkpoint
    if config.remix.active:
        stages.append(Stage("filter", [_reader(current), *steps, _writer(f"{layout.work}/filtered")], tasks))
        remixer = DomainRemixer(layout.logs, "filter", last_checkpoint, config.remix, layout.work, excluded("remix"))
        stages.append(
            Stage(
                "remix",
                [
                    _reader(f"{layout.work}/filtered"),
                    remixer,
                    Ledger("remix"),
                    _writer(f"{layout.work}/final", final_record),
                ],
                tasks,
            )
        )
    else:
        stages.append(
            Stage("filter", [_reader(current), *steps, _writer(f"{layout.work}/final", final_record)], tasks)
        )
    names = [s.name for s in stages]
    last = [Finalize(layout.root, names, config.to_dict(), config.keep_intermediate)]
    if dc.active:
        settings = dict(config.to_dict()["decontaminate"])
        work = f"{layout.work}/decontam"
        last.insert(0, DecontaminationReport(layout.root, f"{work}/index", f"{work}/hits", settings))
    stages.append(Stage("finalize", last, 1))
    return stages


def make_executor(config: DataPipelineConfig, stage: Stage, depends=None):
    """The datatrove executor of one stage (local, Ray or Slurm, from `config.executor`)."""
    ex = config.executor
    logging_dir = f"{config.resolved_output_dir}/logs/{stage.name}"
    if ex.workers >= 1:
        workers = min(ex.workers, stage.tasks)
    else:  # -1: as many as the CPUs of this machine (local), all tasks (Ray / Slurm schedule them)
        workers = min(os.cpu_count() or 1, stage.tasks) if ex.type == "local" else stage.tasks
    common = {"tasks": stage.tasks, "workers": workers, "logging_dir": logging_dir}
    if ex.type == "local":
        from datatrove.executor import LocalPipelineExecutor as Executor

        kwargs = {**common, "start_method": ex.start_method}
    elif ex.type == "ray":
        from datatrove.executor import RayPipelineExecutor as Executor

        kwargs = {
            **common,
            "cpus_per_task": ex.cpus_per_task,
            "mem_per_cpu_gb": ex.mem_per_cpu_gb,
            "tasks_per_job": min(ex.tasks_per_job, stage.tasks),
        }
    else:
        from datatrove.executor import SlurmPipelineExecutor as Executor

        kwargs = {
            **common,
            "workers": ex.workers,
            "depends": depends,
            "time": ex.time,
            "partition": ex.partition,
            "cpus_per_task": ex.cpus_per_task,
            "mem_per_cpu_gb": ex.mem_per_cpu_gb,
            "qos": ex.qos,
            "job_name": f"{ex.job_name}-{stage.name}",
            "venv_path": ex.venv_path,
            "env_command": ex.env_command,
            "sbatch_args": dict(ex.sbatch_args),
            "tasks_per_job": min(ex.tasks_per_job, stage.tasks),
        }
    kwargs.update(ex.stage_overrides.get(stage.name, {}))  # per-stage resources, e.g. memory of the cluster stage
    return Executor(stage.pipeline, **kwargs)


def _flatten(value, prefix: str = "") -> dict[str, object]:
    """`{"a": {"b": 1}, "c": [{"d": 2}]}` -> `{"a.b": 1, "c[0].d": 2}` (empty containers kept as values)."""
    if isinstance(value, dict) and value:
        return {
            k: v
            for key, item in value.items()
            for k, v in _flatten(item, f"{prefix}.{key}" if prefix else key).items()
        }
    if isinstance(value, list) and value:
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def config_changes(previous: dict, current: dict) -> list[str]:
    """`key: old -> new` for every setting that changes the result (those `fingerprint` hashes)."""
    old, new = _flatten(result_settings(previous)), _flatten(result_settings(current))
    missing = "(unset)"
    return [
        f"{key}: {json.dumps(old.get(key, missing), default=str)} -> {json.dumps(new.get(key, missing), default=str)}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]


def prepare_run_folder(config: DataPipelineConfig) -> bool:
    """Create / check the run folder; returns True when this exact run already finished.

    A folder of the same configuration is resumed (datatrove skips finished tasks). One of another configuration
    is refused, naming the changed keys, unless `overwrite` (then cleared): a finished run is never lost to an
    edited value. A non-empty folder that is not a run folder is always refused.
    """
    root = config.resolved_output_dir
    folder = get_datafolder(root)
    fingerprint = config.fingerprint()
    previous = previous_config = None
    if folder.exists(RUN_FILE):
        with folder.open(RUN_FILE) as f:
            run = json.load(f)
        previous, previous_config = run.get("fingerprint"), run.get("config") or {}
    elif folder.exists("") and folder.ls("", detail=False):
        raise RunFolderError(
            f"output_dir {root} exists, is not empty and is not a data-pipeline run folder (no {RUN_FILE}); "
            "choose a new or empty folder"
        )
    if previous is not None and previous != fingerprint and not config.overwrite:
        changes = config_changes(previous_config, json.loads(json.dumps(config.to_dict(), default=str)))
        listed = "; ".join(changes) if changes else "(settings of an older version of this package)"
        raise RunFolderError(
            f"output_dir {root} holds a run of another configuration; changed: {listed}. Nothing was deleted: "
            "choose another output_dir, or set `overwrite: true` (--overwrite true) to delete that run and start over"
        )
    finalized = folder.exists("logs/finalize/completions/00000")
    published = folder.exists(f"output/{COMPLETE_MARKER}")
    if previous == fingerprint and finalized and not published:
        reason = "finished run lost its output"  # its intermediate files are gone too: redo all
    elif previous is not None and config.overwrite:
        reason = "overwrite requested"
    else:
        reason = None
    if reason:
        logger.info(f"{root}: {reason}; starting over")
        for sub in RUN_SUBDIRS:
            if folder.exists(sub):
                folder.rm(sub, recursive=True)
        for name in RUN_FILES:
            if folder.exists(name):
                folder.rm(name)
        previous = None
    finished = previous == fingerprint and finalized and published
    if not finished:
        unpublish(folder)
    folder.makedirs("", exist_ok=True)
    with folder.open(RUN_FILE, "w") as f:
        json.dump({"fingerprint": fingerprint, "config": config.to_dict()}, f, indent=2, default=str)
    return finished


def run_pipeline(config: DataPipelineConfig) -> str:
    """Run (or submit, for Slurm) the whole pipeline; returns the run folder. Raises if any task fails."""
    for spec in config.inputs:
        spec.check_exists()
    root = config.resolved_output_dir
    if prepare_run_folder(config):
        logger.info(f"{root}: this configuration already ran to completion; nothing to do (set overwrite to redo)")
        return root
    dc = config.decontaminate
    if dc.active:  # built here, once: a missing benchmark folder is one error before any stage runs
        index = NGramIndex.from_benchmarks(dc.benchmarks, dc.data_dir, dc.ngram, dc.splits)
        index.save(f"{root}/work/decontam/index")
        logger.info(f"decontamination index: {len(index.items)} items of {', '.join(dc.benchmarks)}")
    return run_stages(config, build_stages(config), ["deepseek_hf.data.pipeline"], f"{root}/output")


def run_stages(config, stages: list[Stage], preload: list[str], result: str) -> str:
    """Run `stages` in order on `config.executor` (the pipeline's and the tokenizer's); returns the run folder.

    Slurm: every stage is submitted as a job array, chained with afterok dependencies, and nothing waits.
    Local with forkserver: workers fork from a server that imported `preload` once, instead of each importing it
    again. Local: the processes a run starts end with it, even if it is killed (see `lifetime`).
    """
    root = config.resolved_output_dir
    if config.executor.type == "slurm":
        executor = None
        for stage in stages:
            executor = make_executor(config, stage, depends=executor)
        executor.run()
        logger.info(f"submitted {len(stages)} Slurm jobs; {result} appears when the last ends")
        return root
    if config.executor.type == "local" and config.executor.start_method == "forkserver":
        import multiprocess

        multiprocess.get_context("forkserver").set_forkserver_preload(preload)
    if config.executor.type == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=config.executor.ray_address, ignore_reinit_error=True)
    with lifetime.run_scope() if config.executor.type == "local" else contextlib.nullcontext():
        for i, stage in enumerate(stages, 1):
            _run_stage(config, stage, f"[{i}/{len(stages)}]")
    return root


def _run_stage(config: DataPipelineConfig, stage: Stage, counter: str) -> None:
    root = config.resolved_output_dir
    logger.info(f"{counter} stage {stage.name}: {stage.tasks} task(s)")
    start = time.perf_counter()
    executor = make_executor(config, stage)
    try:
        executor.run()
    except Exception as e:
        raise StageFailedError(
            f"data pipeline stage {stage.name!r} failed (logs: {root}/logs/{stage.name}): {e}"
        ) from e
    failed = executor.get_incomplete_ranks(skip_completed=True)
    if failed:
        raise StageFailedError(
            f"data pipeline stage {stage.name!r}: tasks {failed} did not complete (logs: {root}/logs/{stage.name})"
        )
    logger.info(f"{counter} stage {stage.name} done in {time.perf_counter() - start:.1f}s")
