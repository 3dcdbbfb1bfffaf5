"""The loss curve of a pretraining run as a PNG: training (and validation) loss and LR against tokens, schedule phases
marked."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

__all__ = ["plot_loss_curve"]

logger = logging.getLogger(__name__)

_PHASE_LABELS = {1: "end of warm-up", 2: "80% of tokens: LR x 0.316", 3: "90% of tokens: LR x 0.1"}


def plot_loss_curve(
    log_history: Sequence[dict],
    path: str | os.PathLike,
    title: str | None = None,
    phase_starts: dict[int, float] | None = None,
) -> str | None:
    """Plot the `loss` entries of a Trainer `log_history` to `path` (written atomically); None if nothing to plot.
    `eval_loss` entries (the validation loss) are drawn too, as points on the same axis.

    The x axis is `tokens_seen` when logged (as by `PretrainTrainer`), else the step. A vertical line marks the
    start of each LR phase: at `phase_starts[phase]` (an x value) when given, else where the logged `lr_phase`
    changes (to the resolution of the logging interval).
    """
    entries = [e for e in log_history if "loss" in e]
    if not entries:
        logger.warning("No training loss was logged: no loss curve written")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_tokens = all("tokens_seen" in e for e in entries)
    xs = [e["tokens_seen"] if use_tokens else e["step"] for e in entries]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.plot(xs, [e["loss"] for e in entries], color="tab:blue", label="training loss")
    evaluations = [e for e in log_history if "eval_loss" in e and (not use_tokens or "tokens_seen" in e)]
    if evaluations:  # the held-out loss, same units: the gap to the training loss is the generalization gap
        ax.plot(
            [e["tokens_seen"] if use_tokens else e["step"] for e in evaluations],
            [e["eval_loss"] for e in evaluations],
            "o-",
            color="tab:green",
            markersize=3,
            label="validation loss",
        )
    ax.set_xlabel("tokens seen" if use_tokens else "optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    if all("learning_rate" in e for e in entries):
        lr_axis = ax.twinx()
        # the logged LR is the one of the last step of the logging window: draw it from the start of that step
        per_step = (xs[1] - xs[0]) / (entries[1]["step"] - entries[0]["step"]) if len(xs) > 1 else 0
        lr_axis.plot(
            [x - per_step for x in xs],
            [e["learning_rate"] for e in entries],
            color="tab:orange",
            alpha=0.8,
            drawstyle="steps-post",
            label="learning rate",
        )
        lr_axis.set_ylabel("learning rate")
    if phase_starts is None:
        phase_starts, previous_phase, previous_x = {}, None, None
        for x, entry in zip(xs, entries):
            phase = entry.get("lr_phase")
            if previous_phase is not None and phase is not None and phase != previous_phase:
                phase_starts[phase] = previous_x  # the new phase began with the step after the previous entry
            previous_phase = phase if phase is not None else previous_phase
            previous_x = x
    for phase, x in sorted(phase_starts.items()):
        if not xs[0] <= x <= xs[-1]:
            continue
        ax.axvline(x, color="gray", linestyle="--", linewidth=1)
        ax.annotate(
            _PHASE_LABELS.get(phase, f"phase {phase}"),
            (x, 0.02),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="bottom",
            ha="right",
            fontsize=8,
            color="dimgray",
        )
    handles = [h for a in fig.axes for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
    ax.set_title(title or "pretraining loss")
    fig.tight_layout()
    path = os.fspath(path)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
