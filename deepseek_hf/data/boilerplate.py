"""String-level dedup: lines repeated across many documents (navigation, headers, legal notices) are removed.

A normalized line (`text.normalize`, at least `min_chars` characters) that occurs in at least `min_docs`
*different* documents is boilerplate and removed from every document, the first one included: the decision
depends only on counts, never on which shard saw the line first, so it is the same for any number of tasks.
(datatrove's `SentenceDedup*` stages keep the first occurrence in shard order and remove any repeat.)

Three stages: `LineDedupSignature` (per shard; writes the sorted distinct line hashes of each document, split
into `finder_workers` hash ranges), `LineDedupFinder` (per hash range; counts documents per line hash) and
`LineDedupFilter` (per shard; removes the lines, drops documents left empty as `boilerplate_only`).
"""

from __future__ import annotations

import io
import json

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from deepseek_hf.data.text import hash64, normalize

SUMMARY_FILE = "line_dedup_summary.json"


def line_hashes(text: str, min_chars: int) -> list[int | None]:
    """Hash of each line of `text` (None for lines too short to be considered)."""
    hashes = []
    for line in text.split("\n"):
        normalized = normalize(line)
        hashes.append(hash64(normalized) if len(normalized) >= min_chars else None)
    return hashes


def _save(folder, path: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    with folder.open(path, "wb") as f:
        f.write(buffer.getvalue())


def _load(folder, path: str) -> np.ndarray:
    with folder.open(path, "rb") as f:
        return np.load(io.BytesIO(f.read()))


def _partition(hashes: np.ndarray, parts: int) -> np.ndarray:
    """Hash range (0..parts-1) of each uint64 hash."""
    return (hashes >> np.uint64(32)).astype(np.uint64) * np.uint64(parts) >> np.uint64(32)


class LineDedupSignature(PipelineStep):
    """Stage 1: passes documents through and records the distinct long-enough line hashes of each one."""

    type = "🫂 - DEDUP"
    name = "🧱 line signatures"

    def __init__(self, output_folder: DataFolderLike, min_chars: int = 20, finder_workers: int = 1):
        super().__init__()
        self.output_folder = get_datafolder(output_folder)
        self.min_chars = min_chars
        self.finder_workers = finder_workers

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        chunks, current = [], []
        for doc in data:
            with self.track_time():
                distinct = {h for h in line_hashes(doc.text, self.min_chars) if h is not None}
                current.extend(distinct)
                self.stat_update("lines_considered", value=len(distinct))
                if len(current) >= 1 << 20:
                    chunks.append(np.array(current, dtype=np.uint64))
                    current = []
            yield doc
        hashes = np.concatenate([*chunks, np.array(current, dtype=np.uint64)])
        part = _partition(hashes, self.finder_workers)
        for p in range(self.finder_workers):
            _save(self.output_folder, f"sig/{p:04d}/{rank:05d}.npy", np.sort(hashes[part == p]))


class LineDedupFinder(PipelineStep):
    """Stage 2 (one task per hash range): line hashes found in >= `min_docs` documents."""

    type = "🫂 - DEDUP"
    name = "🧱 boilerplate finder"

    def __init__(self, folder: DataFolderLike, min_docs: int = 3):
        super().__init__()
        self.folder = get_datafolder(folder)
        self.min_docs = min_docs

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        with self.track_time("range"):
            files = self.folder.list_files(f"sig/{rank:04d}", glob_pattern="*.npy")
            hashes = np.concatenate([_load(self.folder, f) for f in files]) if files else np.zeros(0, np.uint64)
            unique, counts = np.unique(hashes, return_counts=True)
            boilerplate = unique[counts >= self.min_docs]
            _save(self.folder, f"boilerplate/{rank:04d}.npy", boilerplate)
            summary = {
                "distinct_lines": int(len(unique)),
                "boilerplate_lines": int(len(boilerplate)),
                "boilerplate_occurrences": int(counts[counts >= self.min_docs].sum()),
            }
            with self.folder.open(f"boilerplate/{rank:04d}.json", "w") as f:
                json.dump(summary, f)
            for key, value in summary.items():
                self.stat_update(key, value=value, unit="range")


def read_summary(folder: DataFolderLike) -> dict:
    """Sum of the finder summaries of all hash ranges."""
    folder = get_datafolder(folder)
    total: dict[str, int] = {}
    for path in folder.list_files("boilerplate", glob_pattern="*.json"):
        with folder.open(path) as f:
            for key, value in json.load(f).items():
                total[key] = total.get(key, 0) + value
    return total


class LineDedupFilter(BaseFilter):
    """Stage 3: removes boilerplate lines; a document with fewer than `min_remaining_chars` characters left is
    dropped as `boilerplate_only`. Kept documents that lost lines record `boilerplate_lines_removed`."""

    name = "🧱 boilerplate lines"

    def __init__(
        self,
        folder: DataFolderLike,
        min_chars: int = 20,
        min_remaining_chars: int = 1,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__(exclusion_writer)
        self.folder = get_datafolder(folder)
        self.min_chars = min_chars
        self.min_remaining_chars = min_remaining_chars
        self._boilerplate: set[int] | None = None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        files = self.folder.list_files("boilerplate", glob_pattern="*.npy")
        self._boilerplate = set(np.concatenate([_load(self.folder, f) for f in files]).tolist()) if files else set()
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if not self._boilerplate:
            return True
        lines = doc.text.split("\n")
        hashes = line_hashes(doc.text, self.min_chars)
        kept = [line for line, h in zip(lines, hashes) if h is None or h not in self._boilerplate]
        removed = len(lines) - len(kept)
        if not removed:
            return True
        text = "\n".join(kept).strip("\n")
        self.stat_update("lines_removed", value=removed)
        self.stat_update("chars_removed", value=len(doc.text) - len(text))
        if len(text.strip()) < self.min_remaining_chars:
            return False, "boilerplate_only"
        doc.text = text
        doc.metadata["boilerplate_lines_removed"] = removed
        return True

    def __getstate__(self):
        return {**self.__dict__, "_boilerplate": None}
