"""Our scores beside the published DeepSeek LLM scores, as a Markdown table.

The published numbers come from the paper's evaluation table as DeepSeek released it (`reference/`, with its
SOURCE.md); they were measured with DeepSeek's internal framework on the full test sets, so a difference of a point
or two is expected even for the released weights (the DeepSeek-LLM README says as much for converted models).
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

from .metrics import ALL_METRICS

# benchmark -> (lm-eval task or group, column in more_results.md)
BENCHMARKS: dict[str, tuple[str, str | None]] = {
    "HellaSwag": ("deepseek_hellaswag", "HellaSwag"),
    "PIQA": ("deepseek_piqa", "PIQA"),
    "WinoGrande": ("deepseek_winogrande", "WinoGrande"),
    "RACE-Middle": ("deepseek_race_middle", "RACE-Middle"),
    "RACE-High": ("deepseek_race_high", "RACE-High"),
    "MMLU": ("deepseek_mmlu", "MMLU"),
    "ARC-Easy": ("deepseek_arc_easy", "ARC-Easy"),
    "ARC-Challenge": ("deepseek_arc_challenge", "ARC-Challenge"),
    "OpenBookQA": ("deepseek_openbookqa", "OpenBookQA"),
    "CHID": ("deepseek_chid", "CHID"),
    "C-Eval": ("deepseek_ceval", "CEval"),
    "CMMLU": ("deepseek_cmmlu", "CMMLU"),
    "C3": ("deepseek_c3", None),
    "CCPM": ("deepseek_ccpm", None),
}
HEADLINE = {"ARC-Easy": "acc_uncond", "ARC-Challenge": "acc_uncond", "OpenBookQA": "acc_uncond"}  # else acc_tokens
REFERENCE_MODELS = ("DeepSeek 7B Base", "DeepSeek 67B Base")
# Not in more_results.md: the paper's Table 5 (arXiv 2401.02954v1).
TABLE5_EXTRA = {
    "C3": {"DeepSeek 7B Base": 65.4, "DeepSeek 67B Base": 75.3},
    "CCPM": {"DeepSeek 7B Base": 76.9, "DeepSeek 67B Base": 88.5},
}


def published_scores() -> dict[str, dict[str, float]]:
    """benchmark -> model -> published score (percent), for the two DeepSeek base models."""
    text = resources.files("deepseek_hf.eval").joinpath("reference/deepseek_llm_more_results.md").read_text("utf-8")
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.split("# Math evaluation")[0].splitlines()
        if line.startswith("|")
    ]
    header, body = rows[0], rows[2:]
    by_model = {row[0]: dict(zip(header, row)) for row in body if row and row[0]}
    scores: dict[str, dict[str, float]] = {}
    for benchmark, (_, column) in BENCHMARKS.items():
        if column is None:
            scores[benchmark] = dict(TABLE5_EXTRA[benchmark])
        else:
            scores[benchmark] = {model: float(by_model[model][column]) for model in REFERENCE_MODELS}
    return scores


def _metric(entry: dict[str, Any], name: str) -> float | None:
    value = entry.get(f"{name},none", entry.get(name))
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def score_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per benchmark present in lm-eval's `results`, in the paper's order: a task, a group, or some subject
    tasks of MMLU / CMMLU / C-Eval run without their group (then averaged by size and labelled with their number)."""
    from .subjects import SUBJECTS

    entries = {**results.get("results", {}), **results.get("groups", {})}
    sizes = results.get("n-samples", {})
    rows = []
    for benchmark, (task, _) in BENCHMARKS.items():
        prefix = task.removeprefix("deepseek_")
        subjects = [f"{task}_{subject}" for subject in SUBJECTS.get(prefix, ())]
        if task in entries:
            members = [name for name in results.get("group_subtasks", {}).get(task, [task]) if name in sizes]
            label, metrics = benchmark, {name: _metric(entries[task], name) for name in ALL_METRICS}
        elif any(name in entries for name in subjects):
            members = [name for name in subjects if name in entries and name in sizes]
            label = f"{benchmark} ({len(members)} of {len(subjects)} subjects)"
            metrics = {name: _weighted_mean(entries, sizes, members, name) for name in ALL_METRICS}
        else:
            continue
        rows.append(
            {
                "benchmark": benchmark,
                "label": label,
                "task": task,
                "n": sum(sizes[name]["effective"] for name in members) if members else None,
                "n_original": sum(sizes[name]["original"] for name in members) if members else None,
                "headline": HEADLINE.get(benchmark, "acc_tokens"),
                "metrics": metrics,
            }
        )
    return rows


def _weighted_mean(entries: dict, sizes: dict, tasks: list[str], metric: str) -> float | None:
    values = [(_metric(entries[task], metric), sizes[task]["effective"]) for task in tasks]
    if not values or any(value is None for value, _ in values):
        return None
    return sum(value * n for value, n in values) / sum(n for _, n in values)


def markdown_table(results: dict[str, Any], label: str = "ours") -> str:
    """Our headline score (the paper's normalization) beside DeepSeek 7B / 67B Base, then every normalization."""
    published = published_scores()
    head = ["benchmark", "items", "paper's metric", label, *REFERENCE_MODELS, *ALL_METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}"

    for row in score_rows(results):
        reference = published[row["benchmark"]]
        items = "–" if row["n"] is None else str(row["n"])
        if row["n"] is not None and row["n_original"] and row["n_original"] > row["n"]:
            items += f" of {row['n_original']}"  # --limit
        cells = [
            row["label"],
            items,
            row["headline"],
            pct(row["metrics"][row["headline"]]),
            *(f"{reference[model]:.1f}" for model in REFERENCE_MODELS),
            *(pct(row["metrics"][name]) for name in ALL_METRICS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 2:
        raise ValueError(
            "no deepseek_* benchmark in these results (expected tasks or groups named like "
            f"{', '.join(task for task, _ in list(BENCHMARKS.values())[:3])}, ...)."
        )
    return "\n".join(lines) + "\n"
