"""The run report: `report.json` (everything), `report.md` (tables) and `report.png` (plots).

It reads only what the stages saved — datatrove's per-task stats (ledgers and drop reasons), the dedup and
line-dedup summaries and the remix plan — so it costs nothing at scale and is rebuilt identically by any executor.
"""

from __future__ import annotations

import json
import os

from datatrove.io import get_datafolder

from deepseek_hf.data.boilerplate import read_summary as read_line_summary
from deepseek_hf.data.dedup import SUMMARY_FILE as DEDUP_SUMMARY
from deepseek_hf.data.ledger import LEDGER_TYPE, Counts, ledger_counts, stage_stats
from deepseek_hf.data.remix import PLAN_FILE

# Paper Table 1 (DeepSeek LLM, arXiv 2401.02954): dedup rate when deduplicating this many Common Crawl dumps together
PAPER_TABLE1 = {1: 22.2, 2: 46.7, 6: 55.7, 12: 69.9, 16: 75.7, 22: 76.3, 41: 81.6, 91: 89.8}
# reader counters (the unusable lines themselves are counted by the validator, under their reason)
READER_PROBLEMS = ("blank_lines", "invalid_utf8_repaired")


def _read_json(folder, path: str):
    if not folder.exists(path):
        return None
    with folder.open(path) as f:
        return json.load(f)


def _step_rows(layout, stage_names: list[str]) -> tuple[list[dict], dict, dict[str, float]]:
    """One row per checkpoint-to-checkpoint step: documents / characters in and out (total and per dump) and the
    drop reasons of the steps in between. Also returns the reader counters and the task-seconds per stage."""
    rows, reader, seconds = [], {}, {}
    previous: Counts | None = None
    for stage in stage_names:
        steps = stage_stats(layout.logs, stage)
        seconds[stage] = round(sum(s["time"] for s in steps), 2)
        reasons: dict[str, int] = {}
        extra: dict[str, float] = {}
        for step in steps:
            if step["name"].startswith(f"{LEDGER_TYPE}: "):
                counts = ledger_counts([step])
                ((checkpoint, current),) = counts.items()
                if previous is not None and checkpoint != "read":
                    rows.append(_row(checkpoint, stage, previous, current, reasons, extra))
                previous, reasons, extra = current, {}, {}
                continue
            for key, value in step["stats"].items():
                if key.startswith("dropped_"):
                    reasons[key[len("dropped_") :]] = reasons.get(key[len("dropped_") :], 0) + int(value)
                elif key in READER_PROBLEMS:
                    reader[key] = reader.get(key, 0) + int(value)
                elif key in ("lines_removed", "chars_removed", "upsampled_copies") or key.startswith("line-filter-"):
                    extra[key] = extra.get(key, 0) + value
    return rows, reader, seconds


def _row(step: str, stage: str, before: Counts, after: Counts, reasons: dict, extra: dict) -> dict:
    dumps = sorted(set(before.by_dump) | set(after.by_dump))
    return {
        "step": step,
        "stage": stage,
        "documents_in": before.docs,
        "documents_out": after.docs,
        "characters_in": before.chars,
        "characters_out": after.chars,
        "dropped": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "other": extra,
        "per_dump": {
            d: {
                "documents_in": before.by_dump.get(d, {}).get("docs", 0),
                "documents_out": after.by_dump.get(d, {}).get("docs", 0),
                "characters_in": before.by_dump.get(d, {}).get("chars", 0),
                "characters_out": after.by_dump.get(d, {}).get("chars", 0),
            }
            for d in dumps
        },
        "per_source_out": {s: dict(v) for s, v in sorted(after.by_source.items())},
    }


def build_report(layout, stage_names: list[str], config: dict) -> dict:
    work = get_datafolder(layout.work)
    rows, reader, seconds = _step_rows(layout, stage_names)
    read = ledger_counts(stage_stats(layout.logs, "ingest")).get("read", Counts())
    final = rows[-1] if rows else None
    input_problems = dict(reader)
    if rows and rows[0]["step"] == "ingest":
        input_problems.update(rows[0]["dropped"])
    report = {
        "output_dir": layout.root,
        "totals": {
            "documents_in": read.docs,
            "characters_in": read.chars,
            "documents_out": final["documents_out"] if final else 0,
            "characters_out": final["characters_out"] if final else 0,
        },
        "input_problems": input_problems,
        "steps": rows,
        "dedup": _read_json(work, f"dedup/clusters/{DEDUP_SUMMARY}"),
        "line_dedup": None,
        "remix": None,
        "task_seconds": seconds,
        "config": config,
    }
    if work.exists("lines/boilerplate"):
        summary = read_line_summary(f"{layout.work}/lines")
        line_row = next((r for r in rows if r["step"] == "line_dedup"), None)
        if line_row:
            summary.update({k: int(v) for k, v in line_row["other"].items()})
            summary["documents_emptied"] = line_row["dropped"].get("boilerplate_only", 0)
        report["line_dedup"] = summary
    plan = _read_json(work, PLAN_FILE)
    if plan is not None:
        after = next((r for r in rows if r["step"] == "remix"), None)
        unit = plan["unit"]
        report["remix"] = {
            "unit": unit,
            "rates": plan["rates"],
            "before": plan["sizes"],
            "after": {s: v["docs" if unit == "docs" else "chars"] for s, v in after["per_source_out"].items()}
            if after
            else {},
        }
    return report


def _fmt(n) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:,.0f}" if isinstance(n, float) else str(n)


def _pct(part, whole) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def to_markdown(report: dict) -> str:
    t = report["totals"]
    lines = [
        "# Data pipeline report",
        "",
        f"Run folder: `{report['output_dir']}`. Output: `output/*.jsonl.gz` "
        "(read with `deepseek_hf.data.load_output`); dropped documents with their reason: `excluded/<step>/`.",
        "",
        f"**{_fmt(t['documents_in'])} documents ({_fmt(t['characters_in'])} characters) in, "
        f"{_fmt(t['documents_out'])} documents ({_fmt(t['characters_out'])} characters) out.**",
        "",
        "![plots](report.png)",
        "",
        "## Steps",
        "",
        "| step | stage | docs in | docs out | chars in | chars out | dropped (reason: docs) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in report["steps"]:
        reasons = ", ".join(f"{k}: {_fmt(v)}" for k, v in r["dropped"].items()) or "-"
        lines.append(
            f"| {r['step']} | {r['stage']} | {_fmt(r['documents_in'])} | {_fmt(r['documents_out'])} | "
            f"{_fmt(r['characters_in'])} | {_fmt(r['characters_out'])} | {reasons} |"
        )
    if report["steps"]:
        dumps = sorted(report["steps"][0]["per_dump"])
        lines += ["", "## Documents per dump after each step", ""]
        lines.append("| dump | input | " + " | ".join(r["step"] for r in report["steps"]) + " |")
        lines.append("|---|---:|" + "---:|" * len(report["steps"]))
        for d in dumps:
            first = report["steps"][0]["per_dump"][d]["documents_in"]
            cells = [_fmt(r["per_dump"].get(d, {}).get("documents_out", 0)) for r in report["steps"]]
            lines.append(f"| {d} | {_fmt(first)} | " + " | ".join(cells) + " |")
    lines += ["", "## Input problems (counted, never fatal)", ""]
    if report["input_problems"]:
        lines += ["| problem | count |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(report["input_problems"].items())]
    else:
        lines.append("None.")
    dd = report["dedup"]
    if dd:
        cfg = report["config"]["dedup"]
        lines += [
            "",
            f"## Document dedup (scope: {dd['scope']})",
            "",
            f"MinHash: {cfg['ngram']}-unit shingles (a CJK character or a word is a unit), {cfg['num_buckets']} bands"
            f" x {cfg['hashes_per_bucket']} rows, candidates verified at estimated Jaccard >= {cfg['threshold']};"
            f" exact: normalized-text hash. Removed {_fmt(dd['removed'])} of {_fmt(dd['documents'])} documents"
            f" ({_pct(dd['removed'], dd['documents'])}): {_fmt(dd['removed_exact'])} exact,"
            f" {_fmt(dd['removed_near'])} near duplicates.",
            "",
            "Dedup rate vs number of dumps deduplicated together (dumps in label order; cf. paper Table 1:"
            " " + ", ".join(f"{k}: {v}%" for k, v in PAPER_TABLE1.items()) + "):",
            "",
            "| dumps | documents | removed | rate |",
            "|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['dumps']} | {_fmt(r['documents'])} | {_fmt(r['removed'])} | {100 * r['rate']:.1f}% |"
            for r in dd["rate_vs_dumps"]
        ]
        lines += [
            "",
            "| dump | documents | removed (this run) | of which exact | rate if deduplicated alone |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {d['dump']} | {_fmt(d['documents'])} | {_fmt(d['removed'])} | {_fmt(d['removed_exact'])} | "
            f"{100 * d['rate_alone']:.1f}% |"
            for d in dd["dumps"]
        ]
    ld = report["line_dedup"]
    if ld:
        lines += [
            "",
            "## Line-level dedup (boilerplate)",
            "",
            f"{_fmt(ld.get('boilerplate_lines', 0))} distinct lines (of {_fmt(ld.get('distinct_lines', 0))}) occur in"
            f" >= {report['config']['line_dedup']['min_docs']} documents; {_fmt(ld.get('lines_removed', 0))} line"
            f" occurrences ({_fmt(ld.get('chars_removed', 0))} characters) removed,"
            f" {_fmt(ld.get('documents_emptied', 0))} documents left empty and dropped.",
        ]
    rm = report["remix"]
    if rm:
        before_total = sum(rm["before"].values()) or 1
        after_total = sum(rm["after"].values()) or 1
        lines += [
            "",
            f"## Remix (unit: {rm['unit']})",
            "",
            "| source | before | share | rate | after | share |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for s in sorted(set(rm["before"]) | set(rm["after"]), key=lambda s: -rm["before"].get(s, 0)):
            b, a = rm["before"].get(s, 0), rm["after"].get(s, 0)
            lines.append(
                f"| {s} | {_fmt(int(b))} | {_pct(b, before_total)} | {rm['rates'].get(s, 1.0):.3f} | "
                f"{_fmt(int(a))} | {_pct(a, after_total)} |"
            )
    lines += ["", "## Task-seconds per stage", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in report["task_seconds"].items()]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    ax = axes[0]
    dd = report["dedup"]
    if dd and dd["rate_vs_dumps"]:
        ks = [r["dumps"] for r in dd["rate_vs_dumps"]]
        ax.plot(ks, [100 * r["rate"] for r in dd["rate_vs_dumps"]], "o-", label=f"this run ({dd['scope']})")
        ax.plot(list(PAPER_TABLE1), list(PAPER_TABLE1.values()), "s--", color="gray", label="paper Table 1")
        ax.set_xscale("log")
        ax.legend()
    ax.set(title="Dedup rate vs dumps deduplicated together", xlabel="number of dumps", ylabel="documents removed (%)")
    ax = axes[1]
    steps = report["steps"]
    if steps:
        names = ["input"] + [s["step"] for s in steps]
        docs = [steps[0]["documents_in"]] + [s["documents_out"] for s in steps]
        ax.bar(range(len(names)), docs, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set(title="Documents after each step", ylabel="documents")
    ax = axes[2]
    rm = report["remix"]
    if rm:
        sources = sorted(rm["before"], key=lambda s: rm["before"][s])
        before_total, after_total = sum(rm["before"].values()) or 1, sum(rm["after"].values()) or 1
        y = range(len(sources))
        ax.barh([i + 0.2 for i in y], [100 * rm["before"][s] / before_total for s in sources], 0.4, label="before")
        ax.barh([i - 0.2 for i in y], [100 * rm["after"].get(s, 0) / after_total for s in sources], 0.4, label="after")
        ax.set_yticks(list(y), sources, fontsize=7)
        ax.legend()
    ax.set(title="Mixture before / after remix", xlabel=f"share of {rm['unit'] if rm else 'chars'} (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_report(report: dict, root: str) -> None:
    """report.json / .md / .png, each written to a temporary name and renamed."""
    folder = get_datafolder(root)
    for name, write in (
        ("report.json", lambda f: json.dump(report, f, indent=2, default=str)),
        ("report.md", lambda f: f.write(to_markdown(report))),
    ):
        with folder.open(f"{name}.tmp", "w") as f:
            write(f)
        folder.mv(f"{name}.tmp", name)
    png = os.path.join(root, "report.png.tmp")
    if folder.is_local():
        plot(report, png)
        os.replace(png, os.path.join(root, "report.png"))
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            plot(report, os.path.join(tmp, "report.png"))
            folder.put_file(os.path.join(tmp, "report.png"), "report.png")
