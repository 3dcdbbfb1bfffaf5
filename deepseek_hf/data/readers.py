"""Readers: datatrove's JSONL / Parquet / `datasets` readers that never silently lose a line.

datatrove's readers skip a document without text with one warning, log and skip a malformed JSON line, and stop
reading a whole file at the first invalid UTF-8 byte. Here every input line becomes a `Document`; a line that cannot
be used becomes an *error document* (`metadata["_input_error"]` = the reason, text = the raw line) that
`InputValidator` then drops, counts and writes to the audit folder, so every loss shows in the report.

Each document gets `metadata["dump"]` (the crawl dump, unit of the `per_dump` dedup scope) and
`metadata["source"]` (the domain, unit of remixing): from fixed per-input labels, from fields of the record, or —
for the dump — a pseudo-dump chosen by a hash of the document id (deterministic for any sharding).
"""

from __future__ import annotations

import gzip
import zlib

import orjson
from datatrove.data import Document
from datatrove.pipeline.readers import HuggingFaceDatasetReader, JsonlReader, ParquetReader

from deepseek_hf.data.config import IngestConfig, InputConfig
from deepseek_hf.data.errors import AUDIT_CHARS, INPUT_ERROR
from deepseek_hf.data.text import hash64


def pseudo_dump(doc_id: str, num_dumps: int) -> str:
    """`dump-<i>`, i = xxh64(id) mod num_dumps: a stable dump label for documents whose input has none."""
    width = len(str(num_dumps - 1))
    return f"dump-{hash64(doc_id) % num_dumps:0{width}d}"


class _DocumentMixin:
    """Turns a raw record into a `Document` with text, id, dump and source; never returns None."""

    def _setup_labels(self, spec: InputConfig, ingest: IngestConfig, content_ids: bool = False) -> None:
        self.dump_key, self.source_key = spec.dump_key, spec.source_key
        self.fixed_dump, self.fixed_source = spec.dump, spec.source
        self.default_source = spec.name
        self.pseudo_dumps = ingest.pseudo_dumps
        self.content_ids = content_ids  # ids from the content when the record has none (sharding-independent)

    def _labels(self, data: dict, doc_id: str) -> dict:
        dump = self.fixed_dump or data.pop(self.dump_key, None)
        source = self.fixed_source or data.pop(self.source_key, None) or self.default_source
        if self.fixed_dump:
            data.pop(self.dump_key, None)
        if self.fixed_source:
            data.pop(self.source_key, None)
        return {
            "dump": str(dump) if dump not in (None, "") else pseudo_dump(doc_id, self.pseudo_dumps),
            "source": str(source),
        }

    def error_document(self, reason: str, raw: str, source_file: str, id_in_file) -> Document:
        doc_id = f"{source_file}/{id_in_file}"
        metadata = {INPUT_ERROR: reason, **self._labels({}, doc_id), "file": source_file}
        return Document(text=raw[:AUDIT_CHARS], id=doc_id, metadata=metadata)

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file) -> Document:
        if not isinstance(data, dict):
            return self.error_document("not_a_json_object", repr(data), source_file, id_in_file)
        data = dict(data)
        raw_text = data.pop(self.text_key, None)
        doc_id = data.pop(self.id_key, None)
        if doc_id in (None, ""):
            if self.content_ids and isinstance(raw_text, str):
                doc_id = f"{source_file}/{hash64(raw_text):016x}"
            else:
                doc_id = f"{source_file}/{id_in_file}"
        doc_id = str(doc_id)
        metadata = data.pop("metadata", None)
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        labels = self._labels(data, doc_id)
        metadata.update({k: v for k, v in data.items() if k != "media"})
        metadata.update(labels)
        if raw_text is None:
            metadata[INPUT_ERROR] = "missing_text"
            text = ""
        elif isinstance(raw_text, str):
            text = raw_text
        elif isinstance(raw_text, list) and all(isinstance(part, str) for part in raw_text):
            text = "\n".join(raw_text)
        else:
            metadata[INPUT_ERROR] = "bad_text_type"
            text = repr(raw_text)[:AUDIT_CHARS]
        document = Document(text=text, id=doc_id, metadata=metadata)
        if self.default_metadata:
            document.metadata = self.default_metadata | document.metadata
        return document


class JsonlDocReader(_DocumentMixin, JsonlReader):
    """JSONL (plain, .gz, .zst) reader: bytes-level, so bad UTF-8 or JSON on one line never costs the next lines."""

    name = "🐿 Jsonl (checked)"

    def __init__(self, spec: InputConfig, ingest: IngestConfig, **kwargs):
        folder, pattern = spec.folder_and_glob()
        super().__init__(
            folder,
            glob_pattern=pattern,
            text_key=spec.text_key,
            id_key=spec.id_key,
            limit=spec.limit,
            doc_progress=ingest.progress,
            add_file_path=False,
            **kwargs,
        )
        self._setup_labels(spec, ingest)
        self.invalid_utf8 = ingest.invalid_utf8

    def _parse_line(self, raw: bytes, filepath: str, li: int) -> Document | None:
        if not raw.strip():
            self.stat_update("blank_lines")
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                repaired = raw.decode("utf-8", errors="replace")
                if self.invalid_utf8 == "drop":
                    return self.error_document("invalid_utf8", repaired, filepath, li)
                try:
                    data = orjson.loads(repaired)
                except orjson.JSONDecodeError:
                    return self.error_document("malformed_json", repaired, filepath, li)
                document = self.get_document_from_dict(data, filepath, li)
                document.metadata["repaired_utf8"] = True
                self.stat_update("invalid_utf8_repaired")
                return document
            return self.error_document("malformed_json", raw.decode("utf-8"), filepath, li)
        return self.get_document_from_dict(data, filepath, li)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        """Files are split between tasks; with fewer files than tasks, every task reads every file and keeps the
        lines `i` with i % world_size == rank (skipping the others unparsed), so small inputs still use all tasks."""
        if data:
            yield from data
        files = self.data_folder.list_files(recursive=self.recursive, glob_pattern=self.glob_pattern)
        if not files:
            raise RuntimeError(f"No files found on {self.data_folder.path} matching {self.glob_pattern!r}")
        if len(files) >= world_size:
            self._stride, shard = (1, 0), files[rank::world_size]
        else:
            self._stride, shard = (world_size, rank), files
        for document in self.read_files_shard(shard):
            self.update_doc_stats(document)
            yield document

    def read_file(self, filepath: str):
        li = -1
        stride, offset = getattr(self, "_stride", (1, 0))
        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            try:
                for li, raw in enumerate(f):
                    if li % stride != offset:
                        continue
                    with self.track_time():
                        document = self._parse_line(raw, filepath, li)
                    if document is not None:
                        yield document
            except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as e:
                # a truncated / corrupt compressed file: keep what was read, report the loss (once, not per task)
                if offset == 0:
                    yield self.error_document("corrupt_file", f"{type(e).__name__}: {e}", filepath, f"{li + 1}+")


class ParquetDocReader(_DocumentMixin, ParquetReader):
    name = "📒 Parquet (checked)"

    def __init__(self, spec: InputConfig, ingest: IngestConfig, **kwargs):
        folder, pattern = spec.folder_and_glob()
        super().__init__(
            folder,
            glob_pattern=pattern,
            text_key=spec.text_key,
            id_key=spec.id_key,
            limit=spec.limit,
            doc_progress=ingest.progress,
            **kwargs,
        )
        self._setup_labels(spec, ingest)


class DatasetDocReader(_DocumentMixin, HuggingFaceDatasetReader):
    """A `datasets` dataset: a folder written by `save_to_disk`, or a `load_dataset` name + options."""

    name = "🤗 datasets (checked)"

    def __init__(self, spec: InputConfig, ingest: IngestConfig, **kwargs):
        import os

        path = spec.resolved_path
        from_disk = os.path.isdir(path)
        super().__init__(
            path if from_disk else spec.path,
            dataset_options=None if from_disk else {"split": spec.split, **spec.dataset_options},
            load_from_disk=from_disk,
            text_key=spec.text_key,
            id_key=spec.id_key,
            limit=spec.limit,
            doc_progress=ingest.progress,
            **kwargs,
        )
        self.split = spec.split
        # row indices depend on the sharding, so rows without an id get one from their content
        self._setup_labels(spec, ingest, content_ids=True)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datasets import DatasetDict, IterableDatasetDict, load_dataset, load_from_disk
        from tqdm import tqdm

        if data:
            yield from data
        if self.load_from_disk:
            dataset = load_from_disk(self.dataset)
        else:
            dataset = load_dataset(self.dataset, **self.dataset_options)
        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            if self.split not in dataset:
                raise ValueError(f"{self.dataset}: no split {self.split!r}; available splits: {list(dataset)}")
            dataset = dataset[self.split]
        shard = self._get_dataset_shard(dataset, rank, world_size)
        if shard is None:
            return
        for index, row in enumerate(tqdm(shard, disable=not self.doc_progress, desc="Document progress")):
            if self.limit != -1 and index >= self.limit:
                break
            document = self.get_document_from_dict(row, self.dataset, f"{rank:05d}/{index}")
            self.update_doc_stats(document)
            self.stat_update("documents")
            yield document


def make_reader(spec: InputConfig, ingest: IngestConfig):
    """The reader step for one input (its format resolved from the config)."""
    fmt = spec.resolved_format
    if fmt == "jsonl":
        return JsonlDocReader(spec, ingest)
    if fmt == "parquet":
        return ParquetDocReader(spec, ingest)
    return DatasetDocReader(spec, ingest)
