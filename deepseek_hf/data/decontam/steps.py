"""The datatrove steps of decontamination: the filter that drops or flags documents hitting benchmark items, and the
report of which items were hit by which documents.

Each task of the filter writes what it found to `<hits_folder>/<rank>.json` when its shard is done (under a
temporary name, then renamed: a killed task leaves no file, and its re-run writes it); `DecontaminationReport`, in a
one-task stage after it, merges them into `decontamination.{json,md}`.
"""

from __future__ import annotations

import json

from datatrove.data import Document
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from deepseek_hf.data.decontam.index import NGramIndex, Thresholds
from deepseek_hf.data.output import output_record

CONTAMINATION_KEY = "contamination"
"""`Document.metadata` key: the ids of the items a document hits (flag mode: on every document, empty if clean)."""
REPORT_FILES = ("decontamination.json", "decontamination.md")


class DecontaminationFilter(BaseFilter):
    """Drops (`mode="drop"`) or marks (`mode="flag"`) documents that share long n-grams with benchmark items
    (paper section 4: SFT data overlapping C-Eval val / CMMLU test was removed); see `decontam.index`."""

    name = "🧪 Benchmark decontamination"

    def __init__(
        self,
        index: NGramIndex | DataFolderLike,
        thresholds: Thresholds | None = None,
        mode: str = "drop",
        hits_folder: DataFolderLike | None = None,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 256,
    ):
        super().__init__(exclusion_writer, batch_size=batch_size)
        if mode not in ("drop", "flag"):
            raise ValueError(f"mode must be 'drop' or 'flag', got {mode!r}")
        self._index = index if isinstance(index, NGramIndex) else None
        self.index_folder = None if self._index else index
        self.thresholds, self.mode, self.hits_folder = thresholds or Thresholds(), mode, hits_folder
        self.documents, self.hits = 0, []

    @property
    def index(self) -> NGramIndex:
        if self._index is None:
            self._index = NGramIndex.load(self.index_folder)
        return self._index

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        results = []
        for doc, hits in zip(batch, self.index.match([doc.text for doc in batch], self.thresholds)):
            self.documents += 1
            ids = [self.index.items[hit.item]["id"] for hit in hits]
            if hits or self.mode == "flag":
                doc.metadata[CONTAMINATION_KEY] = ids
            if hits:
                self.hits.append({"document": str(doc.id), "items": [[h.item, h.matched, h.total] for h in hits]})
                for benchmark in dict.fromkeys(self.index.items[hit.item]["benchmark"] for hit in hits):
                    self.stat_update(f"contaminated_{benchmark}")
            results.append((False, "contaminated") if hits and self.mode == "drop" else True)
        return results

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.documents, self.hits = 0, []  # per run: a step called directly may run twice
        yield from super().run(data, rank, world_size)
        if self.hits_folder is not None:
            folder = get_datafolder(self.hits_folder)
            folder.makedirs("", exist_ok=True)
            with folder.open(f"{rank:05d}.json.tmp", "w") as f:
                json.dump({"rank": rank, "documents": self.documents, "hits": self.hits}, f, ensure_ascii=False)
            folder.mv(f"{rank:05d}.json.tmp", f"{rank:05d}.json")

    def __getstate__(self):  # workers load the index from its folder; never pickle a loaded copy
        return {**self.__dict__, "_index": None} if self.index_folder is not None else self.__dict__


def flagged_output_record(writer, document) -> dict:
    """`output_record` plus the contamination ids (flag mode: every record has the key, so the schema is fixed)."""
    record = output_record(writer, document)
    record["metadata"][CONTAMINATION_KEY] = list(document.metadata.get(CONTAMINATION_KEY, []))
    return record


def build_report(index: NGramIndex, parts: list[dict], settings: dict, **extra) -> dict:
    """Per benchmark: items indexed, items without any n-gram, items hit, and each hit item's documents (the first
    `settings["max_listed_documents"]`, with their count); `parts` are the filter tasks' `{documents, hits}`."""
    max_listed = settings.get("max_listed_documents", 100)
    by_item: dict[int, list[dict]] = {}
    documents_hit = set()
    for part in parts:
        for record in part["hits"]:
            documents_hit.add(record["document"])
            for item, matched, total in record["items"]:
                by_item.setdefault(item, []).append({"id": record["document"], "matched": matched, "of": total})
    benchmarks: dict[str, dict] = {}
    for position, item in enumerate(index.items):
        entry = benchmarks.setdefault(
            item["benchmark"], {"items": 0, "items_without_ngrams": 0, "items_hit": 0, "documents_hit": 0, "hits": []}
        )
        entry["items"] += 1
        entry["items_without_ngrams"] += int(index.totals[position] == 0)
        if position in by_item:
            documents = sorted(by_item[position], key=lambda d: d["id"])
            entry["items_hit"] += 1
            entry["hits"].append(
                {
                    "item": item["id"],
                    "text": item["text"],
                    "documents": documents[:max_listed],
                    "count": len(documents),
                }
            )
    for name, entry in benchmarks.items():
        items = [i for i in by_item if index.items[i]["benchmark"] == name]
        entry["documents_hit"] = len({d["id"] for i in items for d in by_item[i]})
    return {
        "settings": settings,
        "documents": sum(part["documents"] for part in parts),
        "documents_hit": len(documents_hit),
        "benchmarks": benchmarks,
        **index.notes,
        **extra,
    }


def report_markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        "# Benchmark decontamination",
        "",
        f"{report['documents']:,} documents scanned, {report['documents_hit']:,} hit at least one item "
        f"({'dropped' if s['mode'] == 'drop' else 'flagged, kept'}). An item is hit when a document holds >= "
        f"{s['min_ngrams']} and >= {s['min_fraction']:.0%} of its distinct {s['ngram']}-unit n-grams "
        "(a unit: a CJK character or a word).",
        "",
        "| benchmark | items | without n-grams | items hit | documents hitting |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, entry in report["benchmarks"].items():
        lines.append(
            f"| {name} | {entry['items']:,} | {entry['items_without_ngrams']:,} | {entry['items_hit']:,} | "
            f"{entry['documents_hit']:,} |"
        )
    notes = (
        ("missing_subjects", "Subjects not in the data folder (not indexed)"),
        ("duplicate_items", "Items equal to an earlier item (indexed once)"),
        ("skipped", "Records skipped (not checked, not written)"),
    )
    for key, title in notes:
        if report.get(key):
            lines += ["", f"{title}: " + "; ".join(f"{k}: {v}" for k, v in report[key].items())]
    for name, entry in report["benchmarks"].items():
        if entry["hits"]:
            lines += ["", f"## {name}", "", "| item | text | documents (n-grams matched / of) |", "|---|---|---|"]
            for hit in entry["hits"]:
                docs = ", ".join(f"`{d['id']}` ({d['matched']}/{d['of']})" for d in hit["documents"])
                more = (
                    f" and {hit['count'] - len(hit['documents'])} more" if hit["count"] > len(hit["documents"]) else ""
                )
                text = hit["text"].replace("|", "/").replace("\n", " ")
                lines.append(f"| {hit['item']} | {text} | {docs}{more} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, folder: DataFolderLike, names: tuple[str, str] = REPORT_FILES) -> None:
    """The JSON and Markdown report, each written under a temporary name and renamed."""
    folder = get_datafolder(folder)
    for name, text in zip(names, (json.dumps(report, indent=2, ensure_ascii=False), report_markdown(report))):
        with folder.open(f"{name}.tmp", "w") as f:
            f.write(text)
        folder.mv(f"{name}.tmp", name)


class DecontaminationReport(PipelineStep):
    """One task: merges the filter tasks' hit files into `decontamination.{json,md}` in `root`."""

    type = "🧪 - DECONT"
    name = "🧪 decontamination report"

    def __init__(self, root: str, index_folder: str, hits_folder: str, settings: dict):
        super().__init__()
        self.root, self.index_folder, self.hits_folder, self.settings = root, index_folder, hits_folder, settings

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        folder = get_datafolder(self.hits_folder)
        parts = []
        for path in sorted(folder.list_files(glob_pattern="*.json")) if folder.exists("") else []:
            with folder.open(path) as f:
                parts.append(json.load(f))
        write_report(build_report(NGramIndex.load(self.index_folder), parts, self.settings), self.root)
        yield from data or ()
