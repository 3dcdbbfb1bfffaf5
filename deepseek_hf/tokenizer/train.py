"""Train a DeepSeek-style byte-level BPE tokenizer with HF `tokenizers` (paper §2.1).

Training starts from the 243 byte tokens every UTF-8 text can contain, learns `vocab_size - 243` merges with the
DeepSeek pre-tokenizer (`pre_tokenizer.py`), then appends the 15 special/added tokens (`special_tokens.py`), so
`vocab_size=100000` reproduces the real layout: 100000 regular tokens, BOS at 100000, 100015 tokens in all, model
vocabulary 102400.

Input is streamed: text files (`.txt`, one document per line), JSON Lines (`.jsonl`, a text field per record),
either gzipped (`.gz`), directories of such files, or a `datasets.Dataset` / `IterableDataset` with a text column.
Per-record problems are skipped and counted (invalid UTF-8, lone surrogates, malformed JSON, a missing or non-string
text field, empty text) and reported at the end; per-file problems (missing, unreadable, unknown format) are errors.

>>> from deepseek_hf.tokenizer import train_tokenizer, padded_vocab_size
>>> tok = train_tokenizer(["corpus.jsonl.gz"], vocab_size=4000, output_dir="out/tok")  # doctest: +SKIP
>>> len(tok), tok.padded_vocab_size  # doctest: +SKIP
(4015, 4096)

CLI: `deepseek-hf tokenizer train corpus.jsonl.gz --vocab-size 4000 --output-dir out/tok`
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, trainers
from tokenizers.models import BPE
from tqdm.auto import tqdm

from ..utils import batched
from .io import save_tokenizer
from .pre_tokenizer import byte_alphabet, deepseek_pre_tokenizer
from .special_tokens import NUM_SPECIAL_TOKENS
from .tokenization_deepseek_llm import DEFAULT_MODEL_MAX_LENGTH, DeepseekLLMTokenizer, assemble_backend, wrap_backend
from .vocab import MIN_VOCAB_SIZE

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".txt.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES
STATS_FILE = "training_stats.json"
_BATCH = 1000  # texts handed to the Rust trainer at a time


@dataclass
class CorpusStats:
    """What a pass over the training corpus used and skipped (every skip is counted, never silent)."""

    documents: int = 0
    bytes: int = 0
    skipped_invalid_utf8: int = 0  # undecodable bytes, or lone surrogates (which have no UTF-8 encoding)
    skipped_malformed_json: int = 0
    skipped_missing_text: int = 0  # no text field, or a non-string value
    skipped_empty: int = 0
    sources: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.skipped_invalid_utf8 + self.skipped_malformed_json + self.skipped_missing_text + self.skipped_empty

    def summary(self) -> str:
        parts = [f"{self.documents} documents ({self.bytes / 1e6:.2f} MB) used"]
        for name in ("skipped_invalid_utf8", "skipped_malformed_json", "skipped_missing_text", "skipped_empty"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name.replace('_', ' ')}")
        return ", ".join(parts)


class TrainingCorpus:
    """An iterable of valid, non-empty training texts from files or a `datasets` dataset, counting what it skips.

    Each iteration re-reads the sources and resets `stats`.
    """

    def __init__(self, sources: Any, text_field: str = "text", show_progress: bool = True):
        self.text_field = text_field
        self.show_progress = show_progress
        self.stats = CorpusStats()
        if _is_dataset(sources):
            self._dataset, self._files = sources, []
            columns = getattr(sources, "column_names", None)
            if columns is not None and text_field not in columns:
                raise ValueError(f"the dataset has no column {text_field!r} (columns: {columns}); set text_field")
        else:
            self._dataset, self._files = None, resolve_files(sources)

    def __iter__(self) -> Iterator[str]:
        self.stats = CorpusStats(sources=[str(file) for file in self._files] or [repr(self._dataset)[:200]])
        records = self._dataset_records() if self._dataset is not None else self._file_records()
        progress = tqdm(desc="reading corpus", unit=" docs", disable=not self.show_progress, mininterval=1.0)
        with progress:
            for text in records:
                if not isinstance(text, str):
                    self.stats.skipped_missing_text += 1
                    continue
                if not text:
                    self.stats.skipped_empty += 1
                    continue
                try:
                    size = len(text.encode("utf-8"))
                except UnicodeEncodeError:  # lone surrogates: no UTF-8 form, so no byte-level tokens either
                    self.stats.skipped_invalid_utf8 += 1
                    continue
                self.stats.documents += 1
                self.stats.bytes += size
                progress.update()
                if self.stats.documents % 1000 == 0:
                    progress.set_postfix(MB=f"{self.stats.bytes / 1e6:.1f}", skipped=self.stats.skipped, refresh=False)
                yield text

    def batches(self, size: int = _BATCH) -> Iterator[list[str]]:
        return batched(self, size)

    def _dataset_records(self) -> Iterator[Any]:
        for batch in self._dataset.iter(batch_size=_BATCH):
            if self.text_field not in batch:
                raise ValueError(f"the dataset has no column {self.text_field!r} (columns: {list(batch)})")
            yield from batch[self.text_field]

    def _file_records(self) -> Iterator[Any]:
        for file in self._files:
            try:
                yield from self._read_file(file)
            except (OSError, EOFError) as error:  # unreadable, truncated or corrupt gzip ...
                raise OSError(f"cannot read training file {file}: {error}") from error

    def _read_file(self, file: Path) -> Iterator[Any]:
        opener = gzip.open if file.name.endswith(".gz") else open
        is_jsonl = file.name.endswith(JSONL_SUFFIXES)
        with opener(file, "rb") as handle:
            for line in handle:
                if is_jsonl:
                    if not line.strip():
                        continue  # blank line between records
                    try:
                        record = json.loads(line)
                    except UnicodeDecodeError:
                        self.stats.skipped_invalid_utf8 += 1
                        continue
                    except ValueError:
                        self.stats.skipped_malformed_json += 1
                        continue
                    yield record.get(self.text_field) if isinstance(record, dict) else None
                else:
                    try:
                        yield line.decode("utf-8")  # the newline stays: it is a token like any other
                    except UnicodeDecodeError:
                        self.stats.skipped_invalid_utf8 += 1


def resolve_files(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The training files named by `sources` (files, or directories whose supported files are taken, sorted)."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files: list[Path] = []
    for source in sources:
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"training sources must be file/directory paths or a datasets.Dataset, got {type(source).__name__}; "
                "wrap in-memory texts as datasets.Dataset.from_dict({'text': texts})"
            )
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(SUPPORTED_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"no training files ({', '.join(SUPPORTED_SUFFIXES)}) in directory {path}")
            files.extend(found)
        elif path.is_file():
            if not path.name.endswith(SUPPORTED_SUFFIXES):
                raise ValueError(f"{path}: unsupported training file type (use {', '.join(SUPPORTED_SUFFIXES)})")
            if not os.access(path, os.R_OK):
                raise PermissionError(f"training file is not readable: {path}")
            files.append(path)
        else:
            raise FileNotFoundError(f"training file or directory not found: {path}")
    if not files:
        raise ValueError("no training sources given")
    return files


def train_tokenizer(
    sources: Any,
    vocab_size: int = 100000,
    output_dir: str | os.PathLike | None = None,
    *,
    text_field: str = "text",
    min_frequency: int = 2,
    show_progress: bool = True,
    overwrite: bool = False,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> DeepseekLLMTokenizer:
    """Train a DeepSeek byte-level BPE tokenizer with `vocab_size` regular tokens (+ the 15 special ones).

    Args:
        sources: file or directory paths (`.txt`, `.jsonl`, optionally `.gz`), or a `datasets.Dataset` /
            `IterableDataset` with a `text_field` column.
        vocab_size: regular tokens = 243 byte tokens + merges (paper: 100000). At least `MIN_VOCAB_SIZE` (243).
        output_dir: when given, the tokenizer is saved there (atomically) with `training_stats.json`.
        text_field: the JSONL key / dataset column holding the text.
        min_frequency: a pair must occur this often to be merged.
        overwrite: replace a non-empty `output_dir`.
        model_max_length: saved as the tokenizer's maximum sequence length.

    Returns:
        the trained `DeepseekLLMTokenizer` (`len(tok) == vocab_size + 15` unless the corpus ran out of merges,
        in which case a warning says how many regular tokens were learned).
    """
    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the minimum is {MIN_VOCAB_SIZE} regular tokens (the byte-level "
            f"alphabet of UTF-8 text; + {NUM_SPECIAL_TOKENS} special tokens = {MIN_VOCAB_SIZE + NUM_SPECIAL_TOKENS})"
        )
    if output_dir is not None and Path(output_dir).is_dir() and any(Path(output_dir).iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} is not empty; pass overwrite=True (CLI: --overwrite) to replace it")
    corpus = TrainingCorpus(sources, text_field=text_field, show_progress=show_progress)

    backend = Tokenizer(BPE())
    backend.pre_tokenizer = deepseek_pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=show_progress,
        special_tokens=[],  # appended after training, so they follow the regular tokens as in the real layout
        initial_alphabet=byte_alphabet(),
    )
    backend.train_from_iterator(corpus.batches(), trainer=trainer)

    stats = corpus.stats
    if stats.skipped:
        logger.warning("tokenizer training skipped %d records: %s", stats.skipped, stats.summary())
    if stats.documents == 0:
        raise ValueError(f"empty training corpus: no usable text in {stats.sources} ({stats.summary()})")
    logger.info("tokenizer trained on %s", stats.summary())
    learned = backend.get_vocab_size()
    if learned < vocab_size:
        logger.warning(
            "the corpus supports only %d regular tokens (asked for %d): too little text or min_frequency=%d too high",
            learned,
            vocab_size,
            min_frequency,
        )

    tokenizer = wrap_backend(assemble_backend(backend), model_max_length=model_max_length)
    if output_dir is not None:
        save_tokenizer(tokenizer, output_dir, overwrite=overwrite, extra_files={STATS_FILE: _stats_json(stats)})
    return tokenizer


def _stats_json(stats: CorpusStats) -> str:
    return json.dumps({**asdict(stats), "skipped": stats.skipped}, indent=2) + "\n"


def _is_dataset(obj: Any) -> bool:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a hard dependency
        return False
    if isinstance(obj, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise TypeError(f"got a dataset dict with splits {list(obj)}; pass one split, e.g. dataset['train']")
    return isinstance(obj, (datasets.Dataset, datasets.IterableDataset))
