"""The run's output contract: `<output_dir>/output/*.jsonl.gz` + a completion manifest, and `load_output`.

Records are datatrove `JsonlWriter` lines `{"text", "id", "metadata": {"dump", "source"[, "language",
"language_score"]}}`; the metadata keys are the same for every record of a run, so `datasets` reads all shards with
one schema. The shards are written under `work/final/` and moved into `output/` only after every stage succeeded;
`output/_COMPLETE.json` (shard names and sizes) is written last, and `load_output` refuses a folder without it, so
a crashed or half-copied run can never be mistaken for a finished one.

>>> from deepseek_hf.data import load_output
>>> ds = load_output("outputs/demo/data")                  # doctest: +SKIP
>>> ds[0]["text"][:20], ds.num_rows                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

from datatrove.io import DataFolderLike, get_datafolder

OUTPUT_SUBDIR = "output"
COMPLETE_MARKER = "_COMPLETE.json"
SHARD_GLOB = "*.jsonl.gz"


def output_record(writer, document) -> dict:
    """Final-writer adapter: text, id and a fixed metadata schema (the auditing metadata stays in `excluded/`)."""
    meta = document.metadata
    metadata = {"dump": str(meta.get("dump", "")), "source": str(meta.get("source", ""))}
    if "language" in meta:
        metadata["language"] = str(meta["language"])
        metadata["language_score"] = float(meta.get("language_score", 0.0))
    return {"text": document.text, "id": document.id, "metadata": metadata}


def unpublish(run_folder: DataFolderLike) -> None:
    """Remove the completion marker first, so an interrupted re-run never leaves a marker over other shards."""
    folder = get_datafolder(run_folder)
    marker = f"{OUTPUT_SUBDIR}/{COMPLETE_MARKER}"
    if folder.exists(marker):
        folder.rm(marker)


def publish(run_folder: DataFolderLike, staged: str = "work/final", summary: dict | None = None) -> dict:
    """Move the staged shards into `output/` and write the manifest last; returns the manifest."""
    folder = get_datafolder(run_folder)
    unpublish(folder)
    for old in folder.list_files(OUTPUT_SUBDIR, glob_pattern=SHARD_GLOB) if folder.exists(OUTPUT_SUBDIR) else []:
        folder.rm(old)
    shards = []
    for path in folder.list_files(staged, glob_pattern=SHARD_GLOB) if folder.exists(staged) else []:
        target = f"{OUTPUT_SUBDIR}/{os.path.basename(path)}"
        folder.makedirs(OUTPUT_SUBDIR, exist_ok=True)
        folder.mv(path, target)
        shards.append({"file": os.path.basename(path), "bytes": folder.size(target)})
    manifest = {"format": "jsonl.gz (datatrove JsonlWriter)", "shards": shards, **(summary or {})}
    folder.makedirs(OUTPUT_SUBDIR, exist_ok=True)
    tmp = f"{OUTPUT_SUBDIR}/{COMPLETE_MARKER}.tmp"
    with folder.open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
    folder.mv(tmp, f"{OUTPUT_SUBDIR}/{COMPLETE_MARKER}")
    return manifest


def read_manifest(output_dir: str) -> dict:
    marker = os.path.join(output_dir, OUTPUT_SUBDIR, COMPLETE_MARKER)
    if not os.path.isfile(marker):
        raise FileNotFoundError(
            f"{output_dir} holds no complete data-pipeline output ({marker} is missing): the run has not finished, "
            "failed, or the path is not a run folder (`deepseek-hf data run --config ...` writes one)"
        )
    with open(marker, encoding="utf-8") as f:
        return json.load(f)


def output_files(output_dir: str) -> list[str]:
    """The shard paths of a complete run, checked against the manifest (present, same size)."""
    manifest = read_manifest(output_dir)
    files = []
    for shard in manifest["shards"]:
        path = os.path.join(output_dir, OUTPUT_SUBDIR, shard["file"])
        if not os.path.isfile(path) or os.path.getsize(path) != shard["bytes"]:
            raise FileNotFoundError(f"{path}: listed in {COMPLETE_MARKER} but missing or of another size")
        files.append(path)
    return files


def load_output(output_dir: str, streaming: bool = False):
    """The documents of a finished run as a `datasets.Dataset` (or an `IterableDataset` when `streaming`)."""
    from datasets import load_dataset

    files = output_files(output_dir)
    if not files:
        raise ValueError(f"{output_dir}: the pipeline kept no documents (see {output_dir}/report.md)")
    return load_dataset("json", data_files=files, split="train", streaming=streaming)
