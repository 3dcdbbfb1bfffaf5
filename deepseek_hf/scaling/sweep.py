"""Run a scaling study: a batch/LR grid or IsoFLOP profiles through the pretraining recipe, one process per run.

`SweepConfig` (a YAML file with strict keys, see `recipes/tiny/scaling/`) says which runs (`kind`, `budgets`, the
shape space and the batch / LR of `deepseek_hf.scaling.shapes`) and how to launch them. `run_sweep` then:

1. plans every run and writes the plan to `<output_dir>/plan.json`; a later call with a config that changes a
   planned run (its shape, tokens, batch or LR) is refused naming the runs, so a table never mixes two studies;
2. trains the tokenizer once if the config asks for one (`tokenizer_corpus`: the scaling demo runs on what the
   package ships);
3. for every run not yet in the results table (`finished_runs`), launches
   `python recipes/pretrain.py --config BASE.yaml --output_dir <output_dir>/runs/<run> --compute_budget C ...`
   (or `accelerate launch ...` with `launcher: accelerate`) with its log in `<output_dir>/logs/<run>.log`. A run
   that was killed half-way resumes from its own last checkpoint: the pretraining recipe does that by itself in
   its output_dir. A run that finished but whose row was not appended (the sweep was killed in between) is only
   collected, not trained again;
4. appends each finished run's row to `<output_dir>/results.jsonl` (+ `results.csv`) with `append_result`, which
   writes atomically: a killed sweep leaves the table as it was before the row or after it;
5. with `predict_budget`, fits the IsoFLOP and loss-vs-compute laws (`deepseek_hf.scaling.fits`) on the finished
   IsoFLOP rows, writes the predicted bits-per-byte at that budget to `<output_dir>/prediction.json` *before* the
   run starts, then trains the model of the fitted `M_opt` there (row kind `predict`) and records the measured
   value beside the prediction.

A run that fails (non-zero exit, no validation metrics, an M that disagrees with the plan) is reported with its log
path; `on_failure: continue` goes on with the next run, `stop` (default) stops the sweep. Either way the sweep
ends with an error listing every failed run, and a re-run retries exactly those.

Cluster: `dry_run: true` writes `<output_dir>/commands.sh`, one line per unfinished run, for one job per run (a
Slurm array, Ray tasks, or `accelerate launch` on each node); `collect_only: true` then appends the rows of the
runs that finished. See `docs/scaling.md`.

Two more axes of the paper's section 3. `kind: schedule` (Figure 1b) trains one shape, batch and LR per budget once
per milestone list of `schedules` (`[[0.8, 0.9], [0.9, 1.0]]`: 80/10/10 and 90/10/0), each passed to its run as
`lr_scheduler_kwargs`; its rows keep the run's training-loss curve (`extra.loss_curve`). `corpora: {name: path}`
(Table 4) runs the whole study once per corpus, each in `<output_dir>/<name>/` with its own plan, results table,
runs and resume, all with one tokenizer (`<output_dir>/tokenizer`); `<output_dir>/corpora.json` lists them for
`deepseek-hf scaling fit <output_dir>`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..utils import check_keys
from .results import append_result, finished_runs, read_results
from .shapes import ModelShape, RunSpec, ShapeSpace, format_budget, grid_runs, isoflop_shapes, schedule_runs

logger = logging.getLogger(__name__)

__all__ = [
    "SweepConfig",
    "SweepReport",
    "RunFailure",
    "corpus_studies",
    "plan_runs",
    "run_sweep",
    "pretrain_command",
    "load_config",
]

# Keys of the pretraining config that the sweep sets for every run: the base config must leave them out.
SWEEP_CONTROLLED_KEYS = (
    "output_dir",
    "max_steps",
    "max_tokens",
    "compute_budget",
    "global_batch_size",
    "batch_size_tokens",
    "gradient_accumulation_steps",
    "per_device_train_batch_size",
    "learning_rate",
    "seq_length",
    "resume_from_checkpoint",
)
SCHEDULE_KEYS = ("lr_scheduler_kwargs",)  # set per run by kind schedule
CORPORA_FILE = "corpora.json"
_CORPUS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")


@dataclass
class SweepConfig:
    """A scaling sweep; every key of the YAML file is a field here (unknown keys are errors)."""

    base_config: str
    """The pretraining recipe's YAML (model preset, data, schedule...); it must not set the per-run keys."""
    budgets: list[float]
    """Compute budgets C in FLOPs (C = M * D, M the paper's non-embedding FLOPs per token)."""
    output_dir: str = "outputs/scaling"
    kind: str = "isoflop"
    """`isoflop`: model/data splits per budget; `grid`: batch size x learning rate per budget on one shape;
    `schedule`: one shape, batch and LR per budget, one run per milestone list of `schedules` (Figure 1b)."""
    seq_length: int = 128
    # --- IsoFLOP profiles ---
    num_shapes: int = 5
    span: float = 8.0
    """Largest / smallest M of a profile (targets log-spaced around the centre)."""
    centre: float | None = None
    """Centre M of every profile; unset: the paper's M_opt(C) = 0.1715 C^0.5243 times `centre_factor`."""
    centre_factor: float = 1.0
    # --- batch and learning rate: unset = the paper's laws at C; one value = fixed; lists = the grid ---
    batch_tokens: list[float] | None = None
    learning_rates: list[float] | None = None
    n_layer: int | None = None
    d_model: int | None = None
    """grid and schedule: the shape (unset: the allowed shape nearest M_opt(C))."""
    # --- schedule study (kind schedule, paper Figure 1b) ---
    schedules: list[list[float]] | None = None
    """Milestone lists of the multi-step LR in fractions of the tokens, e.g. [[0.8, 0.9], [0.9, 1.0], [0.7, 0.85]]
    (80/10/10, 90/10/0, 70/15/15); each increasing, in (0, 1], as long as `schedule_factors`."""
    schedule_factors: list[float] = field(default_factory=lambda: [0.316, 0.1])
    """The LR from each milestone on, as a multiple of the peak (the paper's 0.316 and 0.1)."""
    # --- the same study on several corpora (paper Table 4) ---
    corpora: dict[str, str] | None = None
    """name -> dataset_path (lower to higher quality): one sub-study per corpus in `<output_dir>/<name>/`."""
    micro_batch_size: int = 8
    num_processes: int = 1
    """Data-parallel processes per run (accelerate); the batch is rounded to micro_batch_size x num_processes."""
    warmup_fraction: float | None = 0.05
    """Warm-up steps as a fraction of each run's steps (the paper's 2000 steps are longer than a small run)."""
    min_steps: int = 20
    min_shapes: int = 3
    # --- shape space (deepseek_hf.scaling.shapes.ShapeSpace) ---
    head_dim: int = 128
    ffn_multiple_of: int = 256
    min_layers: int = 1
    max_layers: int = 128
    min_width: int | None = None
    max_width: int = 16384
    aspect_ratio: list[float] = field(default_factory=lambda: [32.0, 160.0])
    target_aspect: float = 64.0
    # --- tokenizer: trained once into <output_dir>/tokenizer from a corpus, or the base config's ---
    tokenizer_corpus: str | None = None
    tokenizer_vocab_size: int = 2000
    tokenizer_dir: str | None = None
    """Where the study's tokenizer is trained (default `<output_dir>/tokenizer`; shared by the corpora)."""
    # --- launching ---
    launcher: str = "python"
    """`python` (one process per run) or `accelerate` (`accelerate launch`, with `accelerate_config`)."""
    accelerate_config: str | None = None
    pretrain_script: str = "recipes/pretrain.py"
    pretrain_args: dict[str, Any] = field(default_factory=dict)
    """Extra pretraining keys for every run (e.g. `logging_steps`), passed as flags."""
    on_failure: str = "stop"
    """`stop`: stop the sweep at the first failed run; `continue`: run the others. Both end in an error."""
    run_timeout_s: float | None = None
    run_env: dict[str, str] = field(default_factory=dict)
    """Environment variables for every run (e.g. `OMP_NUM_THREADS: "1"` for tiny models on a shared CPU)."""
    dry_run: bool = False
    collect_only: bool = False
    # --- the larger run predicted beforehand ---
    predict_budget: float | None = None
    fit_bootstrap: int = 200

    def __post_init__(self):
        if self.kind not in ("isoflop", "grid", "schedule"):
            raise ValueError(f"kind must be 'isoflop', 'grid' or 'schedule', got {self.kind!r}")
        if self.launcher not in ("python", "accelerate"):
            raise ValueError(f"launcher must be 'python' or 'accelerate', got {self.launcher!r}")
        if self.on_failure not in ("stop", "continue"):
            raise ValueError(f"on_failure must be 'stop' or 'continue', got {self.on_failure!r}")
        if not isinstance(self.budgets, list) or not self.budgets:
            raise ValueError(f"budgets must be a non-empty list of FLOPs, got {self.budgets!r}")
        self.budgets = [_number("budgets", b) for b in self.budgets]
        if len(set(self.budgets)) != len(self.budgets):
            raise ValueError(f"budgets has a value twice: {self.budgets}")
        for name in ("batch_tokens", "learning_rates"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, list):
                setattr(self, name, [value])  # one value: fixed for every run
            if getattr(self, name) is not None:
                setattr(self, name, [_number(name, v) for v in getattr(self, name)])
        if self.kind == "grid" and (not self.batch_tokens or not self.learning_rates):
            raise ValueError("kind 'grid' needs lists batch_tokens and learning_rates")
        if self.kind in ("isoflop", "schedule"):
            for name in ("batch_tokens", "learning_rates"):
                if getattr(self, name) is not None and len(getattr(self, name)) != 1:
                    raise ValueError(
                        f"kind {self.kind!r} takes one {name} value (or none: the law), got {getattr(self, name)}"
                    )
        self._check_schedules()
        if self.predict_budget is not None:
            self.predict_budget = _number("predict_budget", self.predict_budget)
            if self.kind != "isoflop":
                raise ValueError("predict_budget needs kind 'isoflop' (the loss law is fitted on IsoFLOP minima)")
            if self.predict_budget <= max(self.budgets):
                raise ValueError(
                    f"predict_budget {self.predict_budget:.3g} must be larger than every budget (largest "
                    f"{max(self.budgets):.3g}): the point is to extrapolate"
                )
        if not isinstance(self.run_env, dict) or not all(isinstance(k, str) for k in self.run_env):
            raise ValueError(
                f"run_env must be a mapping of environment variable names to values, got {self.run_env!r}"
            )
        self.run_env = {key: str(value) for key, value in self.run_env.items()}
        if not isinstance(self.pretrain_args, dict):
            raise ValueError(f"pretrain_args must be a mapping of pretraining keys, got {self.pretrain_args!r}")
        controlled = [key for key in self.pretrain_args if key in SWEEP_CONTROLLED_KEYS]
        if controlled:
            raise ValueError(f"pretrain_args sets {', '.join(controlled)}, which the sweep sets for every run")
        if self.warmup_fraction is not None and not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        self._check_corpora()
        self.space()  # checks the shape space

    def _check_schedules(self) -> None:
        if self.kind != "schedule":
            if self.schedules is not None:
                raise ValueError(f"schedules is a sweep axis of kind 'schedule', not of kind {self.kind!r}")
            return
        if not isinstance(self.schedule_factors, list) or not self.schedule_factors:
            raise ValueError(
                f"schedule_factors must be a non-empty list of LR multiples, got {self.schedule_factors!r}"
            )
        self.schedule_factors = [_number("schedule_factors", f) for f in self.schedule_factors]
        if not isinstance(self.schedules, list) or not self.schedules:
            raise ValueError(
                "kind 'schedule' needs `schedules`, a non-empty list of milestone lists, e.g. [[0.8, 0.9], [0.9, 1.0]]"
            )
        checked = []
        for index, milestones in enumerate(self.schedules):
            where = f"schedules[{index}]"
            if not isinstance(milestones, list) or len(milestones) != len(self.schedule_factors):
                raise ValueError(
                    f"{where}: expected a list of {len(self.schedule_factors)} milestones (one per schedule_factors "
                    f"entry), got {milestones!r}"
                )
            milestones = [_number(where, m) for m in milestones]
            if any(m > 1 for m in milestones) or any(b <= a for a, b in zip(milestones, milestones[1:])):
                raise ValueError(
                    f"{where}: milestones must be increasing fractions of the tokens in (0, 1], got {milestones}"
                )
            if milestones in checked:
                raise ValueError(f"{where}: the milestone list {milestones} is listed twice")
            checked.append(milestones)
        self.schedules = checked
        if any(key in self.pretrain_args for key in SCHEDULE_KEYS):
            raise ValueError("pretrain_args sets lr_scheduler_kwargs, which kind 'schedule' sets for every run")

    def _check_corpora(self) -> None:
        if self.corpora is None:
            return
        if not isinstance(self.corpora, dict) or not self.corpora:
            raise ValueError(f"corpora must be a non-empty mapping of names to dataset paths, got {self.corpora!r}")
        from ..training.packing import dataset_path_exists

        for name, path in self.corpora.items():
            if not isinstance(name, str) or not _CORPUS_NAME.fullmatch(name) or name == "tokenizer":
                raise ValueError(
                    f"corpora: {name!r} is not a usable corpus name (letters, digits, '_', '-', '.'; not 'tokenizer'): "
                    "it names the corpus's folder"
                )
            if not isinstance(path, str) or not path:
                raise ValueError(f"corpora: corpus {name!r} needs a dataset path, got {path!r}")
            if not dataset_path_exists(path):
                raise FileNotFoundError(f"corpora: the dataset path of corpus {name!r}, {path!r}, does not exist")
        if "dataset_path" in self.pretrain_args:
            raise ValueError("pretrain_args sets dataset_path, which `corpora` sets for each corpus's runs")

    def space(self) -> ShapeSpace:
        return ShapeSpace(
            head_dim=self.head_dim,
            ffn_multiple_of=self.ffn_multiple_of,
            min_layers=self.min_layers,
            max_layers=self.max_layers,
            min_width=self.min_width,
            max_width=self.max_width,
            aspect_ratio=tuple(float(x) for x in self.aspect_ratio),
            target_aspect=self.target_aspect,
        )

    @property
    def results_path(self) -> Path:
        return Path(self.output_dir) / "results.jsonl"

    def run_dir(self, name: str) -> Path:
        return Path(self.output_dir) / "runs" / name

    def log_path(self, name: str) -> Path:
        return Path(self.output_dir) / "logs" / f"{name}.log"

    @property
    def tokenizer_path(self) -> Path:
        return Path(self.tokenizer_dir) if self.tokenizer_dir else Path(self.output_dir) / "tokenizer"


def corpus_studies(config: SweepConfig) -> dict[str, SweepConfig]:
    """{corpus: its sub-study}: the same runs in `<output_dir>/<corpus>/`, on that corpus, with the shared tokenizer
    (a study without `corpora` is its own single study, under the name "")."""
    if not config.corpora:
        return {"": config}
    return {
        name: replace(
            config,
            corpora=None,
            output_dir=str(Path(config.output_dir) / name),
            pretrain_args={**config.pretrain_args, "dataset_path": path},
            tokenizer_dir=str(config.tokenizer_path),
        )
        for name, path in config.corpora.items()
    }


def _number(name: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)  # YAML reads 1e12 (no dot) as a string
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


def load_config(path: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None) -> SweepConfig:
    """A `SweepConfig` from a YAML file and `key: value` overrides (the command line's), unknown keys refused."""
    import yaml

    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sweep config {str(path)!r} does not exist")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a sweep config is a mapping of keys, got {type(loaded).__name__}")
        values.update(loaded or {})
    values.update(overrides or {})
    valid = {f.name for f in fields(SweepConfig)}
    check_keys(values, valid, what="sweep config")
    missing = [name for name in ("base_config", "budgets") if name not in values]
    if missing:
        raise ValueError(f"sweep config: missing required key(s) {', '.join(missing)}")
    return SweepConfig(**values)


# ----------------------------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------------------------


def plan_runs(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep (without the predicted run, which needs the fits), in the order they run."""
    if config.corpora:
        raise ValueError(
            "a study of several corpora plans one sub-study per corpus: plan_runs(corpus_studies(...)[name])"
        )
    space, multiple = config.space(), config.micro_batch_size * config.num_processes
    runs: list[RunSpec] = []
    one_shape = {  # grid and schedule studies: one shape per budget
        "n_layer": config.n_layer,
        "d_model": config.d_model,
        "space": space,
        "batch_multiple": multiple,
        "min_steps": config.min_steps,
    }
    for budget in config.budgets:
        if config.kind == "schedule":
            runs += schedule_runs(
                budget,
                config.seq_length,
                schedules=config.schedules,
                factors=config.schedule_factors,
                batch_tokens=config.batch_tokens[0] if config.batch_tokens else None,
                learning_rate=config.learning_rates[0] if config.learning_rates else None,
                **one_shape,
            )
            continue
        if config.kind == "grid":
            runs += grid_runs(
                budget,
                config.seq_length,
                batch_tokens=config.batch_tokens,
                learning_rates=config.learning_rates,
                **one_shape,
            )
            continue
        centre = config.centre
        if centre is None and config.centre_factor != 1.0:
            from .laws import MODEL_SCALE_LAW

            centre = MODEL_SCALE_LAW(budget) * config.centre_factor
        runs += isoflop_shapes(
            budget,
            config.seq_length,
            num_shapes=config.num_shapes,
            span=config.span,
            centre=centre,
            space=space,
            batch_tokens=config.batch_tokens[0] if config.batch_tokens else None,
            learning_rate=config.learning_rates[0] if config.learning_rates else None,
            batch_multiple=multiple,
            min_steps=config.min_steps,
            min_shapes=config.min_shapes,
        )
    return runs


def _spec_key(spec: RunSpec) -> dict[str, Any]:
    """What must not change between two calls of a sweep for a run of the same name."""
    data = spec.to_dict()
    data.pop("sources", None)
    return json.loads(json.dumps(data))


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_plan(config: SweepConfig, specs: list[RunSpec]) -> None:
    """Record the plan; refuse a config that changes a run already planned (the table would mix two studies)."""
    path = Path(config.output_dir) / "plan.json"
    planned = {}
    if path.is_file():
        planned = json.loads(path.read_text(encoding="utf-8")).get("runs", {})
        changed = [s.name for s in specs if s.name in planned and planned[s.name] != _spec_key(s)]
        if changed:
            raise ValueError(
                f"{path}: the config changes run(s) already planned in this output_dir: {', '.join(changed)}; "
                "use a new output_dir (or delete the folder to start over)"
            )
    planned.update({s.name: _spec_key(s) for s in specs})
    _write_json(path, {"config": asdict(config), "runs": planned})


# ----------------------------------------------------------------------------------------------------------------
# Launching
# ----------------------------------------------------------------------------------------------------------------


def _read_base_config(path: str, schedule: bool = False) -> dict[str, Any]:
    import yaml

    base = Path(path)
    if not base.is_file():
        raise FileNotFoundError(f"base_config {path!r} does not exist")
    values = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"base_config {path}: expected a mapping of pretraining keys")
    controlled = [key for key in values if key in SWEEP_CONTROLLED_KEYS]
    if controlled:
        raise ValueError(
            f"base_config {path} sets {', '.join(controlled)}, which the sweep sets for every run: remove them"
        )
    if schedule:
        if any(key in values for key in SCHEDULE_KEYS):
            raise ValueError(f"base_config {path} sets lr_scheduler_kwargs, which kind 'schedule' sets for every run")
        if values.get("lr_scheduler_type", "multi_step") != "multi_step":
            raise ValueError(
                f"base_config {path}: kind 'schedule' varies the milestones of the multi-step schedule, but the base "
                f"config sets lr_scheduler_type {values['lr_scheduler_type']!r}"
            )
    return values


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def pretrain_command(config: SweepConfig, spec: RunSpec, tokenizer: str | None = None) -> list[str]:
    """The command line of one run (python or accelerate launch), every per-run setting as a flag."""
    from ..utils import parse_overrides

    base = _read_base_config(config.base_config, schedule=spec.schedule is not None)
    model = parse_overrides(base.get("config_overrides"))
    model.update(spec.shape.config_overrides())
    args: dict[str, Any] = {
        "output_dir": str(config.run_dir(spec.name)),
        "compute_budget": repr(spec.budget),
        "seq_length": spec.seq_len,
        "config_overrides": ",".join(f"{k}={v}" for k, v in model.items()),
        "per_device_train_batch_size": min(config.micro_batch_size, spec.batch_sequences // config.num_processes),
        "global_batch_size": spec.batch_sequences,
        "learning_rate": repr(spec.learning_rate),
    }
    if config.warmup_fraction is not None:
        args["warmup_steps"] = max(1, round(config.warmup_fraction * spec.steps))
    if spec.schedule is not None:
        args["lr_scheduler_kwargs"] = spec.schedule
    if tokenizer is not None:
        args["tokenizer_name_or_path"] = tokenizer
    if "tokenized_cache_dir" not in base:  # tokenize the corpus once for the whole study, not once per run
        args["tokenized_cache_dir"] = str(Path(config.output_dir) / "tokenized")
    args.update(config.pretrain_args)
    if config.launcher == "accelerate":
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(config.num_processes)]
        if config.accelerate_config:
            launch += ["--config_file", config.accelerate_config]
    else:
        launch = [sys.executable]
    command = [*launch, config.pretrain_script, "--config", config.base_config]
    for key, value in args.items():
        command += [f"--{key}", _flag_value(value)]
    return command


@dataclass(frozen=True)
class RunFailure:
    run: str
    reason: str
    log: str

    def __str__(self) -> str:
        return f"{self.run}: {self.reason} (log: {self.log})"


@dataclass
class SweepReport:
    """What one call of `run_sweep` did."""

    planned: int = 0
    skipped: list[str] = field(default_factory=list)  # already in the table
    trained: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)  # finished earlier, row appended now
    failed: list[RunFailure] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)  # after a failure with on_failure: stop
    prediction: dict[str, Any] | None = None
    corpora: dict[str, SweepReport] = field(default_factory=dict)  # a study of several corpora: each one's report

    def add_corpus(self, name: str, report: SweepReport) -> None:
        """Count a corpus's sub-study in this report (its run names prefixed `<corpus>/`)."""
        self.corpora[name] = report
        self.planned += report.planned
        for attribute in ("skipped", "trained", "collected", "not_started"):
            getattr(self, attribute).extend(f"{name}/{run}" for run in getattr(report, attribute))
        self.failed += [RunFailure(f"{name}/{f.run}", f.reason, f.log) for f in report.failed]

    def summary(self) -> str:
        if self.corpora:
            lines = [f"{len(self.corpora)} corpora, {self.planned} runs planned, {len(self.failed)} failed"]
            for name, report in self.corpora.items():
                lines.append(f"corpus {name}: " + report.summary().replace("\n", "\n  "))
            not_run = [run for run in self.not_started if run.split("/")[0] not in self.corpora]
            if not_run:
                lines.append(f"not started (after a failure): {len(not_run)} runs of the later corpora")
            return "\n".join(lines)
        lines = [
            f"{self.planned} runs planned: {len(self.skipped)} already in the table, {len(self.trained)} trained, "
            f"{len(self.collected)} collected, {len(self.failed)} failed, {len(self.not_started)} not started"
        ]
        lines += [f"FAILED {failure}" for failure in self.failed]
        if self.prediction:
            p = self.prediction
            actual = p.get("actual_bpb")
            lines.append(
                f"prediction at C = {p['budget']:.3g}: {p['predicted_bpb']:.4f} bpb predicted"
                + (f", {actual:.4f} measured ({p['relative_error']:+.2%})" if actual is not None else "")
            )
        return "\n".join(lines)


Runner = Callable[..., int]  # (command, log_path, timeout, env=...) -> exit code


def local_runner(
    command: list[str], log_path: Path, timeout: float | None, env: Mapping[str, str] | None = None
) -> int:
    """Run one command on this machine, stdout and stderr appended to `log_path`; its exit code (-9 on timeout).
    `env` is added to this process's environment."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            log.write(f"\n[scaling sweep] killed after the run timeout of {timeout} s\n")
            return -9
        except BaseException:  # the sweep itself is interrupted: do not leave the run behind
            process.kill()
            process.wait()
            raise


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        logger.warning("%s is not valid JSON (written when the run was killed?): the run is not finished", path)
        return None


def run_finished(run_dir: Path) -> bool:
    """Whether the pretraining recipe finished in `run_dir` (final metrics and model written)."""
    return _load_json(run_dir / "all_results.json") is not None and (run_dir / "config.json").is_file()


def result_row(spec: RunSpec, run_dir: Path, wall_s: float | None) -> dict[str, Any]:
    """The results-table row of a finished run, from its `all_results.json`, `training_plan.json`, `config.json`.

    Raises `ValueError` naming what is missing or inconsistent (no validation metrics; an M that is not the plan's).
    """
    metrics = _load_json(run_dir / "all_results.json") or {}
    plan = _load_json(run_dir / "training_plan.json") or {}
    model = _load_json(run_dir / "config.json") or {}
    missing = [key for key in ("eval_loss", "eval_bits_per_byte") if metrics.get(key) is None]
    if missing:
        raise ValueError(
            f"{run_dir}/all_results.json has no {' / '.join(missing)}: the pretraining run had no validation "
            "split (the scaling fits need the final validation bits-per-byte)"
        )
    m = metrics.get("flops_per_token", plan.get("flops_per_token"))
    if m is None or not math.isclose(float(m), spec.model_scale, rel_tol=1e-9):
        raise ValueError(f"{run_dir}: the run's M = {m} FLOPs/token is not the planned {spec.model_scale}")
    tokens = metrics.get("train_tokens", metrics.get("num_input_tokens_seen"))
    if not tokens:
        raise ValueError(f"{run_dir}/all_results.json has no train_tokens (tokens actually trained)")
    tokens = float(tokens)
    schedule = {}
    if spec.schedule is not None:  # Figure 1b compares the curves, so the row keeps the run's
        schedule = {"schedule": spec.schedule, "loss_curve": loss_curve(run_dir)}
    return {
        "run": spec.name,
        "kind": spec.kind,
        "budget": spec.budget,
        "n_layer": spec.shape.n_layer,
        "d_model": spec.shape.d_model,
        "n_heads": spec.shape.n_heads,
        "seq_len": spec.seq_len,
        "vocab_size": int(model.get("vocab_size", 0)),
        "model_scale": float(spec.model_scale),
        "tokens": tokens,
        "flops": float(spec.model_scale) * tokens,
        "batch_size": int(plan.get("batch_size_tokens", spec.batch_tokens)),
        "learning_rate": float(plan.get("learning_rate", spec.learning_rate)),
        "eval_loss": float(metrics["eval_loss"]),
        "eval_bpb": float(metrics["eval_bits_per_byte"]),
        "train_loss": metrics.get("final_loss", metrics.get("train_loss")),
        "wall_s": wall_s,
        "output_dir": str(run_dir),
        "extra": {"planned_tokens": spec.tokens, "steps": plan.get("max_steps"), "sources": spec.sources, **schedule},
    }


def loss_curve(run_dir: Path) -> dict[str, list[float | None]]:
    """The training loss a run logged (`trainer_state.json`): {"step", "tokens", "loss", "learning_rate"} lists;
    `ValueError` when the run logged none (its `logging_steps` is not below its number of steps)."""
    state = _load_json(run_dir / "trainer_state.json")
    if state is None:
        raise ValueError(f"{run_dir}/trainer_state.json is missing: the run's training-loss curve is unknown")
    entries = [entry for entry in state.get("log_history", []) if "loss" in entry and "step" in entry]
    if not entries:
        raise ValueError(
            f"{run_dir}/trainer_state.json logged no training loss: set pretrain_args.logging_steps below the "
            "run's number of steps"
        )
    return {
        "step": [int(e["step"]) for e in entries],
        "tokens": [e.get("tokens_seen", e.get("num_input_tokens_seen")) for e in entries],
        "loss": [float(e["loss"]) for e in entries],
        "learning_rate": [e.get("learning_rate") for e in entries],
    }


def _ensure_tokenizer(config: SweepConfig) -> str | None:
    """Train the study's tokenizer once into `<output_dir>/tokenizer` when `tokenizer_corpus` is set."""
    if config.tokenizer_corpus is None:
        return None
    target = config.tokenizer_path
    if (target / "tokenizer_config.json").is_file():
        return str(target)
    from ..tokenizer.train import train_tokenizer
    from ..utils import expand_package_path

    corpus = expand_package_path(config.tokenizer_corpus)
    if not Path(corpus).exists():
        raise FileNotFoundError(f"tokenizer_corpus {config.tokenizer_corpus!r} does not exist")
    logger.info("Training the study's tokenizer (%d tokens) on %s", config.tokenizer_vocab_size, corpus)
    train_tokenizer([corpus], vocab_size=config.tokenizer_vocab_size, output_dir=str(target), show_progress=False)
    return str(target)


def _run_one(
    config: SweepConfig, spec: RunSpec, tokenizer: str | None, runner: Runner, report: SweepReport
) -> dict[str, Any] | None:
    """Train (or collect) one run and append its row; a failure goes into the report. Returns the row."""
    run_dir, log = config.run_dir(spec.name), config.log_path(spec.name)
    wall = None
    if run_finished(run_dir):
        logger.info("%s finished earlier: collecting its row", spec.name)
        collected = True
    else:
        collected = False
        command = pretrain_command(config, spec, tokenizer)
        resumed = " (resuming from its last checkpoint)" if any(run_dir.glob("checkpoint-*")) else ""
        logger.info("Run %s%s: %s; log %s", spec.name, resumed, _describe(spec), log)
        start = time.monotonic()
        code = runner(command, log, config.run_timeout_s)
        wall = time.monotonic() - start
        if code != 0:
            report.failed.append(RunFailure(spec.name, f"exit code {code}", str(log)))
            logger.error("Run %s failed (exit code %s); log: %s", spec.name, code, log)
            return None
    try:
        row = result_row(spec, run_dir, wall)
    except ValueError as error:
        report.failed.append(RunFailure(spec.name, str(error), str(log)))
        logger.error("Run %s: %s; log: %s", spec.name, error, log)
        return None
    append_result(config.results_path, row)
    (report.collected if collected else report.trained).append(spec.name)
    return row


def _describe(spec: RunSpec) -> str:
    return (
        f"C {spec.budget:.3g}, L{spec.shape.n_layer} d{spec.shape.d_model} (M {spec.model_scale:.3g}), "
        f"D {spec.tokens:.3g} tokens, batch {spec.batch_sequences} x {spec.seq_len}, LR {spec.learning_rate:.3g}"
    )


def run_sweep(config: SweepConfig, runner: Runner | None = None) -> SweepReport:
    """Plan, launch, resume and record the sweep (see the module docstring); returns what it did."""
    from tqdm.auto import tqdm

    if config.corpora:
        return _run_corpora(config, runner)
    if runner is None:

        def runner(command, log_path, timeout):
            return local_runner(command, log_path, timeout, env=config.run_env)

    if not Path(config.pretrain_script).is_file():
        raise FileNotFoundError(
            f"pretrain_script {config.pretrain_script!r} does not exist (relative to {os.getcwd()}): run from the "
            "repository root or give its path"
        )
    specs = plan_runs(config)
    for spec in specs:
        pretrain_command(config, spec)  # the base config is checked before anything runs
    report = SweepReport(planned=len(specs))
    done = finished_runs(config.results_path)
    todo = [s for s in specs if s.name not in done]
    report.skipped = [s.name for s in specs if s.name in done]
    if config.dry_run:  # the study's tokenizer is still trained: the commands need it
        _write_commands(config, todo, _ensure_tokenizer(config))
        report.not_started = [s.name for s in todo]
        return report
    _check_plan(config, specs)
    tokenizer = None if config.collect_only else _ensure_tokenizer(config)
    if report.skipped:
        logger.info(
            "%d of %d runs are already in %s: not run again", len(report.skipped), len(specs), config.results_path
        )
    for index, spec in enumerate(tqdm(todo, desc="scaling sweep", unit="run")):
        if config.collect_only:
            if run_finished(config.run_dir(spec.name)):
                _run_one(config, spec, tokenizer, runner, report)
            else:
                report.not_started.append(spec.name)
            continue
        if _run_one(config, spec, tokenizer, runner, report) is None and config.on_failure == "stop":
            report.not_started = [s.name for s in todo[index + 1 :]]
            break
    if config.predict_budget is not None and not report.failed and not report.not_started:
        report.prediction = _predict_and_run(config, specs, tokenizer, runner, report)
    return report


def _run_corpora(config: SweepConfig, runner: Runner | None) -> SweepReport:
    """The same study on each corpus in turn (Table 4), each a sub-study of its own; `corpora.json` lists them."""
    path = Path(config.output_dir) / CORPORA_FILE
    listed = (_load_json(path) or {}).get("corpora", {})
    moved = [
        name for name, path_ in config.corpora.items() if name in listed and listed[name]["dataset_path"] != path_
    ]
    if moved:
        raise ValueError(
            f"{path}: the config gives corpus(es) {', '.join(moved)} another dataset path than the study's; use a new "
            "output_dir or a new corpus name"
        )
    listed.update(
        {name: {"dataset_path": p, "results": f"{name}/results.jsonl"} for name, p in config.corpora.items()}
    )
    _write_json(path, {"corpora": listed})
    studies = corpus_studies(config)
    report = SweepReport()
    for index, (name, study) in enumerate(studies.items()):
        logger.info("Corpus %s (%s): study in %s", name, config.corpora[name], study.output_dir)
        sub = run_sweep(study, runner)
        report.add_corpus(name, sub)
        if sub.failed and config.on_failure == "stop":
            for rest in list(studies)[index + 1 :]:
                names = [spec.name for spec in plan_runs(studies[rest])]
                report.planned += len(names)
                report.not_started += [f"{rest}/{run}" for run in names]
            break
    return report


def _write_commands(config: SweepConfig, specs: list[RunSpec], tokenizer: str | None) -> Path:
    path = Path(config.output_dir) / "commands.sh"
    tokenizer = tokenizer or (str(config.tokenizer_path) if config.tokenizer_corpus else None)
    lines = ["# one line per unfinished run: one job each (see docs/scaling.md); then collect_only: true"]
    env = "".join(f"{key}={shlex.quote(value)} " for key, value in config.run_env.items())
    lines += [env + shlex.join(pretrain_command(config, spec, tokenizer)) for spec in specs]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.info("Wrote %d commands to %s", len(specs), path)
    return path


# ----------------------------------------------------------------------------------------------------------------
# The larger run, predicted beforehand
# ----------------------------------------------------------------------------------------------------------------


def _predict_and_run(
    config: SweepConfig, specs: list[RunSpec], tokenizer: str | None, runner: Runner, report: SweepReport
) -> dict[str, Any] | None:
    """Fit on the IsoFLOP rows, write the prediction, then train and measure the predicted run."""
    from .fits import fit_isoflop, fit_loss_law
    from .laws import DATA_SCALE_LAW, MODEL_SCALE_LAW

    path = Path(config.output_dir) / "prediction.json"
    prediction = _load_json(path)
    planned = {s.name for s in specs}
    if prediction is None:
        rows = [r for r in read_results(config.results_path) if r["kind"] == "isoflop" and r["run"] in planned]
        notes = []
        try:
            isoflop = fit_isoflop(rows, n_bootstrap=config.fit_bootstrap)
            loss = fit_loss_law(rows, n_bootstrap=config.fit_bootstrap)
        except ValueError as error:
            if "bootstrap" not in str(error) or not config.fit_bootstrap:
                raise
            # few runs per budget: most resamples lose a curve. The point prediction is still defined; say so.
            notes.append(f"no bootstrap interval: {error}")
            logger.warning("Prediction without an uncertainty: %s", error)
            isoflop = fit_isoflop(rows, n_bootstrap=0)
            loss = fit_loss_law(rows, n_bootstrap=0)
        m_opt = isoflop.model_scale(config.predict_budget)
        (spec,) = isoflop_shapes(
            config.predict_budget,
            config.seq_length,
            num_shapes=1,
            span=1.0,
            centre=m_opt,
            space=config.space(),
            batch_tokens=config.batch_tokens[0] if config.batch_tokens else None,
            learning_rate=config.learning_rates[0] if config.learning_rates else None,
            batch_multiple=config.micro_batch_size * config.num_processes,
            min_steps=config.min_steps,
            min_shapes=1,
        )
        spec = RunSpec(
            **{**spec.__dict__, "name": f"predict-C{format_budget(config.predict_budget)}", "kind": "predict"}
        )
        # the prediction is for the run's compute as planned; the fits compare against the tokens actually trained
        estimate = loss.predict(config.predict_budget)
        prediction = {
            "budget": config.predict_budget,
            "predicted_bpb": estimate.value,
            "predicted": estimate.to_dict(),
            "loss_law": str(loss),
            "fitted_m_opt": m_opt,
            "isoflop_exponents": {
                "a": isoflop.model_scale.exponent.to_dict(),
                "b": isoflop.data_scale.exponent.to_dict(),
            },
            "paper_exponents": {"a": MODEL_SCALE_LAW.exponent, "b": DATA_SCALE_LAW.exponent},
            "warnings": notes + list(isoflop.warnings),
            "run": spec.to_dict(),
            "written_before_the_run": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_json(path, prediction)
        logger.info(
            "Predicted %.4f bpb at C = %.3g (%s), written to %s", estimate.value, config.predict_budget, loss, path
        )
    run = dict(prediction["run"])
    run.pop("batch_tokens", None)
    spec = RunSpec(**{**run, "shape": ModelShape(**run["shape"])})
    if spec.name not in finished_runs(config.results_path):
        row = _run_one(config, spec, tokenizer, runner, report)
        if row is None:
            return prediction
    row = next(r for r in read_results(config.results_path) if r["run"] == spec.name)
    if prediction.get("actual_bpb") is None:
        prediction.update(
            actual_bpb=row["eval_bpb"],
            relative_error=(prediction["predicted_bpb"] - row["eval_bpb"]) / row["eval_bpb"],
        )
        _write_json(path, prediction)
    return prediction
