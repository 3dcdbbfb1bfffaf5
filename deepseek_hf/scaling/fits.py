"""Fit the paper's scaling laws to a results table (`deepseek_hf.scaling.results`), with bootstrap uncertainty.

Three fits, one per part of section 3 of DeepSeek LLM (arXiv 2401.02954):

* `fit_grid` (rows of kind `grid`, Figures 2-3): per compute budget, the *near-optimal region* of the batch-size x
  learning-rate grid, i.e. the runs whose eval bits-per-byte is within 0.25% of the budget's best; then power laws
  `B_opt = k_B C^e_B` and `eta_opt = k_eta C^e_eta` fitted, as the paper's Figure 3, on all near-optimal points of all
  budgets (least squares in log-log space).
* `fit_isoflop` (rows of kind `isoflop`, Figure 4): per budget a quadratic in `log10 M` of eval bits-per-byte, its
  minimum `M_opt` (and `D_opt = C / M_opt`), then `M_opt = k_M C^a` and `D_opt = k_D C^b` with `a + b`.
* `fit_loss_law` (Figure 5): bits-per-byte of the compute-optimal run of each budget (the IsoFLOP minimum) against
  compute, `L = k C^-alpha` by default. The paper draws a straight line in log-log axes and gives no other form; with
  the 3-5 budgets a study of one's own can pay for, the 2-parameter law is the one the data pins down, and it is what
  predicted the 1000x larger 7B / 67B runs. `form="offset"` fits `L = L_inf + k C^-alpha` (an irreducible loss; needs
  at least 4 budgets) for wider studies. `LossLawFit.predict(C)` extrapolates, with an interval.

Uncertainty: a bootstrap over runs. Each replicate resamples, with replacement and a seeded generator, the runs of
every budget separately (so every budget stays in the fit), and redoes the whole fit (near-optimal regions or
quadratics included). A replicate in which some curve has no minimum (fewer than 3 distinct model scales drawn, or
a curve that is not convex), or in which a curve that is not at an edge has its minimum outside the model scales
drawn for it (a resample that lost one side of the curve), is redrawn; the number of redraws is reported. Every coefficient is an `Estimate`: the
fit on all runs, the bootstrap std and a percentile interval.

Degenerate input is refused (`ValueError`) or warned about, never fitted silently: a budget with fewer than 3 runs
(grid) or 3 distinct model scales (IsoFLOP) is left out with a warning; a curve without a minimum is left out; a
minimum at the edge of its grid (best run at the smallest or largest value, or the vertex outside the sampled range)
is warned about and flagged (and left out with `exclude_edge=True`); fewer than 2 usable budgets is an error, and 2
budgets get a warning (a line through two points). Warnings are kept on the results (`.warnings`) and logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .laws import BATCH_SIZE_LAW, DATA_SCALE_LAW, LEARNING_RATE_LAW, MODEL_SCALE_LAW, PowerLaw

__all__ = [
    "NEAR_OPTIMAL_TOLERANCE",
    "Estimate",
    "GridBudget",
    "GridFit",
    "IsoFlopCurve",
    "IsoFlopFit",
    "LossLawFit",
    "PowerLawFit",
    "PredictionCheck",
    "ScalingFits",
    "fit_grid",
    "fit_isoflop",
    "fit_loss_law",
    "fit_results",
]

logger = logging.getLogger(__name__)

NEAR_OPTIMAL_TOLERANCE = 0.0025  # paper section 3.1: "generalization error within 0.25% of the minimum"
MIN_GRID_RUNS = 3
MIN_CURVE_POINTS = 3
DEFAULT_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95
_MAX_REDRAW_FACTOR = 20  # at most n_bootstrap * this many draws before giving up


class _Degenerate(Exception):
    """A fit that has no answer on this (resampled) data; in a bootstrap replicate it means: draw again."""


# ----------------------------------------------------------------------------------------------------------------
# Result types
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its bootstrap std and percentile interval (`None` without a bootstrap)."""

    value: float
    std: float | None = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def from_replicates(cls, value: float, replicates: np.ndarray | None, confidence: float) -> Estimate:
        if replicates is None or len(replicates) < 2:
            return cls(float(value))
        tail = 50 * (1 - confidence)
        low, high = np.percentile(replicates, [tail, 100 - tail])
        return cls(float(value), float(np.std(replicates, ddof=1)), float(low), float(high))

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "std": self.std, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        if self.std is None:
            return f"{self.value:.4g}"
        return f"{self.value:.4g} ± {self.std:.2g} [{self.low:.4g}, {self.high:.4g}]"


@dataclass(frozen=True)
class PowerLawFit:
    """`y = coefficient * C ** exponent` fitted by least squares in log-log space, next to the paper's law."""

    name: str
    coefficient: Estimate
    exponent: Estimate
    n_points: int
    n_budgets: int
    paper: PowerLaw | None = None
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)  # (n, 2): coefficient, exponent

    @property
    def law(self) -> PowerLaw:
        return PowerLaw(self.coefficient.value, self.exponent.value, name=self.name, source="fitted")

    def __call__(self, compute: float) -> float:
        return self.law(compute)

    def band(
        self, compute: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The percentile band of the bootstrap laws at each `compute` (None without a bootstrap)."""
        if self.replicates is None or len(self.replicates) < 2:
            return None
        values = self.replicates[:, :1] * np.power(np.asarray(compute, float)[None, :], self.replicates[:, 1:])
        tail = 50 * (1 - confidence)
        return np.percentile(values, tail, axis=0), np.percentile(values, 100 - tail, axis=0)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "coefficient": self.coefficient.to_dict(),
            "exponent": self.exponent.to_dict(),
            "n_points": self.n_points,
            "n_budgets": self.n_budgets,
        }
        if self.paper is not None:
            out["paper"] = {"coefficient": self.paper.coefficient, "exponent": self.paper.exponent}
        return out


@dataclass(frozen=True)
class GridBudget:
    """One budget of the batch/LR grid: every run, the best one and the near-optimal region."""

    budget: float
    runs: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    learning_rates: tuple[float, ...]
    eval_bpb: tuple[float, ...]
    near_optimal: tuple[bool, ...]
    best_run: str
    best_bpb: float
    at_edge: bool  # the best run has the smallest or largest batch size or LR of the grid
    used: bool  # in the power-law fits

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "n_runs": len(self.runs),
            "best_run": self.best_run,
            "best_bpb": self.best_bpb,
            "near_optimal_runs": [run for run, near in zip(self.runs, self.near_optimal) if near],
            "at_edge": self.at_edge,
            "used": self.used,
        }


@dataclass(frozen=True)
class GridFit:
    """Near-optimal regions per budget and the fitted `B_opt(C)`, `eta_opt(C)` (paper Eq. 1)."""

    budgets: tuple[GridBudget, ...]
    batch_size: PowerLawFit
    learning_rate: PowerLawFit
    tolerance: float
    n_bootstrap: int
    n_redrawn: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "budgets": [budget.to_dict() for budget in self.budgets],
            "batch_size": self.batch_size.to_dict(),
            "learning_rate": self.learning_rate.to_dict(),
            "n_bootstrap": self.n_bootstrap,
            "n_redrawn": self.n_redrawn,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class IsoFlopCurve:
    """One IsoFLOP budget: `eval_bpb = c2 x^2 + c1 x + c0` with `x = log10 M`, and its minimum."""

    budget: float
    runs: tuple[str, ...]
    model_scales: tuple[float, ...]
    eval_bpb: tuple[float, ...]
    coefficients: tuple[float, float, float] | None  # (c2, c1, c0); None when the curve could not be fitted
    model_scale_opt: float | None  # M_opt
    tokens_opt: float | None  # D_opt = C / M_opt
    bpb_opt: float | None  # the quadratic's minimum value
    at_edge: bool
    used: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "n_runs": len(self.runs),
            "coefficients_log10": list(self.coefficients) if self.coefficients else None,
            "model_scale_opt": self.model_scale_opt,
            "tokens_opt": self.tokens_opt,
            "bpb_opt": self.bpb_opt,
            "at_edge": self.at_edge,
            "used": self.used,
            "note": self.note,
        }


@dataclass(frozen=True)
class IsoFlopFit:
    """IsoFLOP minima per budget and the fitted `M_opt(C)`, `D_opt(C)` (paper Eq. 4), `a + b`."""

    curves: tuple[IsoFlopCurve, ...]
    model_scale: PowerLawFit
    data_scale: PowerLawFit
    exponent_sum: Estimate
    n_bootstrap: int
    n_redrawn: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "curves": [curve.to_dict() for curve in self.curves],
            "model_scale": self.model_scale.to_dict(),
            "data_scale": self.data_scale.to_dict(),
            "exponent_sum": self.exponent_sum.to_dict(),
            "n_bootstrap": self.n_bootstrap,
            "n_redrawn": self.n_redrawn,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class LossLawFit:
    """Bits-per-byte of the compute-optimal runs against compute (paper Figure 5); `predict(C)` extrapolates."""

    form: str  # "power": L = k C^-alpha; "offset": L = L_inf + k C^-alpha
    coefficient: Estimate  # k
    alpha: Estimate  # the decay exponent (positive when the loss falls with compute)
    irreducible: Estimate | None  # L_inf ("offset" form only)
    budgets: tuple[float, ...]
    bpb: tuple[float, ...]
    n_bootstrap: int
    confidence: float
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)  # (n, 3): k, alpha, L_inf

    @staticmethod
    def _evaluate(params: np.ndarray, compute: np.ndarray | float) -> np.ndarray:
        k, alpha, floor = params[..., 0], params[..., 1], params[..., 2]
        return floor + k * np.power(compute, -alpha)

    def _params(self) -> np.ndarray:
        floor = self.irreducible.value if self.irreducible else 0.0
        return np.array([self.coefficient.value, self.alpha.value, floor])

    def __call__(self, compute: float) -> float:
        return float(self._evaluate(self._params(), float(compute)))

    def predict(self, compute: float) -> Estimate:
        """The law's bits-per-byte at `compute` FLOPs, with the bootstrap spread of the prediction."""
        if not compute > 0 or not math.isfinite(compute):
            raise ValueError(f"compute must be a positive finite number of FLOPs, got {compute!r}")
        values = None if self.replicates is None else self._evaluate(self.replicates, float(compute))
        return Estimate.from_replicates(self(compute), values, self.confidence)

    def band(self, compute: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The percentile band of the bootstrap laws at each `compute` (None without a bootstrap)."""
        if self.replicates is None or len(self.replicates) < 2:
            return None
        values = self._evaluate(self.replicates[:, None, :], np.asarray(compute, float)[None, :])
        tail = 50 * (1 - self.confidence)
        return np.percentile(values, tail, axis=0), np.percentile(values, 100 - tail, axis=0)

    def __str__(self) -> str:
        floor = f"{self.irreducible.value:.4g} + " if self.irreducible else ""
        return f"bpb = {floor}{self.coefficient.value:.4g} * C^-{self.alpha.value:.4f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "law": str(self),
            "coefficient": self.coefficient.to_dict(),
            "alpha": self.alpha.to_dict(),
            "irreducible": self.irreducible.to_dict() if self.irreducible else None,
            "points": [{"budget": c, "bpb": b} for c, b in zip(self.budgets, self.bpb)],
            "n_bootstrap": self.n_bootstrap,
        }


@dataclass(frozen=True)
class PredictionCheck:
    """A `predict` run: the loss the law gave for its compute against the measured one."""

    run: str
    compute: float
    predicted: Estimate
    actual: float

    @property
    def relative_error(self) -> float:
        return (self.predicted.value - self.actual) / self.actual

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "compute": self.compute,
            "predicted_bpb": self.predicted.to_dict(),
            "actual_bpb": self.actual,
            "relative_error": self.relative_error,
        }


@dataclass(frozen=True)
class ScalingFits:
    """Everything `fit_results` could fit from one table; a part it could not fit is in `skipped` with why."""

    n_runs: dict[str, int]
    grid: GridFit | None
    isoflop: IsoFlopFit | None
    loss: LossLawFit | None
    predictions: tuple[PredictionCheck, ...]
    skipped: dict[str, str]
    warnings: tuple[str, ...]
    n_bootstrap: int
    seed: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_runs": dict(self.n_runs),
            "grid": self.grid.to_dict() if self.grid else None,
            "isoflop": self.isoflop.to_dict() if self.isoflop else None,
            "loss": self.loss.to_dict() if self.loss else None,
            "predictions": [check.to_dict() for check in self.predictions],
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
            "bootstrap": {"n": self.n_bootstrap, "seed": self.seed, "confidence": self.confidence},
        }


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    logger.warning(message)


def _by_budget(rows: Iterable[Mapping[str, Any]], kind: str) -> dict[float, list[Mapping[str, Any]]]:
    groups: dict[float, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["kind"] == kind:
            groups.setdefault(float(row["budget"]), []).append(row)
    return dict(sorted(groups.items()))


def _loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(coefficient, exponent) of `y = k x^e` by least squares on logs; needs two distinct x."""
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        raise _Degenerate("a power law needs at least two different compute budgets")
    exponent, intercept = np.polyfit(lx, ly, 1)
    return float(math.exp(intercept)), float(exponent)


def _bootstrap(
    groups: Sequence[Sequence[Any]],
    statistic: Callable[[list[list[Any]]], np.ndarray],
    n_bootstrap: int,
    rng: np.random.Generator,
    what: str,
) -> tuple[np.ndarray | None, int]:
    """Replicates of `statistic` over resampled groups (runs drawn with replacement within each group), and how
    many draws were thrown away as degenerate and redrawn."""
    if n_bootstrap <= 0:
        return None, 0
    replicates, redrawn, draws = [], 0, 0
    while len(replicates) < n_bootstrap:
        draws += 1
        if draws > n_bootstrap * _MAX_REDRAW_FACTOR:
            raise ValueError(
                f"{what}: the bootstrap found only {len(replicates)} usable resamples in {draws - 1} draws; "
                "the budgets have too few runs for an uncertainty (add runs, or use --bootstrap 0)"
            )
        sample = [[group[i] for i in rng.integers(0, len(group), len(group))] for group in groups]
        try:
            replicates.append(statistic(sample))
        except _Degenerate:
            redrawn += 1
    return np.asarray(replicates), redrawn


def _check_bootstrap_args(n_bootstrap: int, confidence: float) -> None:
    if n_bootstrap < 0 or int(n_bootstrap) != n_bootstrap:
        raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _too_few_budgets(what: str, usable: int, warnings: list[str]) -> None:
    if usable < 2:
        detail = f" ({'; '.join(warnings)})" if warnings else ""
        raise ValueError(
            f"{what}: a power law in the compute budget needs at least 2 usable budgets, got {usable}{detail}"
        )
    if usable == 2:
        _warn(
            warnings,
            f"{what}: only 2 usable budgets, so the power law is a line through two points and its uncertainty "
            "covers only the noise within each budget; use 3 or more budgets",
        )


# ----------------------------------------------------------------------------------------------------------------
# (a) batch size / learning-rate grid
# ----------------------------------------------------------------------------------------------------------------


def _near_optimal(bpb: np.ndarray, tolerance: float) -> np.ndarray:
    return bpb <= bpb.min() * (1 + tolerance)


def _grid_points(groups: Sequence[Sequence[Mapping[str, Any]]], tolerance: float):
    budgets, batches, rates = [], [], []
    for rows in groups:
        bpb = np.array([row["eval_bpb"] for row in rows])
        for row, near in zip(rows, _near_optimal(bpb, tolerance)):
            if near:
                budgets.append(row["budget"])
                batches.append(row["batch_size"])
                rates.append(row["learning_rate"])
    return np.array(budgets, float), np.array(batches, float), np.array(rates, float)


def _grid_statistic(groups, tolerance: float) -> np.ndarray:
    budgets, batches, rates = _grid_points(groups, tolerance)
    return np.array([*_loglog_fit(budgets, batches), *_loglog_fit(budgets, rates)])


def fit_grid(
    rows: Iterable[Mapping[str, Any]],
    *,
    tolerance: float = NEAR_OPTIMAL_TOLERANCE,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    exclude_edge: bool = False,
) -> GridFit:
    """Near-optimal regions of the batch/LR grid and the power laws `B_opt(C)`, `eta_opt(C)` (rows of kind grid)."""
    _check_bootstrap_args(n_bootstrap, confidence)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    warnings: list[str] = []
    groups = _by_budget(rows, "grid")
    if not groups:
        raise ValueError("batch/LR grid: the table has no rows of kind 'grid'")
    budgets, used_groups = [], []
    for budget, group in groups.items():
        bpb = np.array([row["eval_bpb"] for row in group])
        batch = np.array([row["batch_size"] for row in group])
        lr = np.array([row["learning_rate"] for row in group])
        best = int(np.argmin(bpb))
        edge = bool(
            (batch.min() < batch.max() and batch[best] in (batch.min(), batch.max()))
            or (lr.min() < lr.max() and lr[best] in (lr.min(), lr.max()))
        )
        used = len(group) >= MIN_GRID_RUNS
        if not used:
            _warn(
                warnings,
                f"batch/LR grid, budget {budget:.3g}: {len(group)} run(s), fewer than {MIN_GRID_RUNS}; left out",
            )
        elif edge:
            _warn(
                warnings,
                f"batch/LR grid, budget {budget:.3g}: the best run ({group[best]['run']}, batch {batch[best]}, "
                f"LR {lr[best]:.3g}) is at the edge of the grid; widen the grid"
                + (" (left out: exclude_edge)" if exclude_edge else ""),
            )
            used = not exclude_edge
        budgets.append(
            GridBudget(
                budget=budget,
                runs=tuple(row["run"] for row in group),
                batch_sizes=tuple(int(b) for b in batch),
                learning_rates=tuple(float(x) for x in lr),
                eval_bpb=tuple(float(x) for x in bpb),
                near_optimal=tuple(bool(x) for x in _near_optimal(bpb, tolerance)),
                best_run=group[best]["run"],
                best_bpb=float(bpb[best]),
                at_edge=edge,
                used=used,
            )
        )
        if used:
            used_groups.append(group)
    _too_few_budgets("batch/LR grid", len(used_groups), warnings)
    try:
        point = _grid_statistic(used_groups, tolerance)
    except _Degenerate as error:
        raise ValueError(f"batch/LR grid: {error}") from None
    rng = np.random.default_rng(seed)
    reps, redrawn = _bootstrap(
        used_groups, lambda sample: _grid_statistic(sample, tolerance), n_bootstrap, rng, "batch/LR grid"
    )
    n_points = len(_grid_points(used_groups, tolerance)[0])

    def law(offset: int, name: str, paper: PowerLaw) -> PowerLawFit:
        return PowerLawFit(
            name=name,
            coefficient=Estimate.from_replicates(point[offset], None if reps is None else reps[:, offset], confidence),
            exponent=Estimate.from_replicates(
                point[offset + 1], None if reps is None else reps[:, offset + 1], confidence
            ),
            n_points=n_points,
            n_budgets=len(used_groups),
            paper=paper,
            replicates=None if reps is None else reps[:, offset : offset + 2],
        )

    return GridFit(
        budgets=tuple(budgets),
        batch_size=law(0, "B_opt", BATCH_SIZE_LAW),
        learning_rate=law(2, "eta_opt", LEARNING_RATE_LAW),
        tolerance=tolerance,
        n_bootstrap=n_bootstrap,
        n_redrawn=redrawn,
        warnings=tuple(warnings),
    )


# ----------------------------------------------------------------------------------------------------------------
# (b) IsoFLOP curves
# ----------------------------------------------------------------------------------------------------------------


def _quadratic_minimum(model_scales: np.ndarray, bpb: np.ndarray) -> tuple[tuple[float, float, float], float, float]:
    """((c2, c1, c0), x_opt, bpb_opt) of the least-squares quadratic in x = log10 M; `_Degenerate` without one."""
    x = np.log10(model_scales)
    if len(np.unique(x)) < MIN_CURVE_POINTS:
        raise _Degenerate(f"fewer than {MIN_CURVE_POINTS} distinct model scales")
    c2, c1, c0 = np.polyfit(x, bpb, 2)
    if not c2 > 0:
        raise _Degenerate("the fitted quadratic is not convex (no minimum)")
    x_opt = -c1 / (2 * c2)
    return (float(c2), float(c1), float(c0)), float(x_opt), float(c0 - c1 * c1 / (4 * c2))


def _isoflop_minima(groups, inside: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(budgets, M_opt, bpb_opt) of each group's quadratic. `inside[i]`: group i's minimum must lie within the
    model scales drawn for it (bootstrap replicates of a curve that is not at an edge: a resample that lost one
    side of the curve extrapolates its vertex and would swamp the spread with a few wild values)."""
    budgets, m_opt, bpb_opt = [], [], []
    for index, rows in enumerate(groups):
        scales = np.array([row["model_scale"] for row in rows])
        _, x_opt, value = _quadratic_minimum(scales, np.array([row["eval_bpb"] for row in rows]))
        if inside is not None and inside[index] and not scales.min() <= 10.0**x_opt <= scales.max():
            raise _Degenerate("the resampled curve's minimum is outside its runs")
        budgets.append(rows[0]["budget"])
        m_opt.append(10.0**x_opt)
        bpb_opt.append(value)
    return np.array(budgets, float), np.array(m_opt), np.array(bpb_opt)


def _isoflop_statistic(groups, inside: Sequence[bool] | None = None) -> np.ndarray:
    budgets, m_opt, _ = _isoflop_minima(groups, inside)
    return np.array([*_loglog_fit(budgets, m_opt), *_loglog_fit(budgets, budgets / m_opt)])


def _isoflop_curves(
    rows: Iterable[Mapping[str, Any]], warnings: list[str], exclude_edge: bool
) -> tuple[list[IsoFlopCurve], list[list[Mapping[str, Any]]]]:
    groups = _by_budget(rows, "isoflop")
    if not groups:
        raise ValueError("IsoFLOP: the table has no rows of kind 'isoflop'")
    curves, used_groups = [], []
    for budget, group in groups.items():
        scales = np.array([row["model_scale"] for row in group])
        bpb = np.array([row["eval_bpb"] for row in group])
        off_budget = [row["run"] for row in group if abs(row["flops"] - budget) > 0.1 * budget]
        if off_budget:
            _warn(
                warnings,
                f"IsoFLOP, budget {budget:.3g}: {len(off_budget)} run(s) trained more than 10% off the budget "
                f"({', '.join(off_budget[:3])}{', ...' if len(off_budget) > 3 else ''}); the curve is not iso-FLOP",
            )
        coefficients = m_opt = d_opt = bpb_opt = None
        edge, note = False, ""
        try:
            coefficients, x_opt, bpb_opt = _quadratic_minimum(scales, bpb)
        except _Degenerate as error:
            note = str(error)
            _warn(warnings, f"IsoFLOP, budget {budget:.3g}: {note} ({len(group)} runs); left out")
        else:
            m_opt, d_opt = 10.0**x_opt, budget / 10.0**x_opt
            best = int(np.argmin(bpb))
            lo, hi = scales.min(), scales.max()
            edge = bool(scales[best] in (lo, hi) or not lo <= m_opt <= hi)
            if edge:
                note = "minimum at the edge of the grid"
                _warn(
                    warnings,
                    f"IsoFLOP, budget {budget:.3g}: the minimum is at the edge of the sampled model scales "
                    f"(M_opt {m_opt:.3g}, best run {group[best]['run']} at M {scales[best]:.3g}, grid "
                    f"{lo:.3g}..{hi:.3g}): the optimum is extrapolated; add shapes beyond it"
                    + (" (left out: exclude_edge)" if exclude_edge else ""),
                )
        used = coefficients is not None and not (edge and exclude_edge)
        curves.append(
            IsoFlopCurve(
                budget=budget,
                runs=tuple(row["run"] for row in group),
                model_scales=tuple(float(x) for x in scales),
                eval_bpb=tuple(float(x) for x in bpb),
                coefficients=coefficients,
                model_scale_opt=m_opt,
                tokens_opt=d_opt,
                bpb_opt=bpb_opt,
                at_edge=edge,
                used=used,
                note=note,
            )
        )
        if used:
            used_groups.append(group)
    return curves, used_groups


def fit_isoflop(
    rows: Iterable[Mapping[str, Any]],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    exclude_edge: bool = False,
) -> IsoFlopFit:
    """IsoFLOP quadratics per budget and the power laws `M_opt(C)`, `D_opt(C)` (rows of kind isoflop)."""
    _check_bootstrap_args(n_bootstrap, confidence)
    warnings: list[str] = []
    curves, used_groups = _isoflop_curves(rows, warnings, exclude_edge)
    _too_few_budgets("IsoFLOP", len(used_groups), warnings)
    point = _isoflop_statistic(used_groups)
    rng = np.random.default_rng(seed)
    inside = [not curve.at_edge for curve in curves if curve.used]
    reps, redrawn = _bootstrap(
        used_groups, lambda sample: _isoflop_statistic(sample, inside), n_bootstrap, rng, "IsoFLOP"
    )
    if n_bootstrap and redrawn > n_bootstrap // 2:
        _warn(
            warnings,
            f"IsoFLOP: {redrawn} bootstrap resamples had a curve without a minimum and were redrawn "
            f"(for {n_bootstrap} kept): the curves have few runs, so the uncertainty is itself uncertain",
        )

    def column(index: int) -> np.ndarray | None:
        return None if reps is None else reps[:, index]

    def law(offset: int, name: str, paper: PowerLaw) -> PowerLawFit:
        return PowerLawFit(
            name=name,
            coefficient=Estimate.from_replicates(point[offset], column(offset), confidence),
            exponent=Estimate.from_replicates(point[offset + 1], column(offset + 1), confidence),
            n_points=len(used_groups),
            n_budgets=len(used_groups),
            paper=paper,
            replicates=None if reps is None else reps[:, offset : offset + 2],
        )

    sums = None if reps is None else reps[:, 1] + reps[:, 3]
    return IsoFlopFit(
        curves=tuple(curves),
        model_scale=law(0, "M_opt", MODEL_SCALE_LAW),
        data_scale=law(2, "D_opt", DATA_SCALE_LAW),
        exponent_sum=Estimate.from_replicates(point[1] + point[3], sums, confidence),
        n_bootstrap=n_bootstrap,
        n_redrawn=redrawn,
        warnings=tuple(warnings),
    )


# ----------------------------------------------------------------------------------------------------------------
# (c) loss against compute
# ----------------------------------------------------------------------------------------------------------------

LOSS_FORMS = ("power", "offset")


def _fit_power(budgets: np.ndarray, bpb: np.ndarray) -> np.ndarray:
    k, exponent = _loglog_fit(budgets, bpb)
    return np.array([k, -exponent, 0.0])


def _fit_offset(budgets: np.ndarray, bpb: np.ndarray) -> np.ndarray:
    """`L = L_inf + k C^-alpha` by least squares in L: for a given L_inf the rest is a log-log line, so the fit is
    a 1-D search over L_inf in [0, min L) (grid, then golden-section refinement)."""
    if len(np.unique(budgets)) < 4:
        raise _Degenerate("the offset form needs at least 4 budgets")
    lc = np.log(budgets)

    def sse(floor: float) -> tuple[float, np.ndarray]:
        excess = bpb - floor
        slope, intercept = np.polyfit(lc, np.log(excess), 1)
        params = np.array([math.exp(intercept), -slope, floor])
        return float(np.sum((LossLawFit._evaluate(params, budgets) - bpb) ** 2)), params

    top = bpb.min() * (1 - 1e-6)
    grid = np.linspace(0.0, top, 65)
    best = int(np.argmin([sse(x)[0] for x in grid]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if sse(a)[0] < sse(b)[0]:
            hi = b
        else:
            lo = a
    return sse((lo + hi) / 2)[1]


def _loss_statistic(groups, form: str, inside: Sequence[bool] | None = None) -> np.ndarray:
    budgets, _, bpb = _isoflop_minima(groups, inside)
    return _fit_power(budgets, bpb) if form == "power" else _fit_offset(budgets, bpb)


def fit_loss_law(
    rows: Iterable[Mapping[str, Any]],
    *,
    form: str = "power",
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    exclude_edge: bool = False,
) -> LossLawFit:
    """The loss-vs-compute law on the IsoFLOP minima (rows of kind isoflop); see the module docstring for the form."""
    _check_bootstrap_args(n_bootstrap, confidence)
    if form not in LOSS_FORMS:
        raise ValueError(f"form must be one of {', '.join(LOSS_FORMS)}, got {form!r}")
    warnings: list[str] = []
    curves, used_groups = _isoflop_curves(rows, warnings, exclude_edge)
    inside = [not curve.at_edge for curve in curves if curve.used]
    if form == "offset" and len(used_groups) < 4:
        raise ValueError(
            f"loss law: the offset form L_inf + k C^-alpha has 3 parameters and needs at least 4 usable budgets, "
            f"got {len(used_groups)}; use form='power'"
        )
    _too_few_budgets("loss law", len(used_groups), warnings)
    budgets, _, bpb = _isoflop_minima(used_groups)
    point = _loss_statistic(used_groups, form)
    rng = np.random.default_rng(seed + 1)  # not the IsoFLOP stream: the two bootstraps are reported separately
    reps, _ = _bootstrap(
        used_groups, lambda sample: _loss_statistic(sample, form, inside), n_bootstrap, rng, "loss law"
    )

    def column(index: int) -> np.ndarray | None:
        return None if reps is None else reps[:, index]

    return LossLawFit(
        form=form,
        coefficient=Estimate.from_replicates(point[0], column(0), confidence),
        alpha=Estimate.from_replicates(point[1], column(1), confidence),
        irreducible=Estimate.from_replicates(point[2], column(2), confidence) if form == "offset" else None,
        budgets=tuple(float(x) for x in budgets),
        bpb=tuple(float(x) for x in bpb),
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        replicates=reps,
    )


# ----------------------------------------------------------------------------------------------------------------
# Everything from one table
# ----------------------------------------------------------------------------------------------------------------


def fit_results(
    rows: Sequence[Mapping[str, Any]],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    loss_form: str = "power",
    exclude_edge: bool = False,
    tolerance: float = NEAR_OPTIMAL_TOLERANCE,
) -> ScalingFits:
    """Every fit the table's rows allow: the grid fit on `grid` rows, the IsoFLOP and loss-law fits on `isoflop`
    rows, and each `predict` row checked against the loss law.

    A part whose rows are missing or degenerate is recorded in `skipped` with the reason (and a warning); a table
    from which nothing at all can be fitted is a `ValueError`.
    """
    _check_bootstrap_args(n_bootstrap, confidence)
    rows = list(rows)
    if not rows:
        raise ValueError("the results table is empty: nothing to fit")
    counts = {kind: sum(row["kind"] == kind for row in rows) for kind in ("grid", "isoflop", "predict")}
    warnings: list[str] = []
    skipped: dict[str, str] = {}
    options = {"n_bootstrap": n_bootstrap, "seed": seed, "confidence": confidence, "exclude_edge": exclude_edge}

    def attempt(name: str, needed: str, fit: Callable[[], Any]):
        if not counts[needed]:
            skipped[name] = f"no rows of kind {needed!r}"
            return None
        try:
            result = fit()
        except ValueError as error:
            skipped[name] = str(error)
            _warn(warnings, f"{name} fit skipped: {error}")
            return None
        for message in getattr(result, "warnings", ()):
            warnings.append(message)
        return result

    grid = attempt("grid", "grid", lambda: fit_grid(rows, tolerance=tolerance, **options))
    isoflop = attempt("isoflop", "isoflop", lambda: fit_isoflop(rows, **options))
    loss = None
    if isoflop is not None:
        loss = attempt("loss", "isoflop", lambda: fit_loss_law(rows, form=loss_form, **options))
    else:
        skipped["loss"] = "needs the IsoFLOP fit"
    predictions = []
    for row in rows:
        if row["kind"] != "predict":
            continue
        if loss is None:
            _warn(warnings, f"predict run {row['run']}: no loss law to compare it with")
            continue
        predictions.append(
            PredictionCheck(
                run=row["run"], compute=row["flops"], predicted=loss.predict(row["flops"]), actual=row["eval_bpb"]
            )
        )
        fitted_max = max(loss.budgets)
        if row["flops"] <= fitted_max:
            _warn(
                warnings,
                f"predict run {row['run']}: its compute {row['flops']:.3g} is not beyond the largest fitted budget "
                f"{fitted_max:.3g}, so it does not test extrapolation",
            )
    if grid is None and isoflop is None:
        raise ValueError("nothing could be fitted: " + "; ".join(f"{name}: {why}" for name, why in skipped.items()))
    return ScalingFits(
        n_runs=counts,
        grid=grid,
        isoflop=isoflop,
        loss=loss,
        predictions=tuple(predictions),
        skipped=skipped,
        warnings=tuple(warnings),
        n_bootstrap=n_bootstrap,
        seed=seed,
        confidence=confidence,
    )
