"""PNG figures of a scaling study, like Figures 2-5 of DeepSeek LLM (arXiv 2401.02954), from `fit_results`.

| file | paper | what |
|---|---|---|
| `grid_heatmap.png` | Fig. 2 | per budget, eval bits-per-byte over batch size x learning rate; near-optimal cells outlined |
| `grid_fits.png` | Fig. 3 | near-optimal batch sizes and LRs against C with the fitted laws (and the paper's, dotted) |
| `isoflop.png` | Fig. 4a | IsoFLOP curves: bits-per-byte against M per budget, the fitted quadratics and their minima |
| `optimal_allocation.png` | Fig. 4b-c | M_opt and D_opt against C with the fitted laws, bootstrap bands and the paper's laws |
| `loss_law.png` | Fig. 5 | bits-per-byte of the compute-optimal runs against C, the law, and predicted vs actual `predict` runs |
| `corpora_allocation.png` | Table 4 | M_opt and D_opt against C for each corpus of a study on several corpora, each with its fit |
| `isoflop_<corpus>.png` | Fig. 4a | the IsoFLOP curves of each of those corpora |
| `schedule_curves.png` | Fig. 1b | training loss (and LR) against tokens of every multi-step schedule of a `schedule` study |

Figures are drawn on `matplotlib.figure.Figure` objects (the Agg canvas, no pyplot state, no display needed) and
written atomically (a temporary file renamed into place). A figure whose fit is missing is skipped and logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .fits import GridFit, IsoFlopFit, LossLawFit, PowerLawFit, ScalingFits

__all__ = [
    "PLOT_FILES",
    "figure_grid_fits",
    "figure_grid_heatmap",
    "figure_isoflop",
    "figure_loss_law",
    "figure_corpora_allocation",
    "figure_optimal_allocation",
    "figure_schedule_curves",
    "plot_corpora",
    "plot_results",
    "plot_schedules",
    "result_figures",
]

logger = logging.getLogger(__name__)

PLOT_FILES = ("grid_heatmap.png", "grid_fits.png", "isoflop.png", "optimal_allocation.png", "loss_law.png")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")  # laid out once, when saved


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _span(values: Sequence[float], extend: float = 1.0) -> np.ndarray:
    lo, hi = min(values), max(values) * extend
    return np.geomspace(lo / 1.3, hi * 1.3, 100)


def figure_grid_heatmap(grid: GridFit):
    """Fig. 2: one panel per budget, bits-per-byte over the batch x LR grid; near-optimal cells outlined in black,
    the best run starred."""
    from matplotlib.patches import Rectangle

    n = len(grid.budgets)
    fig = _figure(4.4 * n, 3.8)
    for index, budget in enumerate(grid.budgets):
        ax = fig.add_subplot(1, n, index + 1)
        batches = sorted(set(budget.batch_sizes))
        rates = sorted(set(budget.learning_rates))
        cells = np.full((len(rates), len(batches)), np.nan)
        for batch, rate, bpb in zip(budget.batch_sizes, budget.learning_rates, budget.eval_bpb):
            i, j = rates.index(rate), batches.index(batch)
            cells[i, j] = bpb if np.isnan(cells[i, j]) else min(cells[i, j], bpb)  # repeated cell: its best
        image = ax.imshow(cells, origin="lower", aspect="auto", cmap="viridis_r")
        fig.colorbar(image, ax=ax, label="eval bits per byte")
        for batch, rate, near in zip(budget.batch_sizes, budget.learning_rates, budget.near_optimal):
            if near:
                i, j = rates.index(rate), batches.index(batch)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.8))
        best = budget.runs.index(budget.best_run)
        ax.plot(
            batches.index(budget.batch_sizes[best]),
            rates.index(budget.learning_rates[best]),
            marker="*",
            color="red",
            markersize=12,
        )
        ax.set_xticks(range(len(batches)), [f"{b:.3g}" for b in batches], rotation=45, fontsize=7)
        ax.set_yticks(range(len(rates)), [f"{r:.2g}" for r in rates], fontsize=7)
        ax.set_xlabel("batch size (tokens)")
        ax.set_ylabel("learning rate")
        flag = " (edge!)" if budget.at_edge else ""
        ax.set_title(f"C = {budget.budget:.2g} FLOPs{flag}", fontsize=9)
    fig.suptitle(f"batch/LR grid: near-optimal = within {grid.tolerance:.2%} of the best (outlined)", fontsize=10)
    return fig


def _law_panel(
    ax, fit: PowerLawFit, xs, ys, extend_to: float | None = None, ylabel: str = "", points: str = "IsoFLOP minima"
) -> None:
    grid = _span(xs, (extend_to / max(xs)) if extend_to and extend_to > max(xs) else 1.0)
    ax.scatter(xs, ys, color="gray", alpha=0.7, s=18, label=points, zorder=3)
    ax.plot(grid, fit.law.coefficient * grid**fit.law.exponent, color="tab:blue", label=f"fit: {fit.law}")
    band = fit.band(grid)
    if band is not None:
        ax.fill_between(grid, *band, color="tab:blue", alpha=0.2, label="bootstrap interval")
    if fit.paper is not None:
        ax.plot(
            grid, fit.paper.coefficient * grid**fit.paper.exponent, ":", color="black", label=f"paper: {fit.paper}"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute budget C (FLOPs)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left" if fit.law.exponent > 0 else "upper right")


def figure_grid_fits(grid: GridFit):
    """Fig. 3: the near-optimal batch sizes and learning rates of every used budget against C, with the fits."""
    fig = _figure(10, 4)
    points = [
        (budget.budget, batch, rate)
        for budget in grid.budgets
        if budget.used
        for batch, rate, near in zip(budget.batch_sizes, budget.learning_rates, budget.near_optimal)
        if near
    ]
    cs = [p[0] for p in points]
    _law_panel(
        fig.add_subplot(1, 2, 1),
        grid.batch_size,
        cs,
        [p[1] for p in points],
        ylabel="B_opt (tokens)",
        points="near-optimal runs",
    )
    _law_panel(
        fig.add_subplot(1, 2, 2),
        grid.learning_rate,
        cs,
        [p[2] for p in points],
        ylabel="eta_opt",
        points="near-optimal runs",
    )
    fig.suptitle("near-optimal hyperparameters against compute", fontsize=10)
    return fig


def figure_isoflop(isoflop: IsoFlopFit):
    """Fig. 4a: bits-per-byte against M for each budget, the fitted quadratic in log M and its minimum."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    colors = [f"C{i % 10}" for i in range(len(isoflop.curves))]
    for color, curve in zip(colors, isoflop.curves):
        ax.scatter(curve.model_scales, curve.eval_bpb, color=color, s=18, label=f"C = {curve.budget:.2g}")
        if curve.coefficients is None:
            continue
        grid = np.geomspace(min(curve.model_scales) / 1.2, max(curve.model_scales) * 1.2, 100)
        ax.plot(grid, np.polyval(curve.coefficients, np.log10(grid)), color=color, alpha=0.8)
        ax.plot(
            curve.model_scale_opt,
            curve.bpb_opt,
            marker="x" if curve.at_edge else "o",
            markersize=9,
            markerfacecolor="none",
            color="black",
        )
    ax.set_xscale("log")
    ax.set_xlabel("model scale M (non-embedding FLOPs/token)")
    ax.set_ylabel("eval bits per byte")
    ax.set_title("IsoFLOP curves (circle: minimum; cross: minimum at the grid's edge)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def figure_optimal_allocation(isoflop: IsoFlopFit, extend_to: float | None = None):
    """Fig. 4b-c: the IsoFLOP minima M_opt and D_opt against C, with the fitted power laws."""
    fig = _figure(10, 4)
    used = [curve for curve in isoflop.curves if curve.used]
    cs = [curve.budget for curve in used]
    _law_panel(
        fig.add_subplot(1, 2, 1),
        isoflop.model_scale,
        cs,
        [curve.model_scale_opt for curve in used],
        extend_to,
        "M_opt (FLOPs/token)",
    )
    _law_panel(
        fig.add_subplot(1, 2, 2),
        isoflop.data_scale,
        cs,
        [curve.tokens_opt for curve in used],
        extend_to,
        "D_opt (tokens)",
    )
    fig.suptitle(
        f"compute-optimal allocation: a = {isoflop.model_scale.exponent.value:.3f}, "
        f"b = {isoflop.data_scale.exponent.value:.3f}",
        fontsize=10,
    )
    return fig


def figure_loss_law(loss: LossLawFit, predictions: Sequence[Any] = ()):
    """Fig. 5: bits-per-byte of the compute-optimal runs against C, the law extended past them, and each `predict`
    run's measured loss (star) beside the predicted one (with its interval)."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    top = max([*loss.budgets, *(p.compute for p in predictions)])
    grid = np.geomspace(min(loss.budgets) / 1.5, top * 1.5, 200)
    ax.scatter(loss.budgets, loss.bpb, color="gray", s=24, label="IsoFLOP minima (fitted)", zorder=3)
    ax.plot(grid, [loss(c) for c in grid], "--", color="tab:blue", label=f"fit: {loss}")
    band = loss.band(grid)
    if band is not None:
        ax.fill_between(grid, *band, color="tab:blue", alpha=0.2, label="bootstrap interval")
    for index, check in enumerate(predictions):
        p = check.predicted
        yerr = None if p.std is None else [[p.value - p.low], [p.high - p.value]]
        ax.errorbar(
            check.compute,
            p.value,
            yerr=yerr,
            fmt="o",
            color="tab:orange",
            capsize=4,
            label="predicted" if index == 0 else None,
        )
        ax.plot(
            check.compute,
            check.actual,
            "*",
            color="tab:red",
            markersize=14,
            label="measured" if index == 0 else None,
        )
        ax.annotate(
            f"{check.run}: {check.relative_error:+.2%}",
            (check.compute, check.actual),
            fontsize=7,
            xytext=(6, 6),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute budget C (FLOPs)")
    ax.set_ylabel("eval bits per byte")
    ax.set_title("loss against compute of the compute-optimal runs", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")  # "best" would search every point
    return fig


def result_figures(fits: ScalingFits) -> dict[str, Any]:
    """{file name: matplotlib Figure} for every figure the fits allow; missing parts are logged."""
    figures: dict[str, Any] = {}
    if fits.grid is not None:
        figures["grid_heatmap.png"] = figure_grid_heatmap(fits.grid)
        figures["grid_fits.png"] = figure_grid_fits(fits.grid)
    else:
        logger.warning("no grid fit (%s): grid_heatmap.png and grid_fits.png not drawn", fits.skipped.get("grid"))
    if fits.isoflop is not None:
        extend = max((p.compute for p in fits.predictions), default=None)
        figures["isoflop.png"] = figure_isoflop(fits.isoflop)
        figures["optimal_allocation.png"] = figure_optimal_allocation(fits.isoflop, extend)
    else:
        logger.warning(
            "no IsoFLOP fit (%s): isoflop.png and optimal_allocation.png not drawn", fits.skipped.get("isoflop")
        )
    if fits.loss is not None:
        figures["loss_law.png"] = figure_loss_law(fits.loss, fits.predictions)
    else:
        logger.warning("no loss law (%s): loss_law.png not drawn", fits.skipped.get("loss"))
    return figures


def plot_results(fits: ScalingFits, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Every figure the fits allow as a PNG in `output_dir` (each written atomically); returns {file name: path}."""
    output_dir = Path(output_dir)
    return {name: _save(fig, output_dir / name) for name, fig in result_figures(fits).items()}


def figure_corpora_allocation(fits: Mapping[str, IsoFlopFit]):
    """Table 4 as a figure: M_opt and D_opt against C for every corpus (minima as points, a cross when at the edge of
    their curve), each corpus's fitted law and bootstrap band in its own colour; the slopes are the a and b."""
    fig = _figure(10, 4)
    panels = [(fig.add_subplot(1, 2, i + 1), part) for i, part in enumerate(("model_scale", "data_scale"))]
    for index, (name, fit) in enumerate(fits.items()):
        color = f"C{index % 10}"
        used = [curve for curve in fit.curves if curve.used]
        cs = np.array([curve.budget for curve in used])
        grid = _span(cs)
        for ax, part in panels:
            law = getattr(fit, part)
            ys = [curve.model_scale_opt if part == "model_scale" else curve.tokens_opt for curve in used]
            for c, y, curve in zip(cs, ys, used):
                ax.plot(c, y, "x" if curve.at_edge else "o", color=color, markersize=6)
            symbol = "a" if part == "model_scale" else "b"
            ax.plot(
                grid,
                law.law.coefficient * grid**law.law.exponent,
                color=color,
                label=f"{name}: {symbol} = {law.exponent.value:.3f}",
            )
            band = law.band(grid)
            if band is not None:
                ax.fill_between(grid, *band, color=color, alpha=0.15)
    for ax, part in panels:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute budget C (FLOPs)")
        ax.set_ylabel("M_opt (FLOPs/token)" if part == "model_scale" else "D_opt (tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("compute-optimal allocation by corpus (cross: minimum at the edge of its curve)", fontsize=10)
    return fig


def plot_corpora(fits: Mapping[str, IsoFlopFit], output_dir: str | os.PathLike) -> dict[str, Path]:
    """`corpora_allocation.png` and one `isoflop_<corpus>.png` per corpus in `output_dir`; {file name: path}."""
    output_dir = Path(output_dir)
    figures = {"corpora_allocation.png": figure_corpora_allocation(fits)}
    figures.update({f"isoflop_{name}.png": figure_isoflop(fit) for name, fit in fits.items()})
    return {name: _save(fig, output_dir / name) for name, fig in figures.items()}


def figure_schedule_curves(rows: Sequence[Mapping[str, Any]]):
    """Fig. 1b: the training loss of every `schedule` row against tokens (one line per schedule, one column per
    budget): the whole run, then the last 40% of it, where the schedules differ, then the learning rate. The legend
    gives each schedule's stage proportions and final eval bpb."""
    from .shapes import schedule_label

    rows = [row for row in rows if row["kind"] == "schedule"]
    if not rows:
        raise ValueError("the results table has no rows of kind 'schedule' (a `kind: schedule` sweep writes them)")
    budgets = sorted({row["budget"] for row in rows})
    using_tokens = all(t is not None for r in rows for t in r["extra"]["loss_curve"]["tokens"])
    fig = _figure(5.5 * len(budgets), 8)
    for column, budget in enumerate(budgets):
        axes = [fig.add_subplot(3, len(budgets), row * len(budgets) + column + 1) for row in range(3)]
        group = [row for row in rows if row["budget"] == budget]
        start = 0.6 * max(max(_curve_x(row, using_tokens)) for row in group)
        for index, row in enumerate(group):
            curve, color = row["extra"]["loss_curve"], f"C{index % 10}"
            xs = np.array(_curve_x(row, using_tokens), float)
            label = f"{schedule_label(row['extra']['schedule']['milestones'])} (eval {row['eval_bpb']:.3f} bpb)"
            axes[0].plot(xs, curve["loss"], color=color, label=label, linewidth=1.2)
            late = xs >= start
            axes[1].plot(xs[late], np.array(curve["loss"])[late], color=color, linewidth=1.2)
            if all(lr is not None for lr in curve["learning_rate"]):
                axes[2].plot(xs, curve["learning_rate"], color=color, drawstyle="steps-post")
        axes[0].set_title(f"C = {budget:.2g} FLOPs, L{group[0]['n_layer']} d{group[0]['d_model']}", fontsize=9)
        axes[0].legend(fontsize=7, loc="upper right", title="multi-step stages (%)", title_fontsize=7)
        axes[1].set_title("the last 40% of the tokens", fontsize=8)
        for ax, label in zip(axes, ("training loss (nats/token)", "training loss", "learning rate")):
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[2].set_xlabel("tokens" if using_tokens else "optimizer step")
    fig.suptitle("multi-step schedules with different stage proportions (paper Figure 1b)", fontsize=10)
    return fig


def _curve_x(row: Mapping[str, Any], using_tokens: bool) -> list[float]:
    curve = row["extra"]["loss_curve"]
    return curve["tokens"] if using_tokens else curve["step"]


def plot_schedules(rows: Sequence[Mapping[str, Any]], output_dir: str | os.PathLike) -> Path:
    """`schedule_curves.png` in `output_dir` from the `schedule` rows of a results table."""
    return _save(figure_schedule_curves(rows), Path(output_dir) / "schedule_curves.png")
