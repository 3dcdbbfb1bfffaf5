"""Model shapes for a compute budget: the runs of an IsoFLOP profile or of a batch/LR grid (paper section 3).

For a budget `C` and a training sequence length, `isoflop_shapes` picks model shapes whose model scale `M` (paper
Eq. 2, `deepseek_hf.scaling.model_scale`) is spread evenly in log space around a centre: the compute-optimal
`M_opt = 0.1715 C^0.5243` of the paper's law (Eq. 4) or a centre of your own (e.g. from your own fit). Where that
window of `M` leaves the shapes the budget allows (at toy budgets the law's `M_opt` is below the smallest model),
it is moved inside them, with a warning. Each shape
trains on `D = C / M` tokens, so that every run of the profile spends the same `C = M D`, with the batch size and
peak learning rate of the fitted laws (Eq. 1, `optimal_batch_tokens`, `optimal_lr`) or the values you give.
`grid_runs` gives one shape at a budget with every batch size x learning rate of a grid (the paper's Figure 2);
`schedule_runs` one shape, batch and LR at a budget with several multi-step schedules (the paper's Figure 1b).

Depth/width conventions. The paper (section 3, Table 3) trains members of the DeepSeek LLM family and does not
state a rule tying depth to width; its Table 3 shapes have `d_model / n_layer` between 43 and 128 (the released 7B
136, the 67B 86). What this module chose where the paper is silent, each a field of `ShapeSpace`:

* the block is the paper's: pre-norm, multi-head attention (`num_key_value_heads = num_attention_heads`, what
  Eq. 2 counts; the 67B's GQA is an inference choice), SwiGLU FFN of `8/3 d` rounded up to `ffn_multiple_of`
  (256 in the presets, which gives 11008 and 22016);
* `d_model` is a multiple of `head_dim` (128 in both released models; the CPU study uses 32) and the heads are
  `d_model / head_dim`;
* `d_model / n_layer` stays within `aspect_ratio` (default 32-160, which holds every Table 3 row and both
  presets); among the shapes nearest a target `M` the one closest to `target_aspect` (64, the two smallest Table 3
  rows) wins;
* a shape must train for at least `min_steps` optimizer steps at its batch size, else it is dropped (logged).

A budget for which fewer than `min_shapes` shapes remain (too small for any shape, or for a profile) is a
`ValueError` naming the smallest budget that would do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .hparams import round_batch_sequences
from .laws import optimal_allocation, optimal_batch_tokens, optimal_lr
from .scale import model_scale

logger = logging.getLogger(__name__)

__all__ = [
    "ShapeSpace",
    "ModelShape",
    "RunSpec",
    "candidate_shapes",
    "isoflop_shapes",
    "grid_runs",
    "schedule_runs",
    "schedule_label",
    "format_budget",
]


@dataclass(frozen=True)
class ShapeSpace:
    """Which model shapes a sweep may use (see the module docstring for why these defaults)."""

    head_dim: int = 128
    ffn_multiple_of: int = 256
    min_layers: int = 1
    max_layers: int = 128
    min_width: int | None = None  # default: head_dim
    max_width: int = 16384
    aspect_ratio: tuple[float, float] = (32.0, 160.0)  # allowed d_model / n_layer
    target_aspect: float = 64.0

    def __post_init__(self):
        for name in ("head_dim", "ffn_multiple_of", "min_layers", "max_layers", "max_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"shape space: {name} must be a positive integer, got {value!r}")
        if self.min_layers > self.max_layers:
            raise ValueError(f"shape space: min_layers {self.min_layers} > max_layers {self.max_layers}")
        low, high = self.aspect_ratio
        if not 0 < low <= high:
            raise ValueError(f"shape space: aspect_ratio must be (low, high) with 0 < low <= high, got {low, high}")
        if self.widths()[0] > self.max_width:
            raise ValueError(f"shape space: no width: min_width {self.min_width} > max_width {self.max_width}")

    def widths(self) -> range:
        start = self.min_width or self.head_dim
        start = self.head_dim * math.ceil(start / self.head_dim)
        return range(start, self.max_width + 1, self.head_dim)


@dataclass(frozen=True)
class ModelShape:
    """One model of the family; `config_overrides()` turns it into the pretraining recipe's model overrides."""

    n_layer: int
    d_model: int
    n_heads: int
    head_dim: int
    intermediate_size: int

    def flops_per_token(self, seq_len: int) -> int:
        """`M` at `seq_len` (paper Eq. 2; the vocabulary does not enter it)."""
        return model_scale(self.n_layer, self.d_model, seq_len, vocab_size=1).flops_per_token

    def config_overrides(self) -> dict[str, int]:
        return {
            "num_hidden_layers": self.n_layer,
            "hidden_size": self.d_model,
            "intermediate_size": self.intermediate_size,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_heads,
            "head_dim": self.head_dim,
        }


@dataclass(frozen=True)
class RunSpec:
    """One pretraining run of a sweep: shape, budget, tokens, batch and learning rate; `name` is its folder."""

    name: str
    kind: str  # "isoflop" | "grid" | "schedule" | "predict"
    budget: float  # C in FLOPs
    seq_len: int
    shape: ModelShape
    model_scale: int  # M at seq_len
    tokens: float  # D = C / M
    batch_sequences: int  # sequences per optimizer step
    learning_rate: float
    sources: dict[str, str] = field(default_factory=dict)  # where batch and LR came from
    schedule: dict[str, list[float]] | None = None  # kind schedule: the multi-step `milestones` and `factors`

    @property
    def batch_tokens(self) -> int:
        return self.batch_sequences * self.seq_len

    @property
    def steps(self) -> float:
        return self.tokens / self.batch_tokens

    def to_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "batch_tokens": self.batch_tokens}
        if self.schedule is None:  # plans written before the schedule axis existed stay valid
            del data["schedule"]
        return data


def format_budget(budget: float) -> str:
    """`3e+11` -> `3e11`, `1.5e12` -> `1.5e12`: budgets in run names."""
    return f"{budget:.3g}".replace("e+", "e")


def _shape(space: ShapeSpace, n_layer: int, d_model: int) -> ModelShape:
    from deepseek_hf.modeling.configuration_deepseek_llm import swiglu_intermediate_size

    return ModelShape(
        n_layer=n_layer,
        d_model=d_model,
        n_heads=d_model // space.head_dim,
        head_dim=space.head_dim,
        intermediate_size=swiglu_intermediate_size(d_model, space.ffn_multiple_of),
    )


def candidate_shapes(space: ShapeSpace, seq_len: int) -> list[tuple[int, int, int]]:
    """Every `(M, n_layer, d_model)` the space allows, sorted by `M`."""
    low, high = space.aspect_ratio
    found = []
    for n_layer in range(space.min_layers, space.max_layers + 1):
        for d_model in space.widths():
            if low <= d_model / n_layer <= high:
                found.append((model_scale(n_layer, d_model, seq_len, 1).flops_per_token, n_layer, d_model))
    if not found:
        raise ValueError(f"the shape space allows no shape (aspect ratio {space.aspect_ratio}): {space}")
    return sorted(found)


def _batch_and_lr(
    budget: float, seq_len: int, batch_tokens: float | None, learning_rate: float | None, batch_multiple: int
) -> tuple[int, float, dict[str, str]]:
    sources = {
        "batch": "given" if batch_tokens is not None else "law: B_opt = 0.2920 C^0.3271",
        "learning_rate": "given" if learning_rate is not None else "law: eta_opt = 0.3118 C^-0.1250",
    }
    tokens = batch_tokens if batch_tokens is not None else optimal_batch_tokens(budget)
    lr = learning_rate if learning_rate is not None else optimal_lr(budget)
    if not tokens > 0 or not lr > 0:
        raise ValueError(f"batch size and learning rate must be positive, got {tokens!r} and {lr!r}")
    return round_batch_sequences(tokens, seq_len, batch_multiple), float(lr), sources


def _check_budget(budget: float) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"a compute budget must be a positive number of FLOPs, got {budget!r}")
    return float(budget)


def isoflop_shapes(
    budget: float,
    seq_len: int,
    *,
    num_shapes: int = 5,
    span: float = 8.0,
    centre: float | None = None,
    space: ShapeSpace | None = None,
    batch_tokens: float | None = None,
    learning_rate: float | None = None,
    batch_multiple: int = 1,
    min_steps: int = 20,
    min_shapes: int = 3,
) -> list[RunSpec]:
    """The runs of one IsoFLOP profile at `budget` FLOPs: shapes with `M` from `centre / sqrt(span)` to
    `centre * sqrt(span)` (log-spaced targets, each taken by the nearest allowed shape; duplicates merged, logged).

    `centre` defaults to the paper's `M_opt(C)`; `batch_tokens` / `learning_rate` default to its laws at `C`
    (one batch and LR for the whole profile, as the paper: hyperparameters depend on `C`, not on the split).
    `batch_multiple` is micro-batch x processes: the batch is rounded to whole multiples of it.
    """
    budget = _check_budget(budget)
    space = space or ShapeSpace()
    if num_shapes < 1 or not span >= 1:
        raise ValueError(f"num_shapes must be >= 1 and span >= 1, got {num_shapes} and {span}")
    if centre is None:
        centre = optimal_allocation(budget)[0]
    elif not centre > 0:
        raise ValueError(f"the centre M must be positive, got {centre!r}")
    sequences, lr, sources = _batch_and_lr(budget, seq_len, batch_tokens, learning_rate, batch_multiple)
    candidates = candidate_shapes(space, seq_len)
    if len(candidates) < min_shapes:
        raise ValueError(f"the shape space allows only {len(candidates)} shape(s), fewer than min_shapes={min_shapes}")

    # every shape trains for at least min_steps steps of `sequences x seq_len` tokens: M <= C / (min_steps x batch)
    max_m = budget / (min_steps * sequences * seq_len)
    feasible = [c for c in candidates if c[0] <= max_m]
    if len(feasible) < min_shapes:
        need = min_steps * sequences * seq_len * candidates[min_shapes - 1][0]
        raise ValueError(
            f"compute budget {budget:.3g} FLOPs is too small for {min_shapes} shapes of {seq_len}-token sequences: "
            f"with a batch of {sequences} sequences, {min_steps} steps need M <= {max_m:.3g} FLOPs/token and only "
            f"{len(feasible)} shape(s) of the space qualify (the smallest has M = {candidates[0][0]:.3g}); a budget "
            f"of about {need:.2g} FLOPs or more would do"
        )

    # the window of M targets, moved inside the feasible shapes when it sticks out (logged: the optimum is then
    # likely at the edge of the profile, which the IsoFLOP fit flags)
    half = math.log(span) / 2
    low, high = math.log(feasible[0][0]), math.log(feasible[-1][0])
    start = math.log(centre) - half
    start = max(min(start, high - 2 * half), low) if 2 * half <= high - low else low
    stop = min(start + 2 * half, high)
    if not math.isclose(start, math.log(centre) - half):
        logger.warning(
            "budget %s: the M window around %.3g (x%g) leaves the feasible shapes (M %.3g .. %.3g); using "
            "M %.3g .. %.3g instead",
            format_budget(budget), centre, span, feasible[0][0], feasible[-1][0], math.exp(start), math.exp(stop),
        )  # fmt: skip
    if num_shapes == 1:
        targets = [math.exp((start + stop) / 2)]
    else:
        targets = [math.exp(start + (stop - start) * i / (num_shapes - 1)) for i in range(num_shapes)]
    chosen: list[tuple[int, int, int]] = []
    for target in targets:
        # nearest M (to 1% in log), then nearest the target aspect ratio
        best = min(
            feasible,
            key=lambda c, t=target: (
                round(abs(math.log(c[0] / t)), 2),
                abs(math.log(c[2] / c[1] / space.target_aspect)),
            ),
        )
        if best not in chosen:
            chosen.append(best)
    if len(chosen) < num_shapes:
        logger.warning(
            "budget %s: %d of the %d target M values map to the same shapes (the shape space is coarse there); "
            "%d distinct shapes",
            format_budget(budget),
            num_shapes - len(chosen),
            num_shapes,
            len(chosen),
        )
    if len(chosen) < min_shapes:
        raise ValueError(
            f"compute budget {budget:.3g}: only {len(chosen)} distinct shape(s) around M = {centre:.3g} "
            f"(need {min_shapes}); widen `span` or the shape space"
        )
    runs = []
    for m, n_layer, d_model in sorted(chosen):
        runs.append(
            RunSpec(
                name=f"isoflop-C{format_budget(budget)}-L{n_layer}-d{d_model}",
                kind="isoflop",
                budget=budget,
                seq_len=seq_len,
                shape=_shape(space, n_layer, d_model),
                model_scale=m,
                tokens=budget / m,
                batch_sequences=sequences,
                learning_rate=lr,
                sources=dict(
                    sources, shape=f"M {math.exp(start):.4g} .. {math.exp(stop):.4g} (centre {centre:.4g}, x{span:g})"
                ),
            )
        )
    return runs


def _fixed_shape(
    budget: float, seq_len: int, space: ShapeSpace, n_layer: int | None, d_model: int | None, what: str
) -> ModelShape:
    """The one shape of a grid or schedule study: the one given, or the allowed shape nearest the paper's M_opt(C)."""
    if (n_layer is None) != (d_model is None):
        raise ValueError(f"give both n_layer and d_model for the {what}'s shape, or neither (the shape nearest M_opt)")
    if n_layer is None:
        target = optimal_allocation(budget)[0]
        _, n_layer, d_model = min(candidate_shapes(space, seq_len), key=lambda c: abs(math.log(c[0] / target)))
    elif d_model % space.head_dim:
        raise ValueError(f"d_model {d_model} is not a multiple of head_dim {space.head_dim}")
    return _shape(space, n_layer, d_model)


def _check_steps(budget: float, shape: ModelShape, seq_len: int, sequences: int, min_steps: int, what: str) -> None:
    m = shape.flops_per_token(seq_len)
    steps = budget / m / (sequences * seq_len)
    if steps < min_steps:
        raise ValueError(
            f"compute budget {budget:.3g} is too small for the {what} on L{shape.n_layer}-d{shape.d_model} "
            f"(M = {m:.3g}): a batch of {sequences} x {seq_len} tokens gives {steps:.1f} steps "
            f"(need {min_steps}); a budget of about {min_steps * sequences * seq_len * m:.2g} would do"
        )


def _fixed_shape_run(
    name: str,
    kind: str,
    budget: float,
    seq_len: int,
    shape: ModelShape,
    sequences: int,
    lr: float,
    sources: dict[str, str],
    schedule: dict[str, list[float]] | None = None,
) -> RunSpec:
    m = shape.flops_per_token(seq_len)
    return RunSpec(name, kind, budget, seq_len, shape, m, budget / m, sequences, lr, sources, schedule)


def grid_runs(
    budget: float,
    seq_len: int,
    *,
    batch_tokens: Sequence[float],
    learning_rates: Sequence[float],
    n_layer: int | None = None,
    d_model: int | None = None,
    space: ShapeSpace | None = None,
    batch_multiple: int = 1,
    min_steps: int = 20,
) -> list[RunSpec]:
    """A batch-size x learning-rate grid at one budget on one shape (paper Figure 2): the shape given, or the
    allowed shape nearest the paper's `M_opt(C)`. Batch sizes are in tokens (rounded to whole sequences)."""
    budget = _check_budget(budget)
    space = space or ShapeSpace()
    if not batch_tokens or not learning_rates:
        raise ValueError("a grid needs at least one batch size and one learning rate")
    shape = _fixed_shape(budget, seq_len, space, n_layer, d_model, "grid")
    n_layer, d_model = shape.n_layer, shape.d_model
    runs = []
    for batch in batch_tokens:
        for lr in learning_rates:
            sequences, lr, sources = _batch_and_lr(budget, seq_len, batch, lr, batch_multiple)
            _check_steps(budget, shape, seq_len, sequences, min_steps, "grid")
            name = f"grid-C{format_budget(budget)}-L{n_layer}-d{d_model}-B{sequences * seq_len}-lr{lr:.3g}"
            runs.append(_fixed_shape_run(name, "grid", budget, seq_len, shape, sequences, lr, sources))
    return runs


def schedule_label(milestones: Sequence[float]) -> str:
    """The stage proportions of a multi-step schedule in percent, as the paper's Figure 1b names them:
    `(0.8, 0.9)` -> `80/10/10`, `(0.9, 1.0)` -> `90/10/0`."""
    bounds = [0.0, *milestones, 1.0]
    return "/".join(f"{100 * (b - a):.3g}" for a, b in zip(bounds, bounds[1:]))


def schedule_runs(
    budget: float,
    seq_len: int,
    *,
    schedules: Sequence[Sequence[float]],
    factors: Sequence[float],
    batch_tokens: float | None = None,
    learning_rate: float | None = None,
    n_layer: int | None = None,
    d_model: int | None = None,
    space: ShapeSpace | None = None,
    batch_multiple: int = 1,
    min_steps: int = 20,
) -> list[RunSpec]:
    """One run per multi-step schedule at `budget` (the paper's Figure 1b): the same shape (given, or the allowed one
    nearest `M_opt(C)`), tokens, batch and peak LR (given, or the laws at C); only the milestones differ. Each
    `schedules` entry is a list of milestones (fractions of the tokens, increasing, in (0, 1]) at which the LR
    drops to the matching `factors` entry of the peak; a milestone of 1.0 is a stage of length 0 (`90/10/0`)."""
    budget = _check_budget(budget)
    space = space or ShapeSpace()
    if not schedules:
        raise ValueError("a schedule study needs at least one milestone list in `schedules`")
    shape = _fixed_shape(budget, seq_len, space, n_layer, d_model, "schedule study")
    sequences, lr, sources = _batch_and_lr(budget, seq_len, batch_tokens, learning_rate, batch_multiple)
    _check_steps(budget, shape, seq_len, sequences, min_steps, "schedule study")
    runs = []
    for milestones in schedules:
        name = f"schedule-C{format_budget(budget)}-L{shape.n_layer}-d{shape.d_model}-s{schedule_label(milestones)}"
        schedule = {"milestones": [float(x) for x in milestones], "factors": [float(f) for f in factors]}
        runs.append(
            _fixed_shape_run(
                name.replace("/", "-"), "schedule", budget, seq_len, shape, sequences, lr, sources, schedule
            )
        )
    return runs
