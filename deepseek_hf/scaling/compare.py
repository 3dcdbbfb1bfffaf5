"""The same IsoFLOP study on several corpora, side by side (DeepSeek LLM Table 4: exponents by data quality).

The paper fitted `M_opt = k_M C^a` and `D_opt = k_D C^b` on three data distributions and found that the better the
data, the more of a larger budget should go to the model: a rises (0.450 early in-house data, 0.524 current, 0.578
OpenWebText2) and b falls. `fit_corpora` refits a and b per corpus (`fit_isoflop`, bootstrap uncertainty; a
corpus whose runs allow no fit is kept with the reason, so the table says so rather than losing the row);
`corpora_table` writes the Markdown table with the paper's rows beside them; `exponent_trend` says, for corpora
listed from lower to higher quality, whether each step raises a by more than its uncertainty.

The results tables come from a sweep with `corpora:` (`<output_dir>/<corpus>/results.jsonl`, listed in
`<output_dir>/corpora.json`) or from any studies of one's own: `deepseek-hf scaling fit A.jsonl B.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fits import DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, Estimate, IsoFlopFit, fit_isoflop
from .results import read_results

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_TABLE_4",
    "CorporaFits",
    "ExponentStep",
    "corpora_table",
    "exponent_trend",
    "fit_corpora",
    "resolve_corpus_results",
]

# DeepSeek LLM Table 4: (approach, a, b); the authors rank OpenWebText2 > current in-house > early in-house data.
PAPER_TABLE_4: tuple[tuple[str, float, float], ...] = (
    ("OpenAI (OpenWebText2)", 0.73, 0.27),
    ("Chinchilla (MassiveText)", 0.49, 0.51),
    ("Ours (Early Data)", 0.450, 0.550),
    ("Ours (Current Data)", 0.524, 0.476),
    ("Ours (OpenWebText2)", 0.578, 0.422),
)
SIGNIFICANCE = 2.0  # a step in a counts when it exceeds this many standard deviations of the difference


def resolve_corpus_results(paths: Sequence[str]) -> dict[str, str]:
    """{corpus name: results table} from command-line arguments: `NAME=PATH`, a `results.jsonl` / `.csv` (named
    after its folder, which a sweep with `corpora:` names after the corpus), or a study folder holding
    `corpora.json` (all its corpora, in the config's order)."""
    named: dict[str, str] = {}
    for argument in paths:
        name, sep, path = argument.partition("=")
        if not sep:
            name, path = "", argument
        folder = Path(path)
        if folder.is_dir():
            listing = folder / "corpora.json"
            if not listing.is_file():
                raise FileNotFoundError(f"{folder} is a folder without corpora.json: give its results.jsonl")
            for corpus, entry in json.loads(listing.read_text(encoding="utf-8"))["corpora"].items():
                _add(named, corpus, str(folder / entry["results"]))
            continue
        _add(named, name or folder.parent.name or str(folder), path)
    return named


def _add(named: dict[str, str], name: str, path: str) -> None:
    if name in named:
        raise ValueError(f"two results tables are named {name!r} ({named[name]}, {path}): name them NAME=PATH")
    named[name] = path


@dataclass(frozen=True)
class CorporaFits:
    """The IsoFLOP fit of every corpus that has one, and why the others have none (in the corpora's order)."""

    fits: dict[str, IsoFlopFit]
    not_fitted: dict[str, str]
    order: tuple[str, ...]
    confidence: float = DEFAULT_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpora": list(self.order),
            "fits": {name: fit.to_dict() for name, fit in self.fits.items()},
            "not_fitted": dict(self.not_fitted),
            "trend": [step.to_dict() for step in exponent_trend(self.fits)],
        }


def fit_corpora(
    tables: Mapping[str, str | Path | Sequence[Mapping[str, Any]]],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    exclude_edge: bool = False,
) -> CorporaFits:
    """The IsoFLOP fit of each corpus's results table (a path or its rows), in the mapping's order (lower quality
    first). A corpus whose runs allow no fit (one usable budget, curves without a minimum) is logged and kept in
    `not_fitted` with the reason; none fitted at all is a `ValueError` naming each corpus's reason. Every corpus
    gets the same bootstrap seed, so the comparison is even."""
    if not tables:
        raise ValueError("no corpora to compare")
    fits, not_fitted = {}, {}
    for name, table in tables.items():
        rows = read_results(table) if isinstance(table, (str, Path)) else list(table)
        try:
            fits[name] = fit_isoflop(
                rows, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence, exclude_edge=exclude_edge
            )
        except ValueError as error:
            not_fitted[name] = str(error)
            logger.warning("corpus %s: no IsoFLOP fit: %s", name, error)
    if not fits:
        raise ValueError("no corpus could be fitted: " + "; ".join(f"{k}: {v}" for k, v in not_fitted.items()))
    return CorporaFits(fits, not_fitted, tuple(tables), confidence)


@dataclass(frozen=True)
class ExponentStep:
    """a of one corpus against the previous one (listed from lower to higher quality)."""

    lower: str
    higher: str
    difference: float  # a(higher) - a(lower)
    std: float | None  # of the difference: the two bootstraps are independent

    @property
    def significant(self) -> bool:
        return self.std is not None and abs(self.difference) > SIGNIFICANCE * self.std

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "higher": self.higher,
            "difference": self.difference,
            "std": self.std,
            "significant": self.significant,
        }

    def __str__(self) -> str:
        if self.std is None:
            return f"{self.lower} -> {self.higher}: a changes by {self.difference:+.3f} (no uncertainty: no bootstrap)"
        verdict = (
            ("rises" if self.difference > 0 else "falls") if self.significant else "does not change significantly"
        )
        return (
            f"{self.lower} -> {self.higher}: a {verdict} ({self.difference:+.3f} ± {self.std:.2g}, "
            f"{abs(self.difference) / self.std if self.std else math.inf:.1f} std)"
        )


def exponent_trend(fits: Mapping[str, IsoFlopFit]) -> list[ExponentStep]:
    """One step per neighbouring pair of corpora (in the mapping's order, lower quality first)."""
    names = list(fits)
    steps = []
    for lower, higher in zip(names, names[1:]):
        a_low, a_high = fits[lower].model_scale.exponent, fits[higher].model_scale.exponent
        std = None if a_low.std is None or a_high.std is None else math.hypot(a_low.std, a_high.std)
        steps.append(ExponentStep(lower, higher, a_high.value - a_low.value, std))
    return steps


def _cell(estimate: Estimate) -> str:
    if estimate.std is None:
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} ± {estimate.std:.2g} [{estimate.low:.3f}, {estimate.high:.3f}]"


def corpora_table(result: CorporaFits) -> str:
    """Markdown: the paper's Table 4 rows, then one row per corpus (a and b, ± bootstrap std and interval; or why it
    has no fit), then the trend of a from one fitted corpus to the next."""
    lines = [
        "| approach | a (M_opt ∝ C^a) | b (D_opt ∝ C^b) | budgets used | runs | source |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {a:.3f} | {b:.3f} | | | paper Table 4 |" for name, a, b in PAPER_TABLE_4]
    for name in result.order:
        if name in result.not_fitted:
            lines.append(f"| {name} | not fitted | not fitted | | | this study: {result.not_fitted[name]} |")
            continue
        fit = result.fits[name]
        n_runs = sum(len(curve.runs) for curve in fit.curves if curve.used)
        edges = sum(curve.at_edge for curve in fit.curves if curve.used)
        note = "this study" + (f", {edges} of its minima at an edge" if edges else "")
        lines.append(
            f"| {name} | {_cell(fit.model_scale.exponent)} | {_cell(fit.data_scale.exponent)} | "
            f"{fit.model_scale.n_budgets} | {n_runs} | {note} |"
        )
    lines.append("")
    lines.append(f"± bootstrap std, [{result.confidence:.0%} interval]; corpora listed from lower to higher quality:")
    lines += [f"- {step}" for step in exponent_trend(result.fits)]
    return "\n".join(lines) + "\n"
