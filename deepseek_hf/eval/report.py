"""Our scores beside the published DeepSeek LLM scores, as Markdown tables: one run (`markdown_table`), or several
runs side by side with the settings each was run with, e.g. a base model, its chat model, and the chat model with a
system prompt (`comparison_table`).

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
# The comparison of base and chat runs: the chat models' scores are 0-shot (P §5.1, Table 6).
CHAT_REFERENCE_MODELS = ("DeepSeek 7B Base", "DeepSeek 7B Chat", "DeepSeek 67B Base", "DeepSeek 67B Chat")
# Not in more_results.md: the paper's Table 5 (arXiv 2401.02954v1).
TABLE5_EXTRA = {
    "C3": {"DeepSeek 7B Base": 65.4, "DeepSeek 67B Base": 75.3},
    "CCPM": {"DeepSeek 7B Base": 76.9, "DeepSeek 67B Base": 88.5},
}


def published_scores(models: tuple[str, ...] = REFERENCE_MODELS) -> dict[str, dict[str, float]]:
    """benchmark -> model -> published score (percent) of `models` (rows of more_results.md); C3 and CCPM have the
    base models' only (Table 5)."""
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
            scores[benchmark] = {
                model: TABLE5_EXTRA[benchmark][model] for model in models if model in TABLE5_EXTRA[benchmark]
            }
        else:
            scores[benchmark] = {model: float(by_model[model][column]) for model in models}
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

    for row in score_rows(results):
        reference = published[row["benchmark"]]
        items = "–" if row["n"] is None else str(row["n"])
        if row["n"] is not None and row["n_original"] and row["n_original"] > row["n"]:
            items += f" of {row['n_original']}"  # --limit
        cells = [
            row["label"],
            items,
            row["headline"],
            _pct(row["metrics"][row["headline"]]),
            *(f"{reference[model]:.1f}" for model in REFERENCE_MODELS),
            *(_pct(row["metrics"][name]) for name in ALL_METRICS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 2:
        raise ValueError(
            "no deepseek_* benchmark in these results (expected tasks or groups named like "
            f"{', '.join(task for task, _ in list(BENCHMARKS.values())[:3])}, ...)."
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Several runs side by side: base vs chat, with vs without a system prompt
# ----------------------------------------------------------------------------------------------------------------
NOT_RECORDED = "not recorded"


def run_settings(results: dict[str, Any]) -> dict[str, Any]:
    """How a run was made, from the keys lm-eval's `EvaluationTracker` adds to its results file (and `deepseek-hf eval
    run` to results.json): the model, whether a chat template was applied (None: the file does not say), the system
    instruction, whether few-shot examples were turns, and the shots of each task (`n-shot`)."""
    config = results.get("config", {})
    recorded = "chat_template" in results
    return {
        "model": results.get("model_name") or config.get("model_args") or config.get("model"),
        "chat_template": bool(results.get("chat_template")) if recorded else None,
        "chat_template_sha": results.get("chat_template_sha"),
        "system_instruction": results.get("system_instruction"),
        "fewshot_as_multiturn": results.get("fewshot_as_multiturn"),
        "shots": dict(results.get("n-shot", {})),
    }


def default_label(settings: dict[str, Any]) -> str:
    """`base`, `chat` or `chat+system`, from the settings of a run."""
    if not settings["chat_template"]:
        return "base" if settings["chat_template"] is not None else "run"
    return "chat+system" if settings["system_instruction"] else "chat"


def comparison_table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """One Markdown table of several runs: benchmarks as rows, each run's headline score (the paper's normalization)
    as a column, DeepSeek 7B / 67B Base and Chat beside; then one row per run with its settings."""
    if not runs:
        raise ValueError("no runs to compare")
    rows_of = [{row["benchmark"]: row for row in score_rows(results)} for _, results in runs]
    benchmarks = [name for name in BENCHMARKS if any(name in rows for rows in rows_of)]
    if not benchmarks:
        raise ValueError(
            "no deepseek_* benchmark in these results (expected tasks or groups named like "
            f"{', '.join(task for task, _ in list(BENCHMARKS.values())[:3])}, ...)."
        )
    published = published_scores(CHAT_REFERENCE_MODELS)
    labels = [label for label, _ in runs]
    head = ["benchmark", "paper's metric", *labels, *CHAT_REFERENCE_MODELS]
    lines = [_markdown_row(head), "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for benchmark in benchmarks:
        present = [rows[benchmark] for rows in rows_of if benchmark in rows]
        headline = present[0]["headline"]
        cells = [_pct(rows[benchmark]["metrics"][headline]) if benchmark in rows else "–" for rows in rows_of]
        reference = published[benchmark]
        references = [f"{reference[model]:.1f}" if model in reference else "–" for model in CHAT_REFERENCE_MODELS]
        lines.append(_markdown_row([present[0]["label"], headline, *cells, *references]))

    lines += ["", _markdown_row(["run", "model", "chat template", "system prompt", "few-shot", "items"])]
    lines.append("|" + "|".join(["---"] * 5 + ["---:"]) + "|")
    for (label, results), rows in zip(runs, rows_of):
        settings = run_settings(results)
        lines.append(
            _markdown_row(
                [
                    label,
                    str(settings["model"] or "–"),
                    _chat_cell(settings),
                    _system_cell(settings),
                    _fewshot_cell(settings, rows.values()),
                    str(sum(row["n"] or 0 for row in rows.values())),
                ]
            )
        )
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", "\\n") for cell in cells) + " |"


def _chat_cell(settings: dict[str, Any]) -> str:
    if settings["chat_template"] is None:
        return NOT_RECORDED
    if not settings["chat_template"]:
        return "no"
    sha = settings["chat_template_sha"]
    return f"yes ({sha[:8]})" if sha else "yes"


def _system_cell(settings: dict[str, Any], width: int = 64) -> str:
    text = settings["system_instruction"]
    if not text:
        return NOT_RECORDED if settings["chat_template"] is None else "–"
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _fewshot_cell(settings: dict[str, Any], rows) -> str:
    """The shots of each benchmark (one number when all agree) and, in a chat run with shots, how they were given."""
    shots: dict[str, set[int]] = {}
    for row in rows:
        task = row["task"]
        values = {n for name, n in settings["shots"].items() if name == task or name.startswith(f"{task}_")}
        shots[row["benchmark"]] = values
    distinct = set().union(*shots.values()) if shots else set()
    if not distinct:
        return "–"
    if len(distinct) == 1:
        text = f"{distinct.pop()}-shot"
    else:
        text = ", ".join(f"{name} {'/'.join(map(str, sorted(v)))}" for name, v in shots.items() if v)
    if settings["chat_template"] and any(n > 0 for values in shots.values() for n in values):
        text += ", as turns" if settings["fewshot_as_multiturn"] else ", in one user turn"
    return text
