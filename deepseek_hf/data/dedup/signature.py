"""Stage 1 of near-dedup: shingles, MinHash signatures, band keys and the exact hash of every document of a shard."""

from __future__ import annotations

import json

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.typeshelper import StatHints

from deepseek_hf.data.dedup.files import BAND_DTYPE, DOCS_DTYPE, SET_WIDTH, member_order
from deepseek_hf.data.dedup.shingles import SET_PAD, MinHasher, Shingler, normalize, smallest_distinct, splitmix64
from deepseek_hf.data.text import hash64

_BAND_MIX = np.uint64(0xD6E8FEB86659FD93)


def band_keys(rows: np.ndarray, num_bands: int, rows_per_band: int) -> np.ndarray:
    """One 64-bit key per band of each signature row, shape (len(rows), num_bands): equal band values give equal
    keys; different ones collide with probability 2^-64 (and a collision is only a candidate, verified later)."""
    bands = rows[:, : num_bands * rows_per_band].reshape(len(rows), num_bands, rows_per_band)
    key = np.zeros((len(rows), num_bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows_per_band):
            key *= _BAND_MIX
            key += bands[:, :, j].astype(np.uint64)
    return splitmix64(key)


class DedupSignature(PipelineStep):
    """Stage 1 (one task per shard): per band a file of (band key, document) sorted by key, the full signature of
    each document, its shingle set (the `SET_WIDTH` smallest distinct values: all of them for most documents of
    the web and of the poems), and a document index (id hash, exact hash, dump, length).

    Shingles are `ngram` consecutive CJK-aware units of the normalized text (`shingles.Shingler`); the signature is
    `num_buckets * hashes_per_bucket` MinHash values (`shingles.MinHasher`, `hash_precision` bits). With scope
    `per_dump` every value is XORed with a per-dump salt (and the exact hash salted), so documents of different dumps
    never collide while equalities within a dump are unchanged. Documents are processed in batches of `BATCH`, so
    memory is bounded whatever the shard size; every value depends on the document alone, never on the batch."""

    type = "🫂 - DEDUP"
    name = "🎯 MinHash + exact signatures (CJK-aware)"
    BATCH = 4096

    def __init__(
        self,
        output_folder: DataFolderLike,
        config: MinhashConfig | None = None,
        scope: str = "global",
        near: bool = True,
    ):
        super().__init__()
        self.output_folder = get_datafolder(output_folder)
        self.config = config or MinhashConfig()
        self.scope = scope
        self.near = near
        self.num_hashes = self.config.num_buckets * self.config.hashes_per_bucket
        self.shingler = Shingler(self.config.n_grams)
        self.hasher = MinHasher(self.num_hashes, self.config.seed, self.config.hash_config.precision)
        self._salt_cache: dict[str, np.ndarray] = {}

    @property
    def dtype(self) -> np.dtype:
        return self.hasher.dtype

    def normalize(self, text: str) -> str:
        return normalize(text, self.config.norm_config)

    def shingles(self, texts: list[str], normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes of many texts, concatenated, and their offsets (see `Shingler`)."""
        return self.shingler(texts if normalized else [self.normalize(t) for t in texts])

    def get_shingles(self, text: str) -> np.ndarray:
        """The shingle hashes of one text (in order, repeats kept)."""
        return self.shingles([text])[0]

    def signatures(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures (len(offsets) - 1, num_hashes) of the shingle sets `hashes[offsets[i]:offsets[i + 1]]`."""
        return self.hasher.signatures(hashes, offsets)

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        """The signature of one non-empty set of shingle hashes."""
        return self.signatures(np.asarray(shingles, dtype=np.uint64).ravel(), np.array([0, np.size(shingles)]))[0]

    def dump_salt(self, dump: str) -> np.ndarray:
        """Per-dump XOR mask: equal values stay equal within a dump and become unrelated across dumps."""
        if dump not in self._salt_cache:
            salts = np.array([hash64(f"{dump}/{i}") for i in range(self.num_hashes)], dtype=np.uint64)
            self._salt_cache[dump] = salts.astype(self.dtype)  # 32-bit precision keeps the low bits
        return self._salt_cache[dump]

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        dump_codes: dict[str, int] = {}
        with self.track_time("shard"):
            bands = self.config.num_buckets if self.near else 0
            band_files = [
                self.output_folder.open(f"bucket_{b:03d}/{rank:05d}.minhash.sig", "wb") for b in range(bands)
            ]
            full = self.output_folder.open(f"full/{rank:05d}.sig", mode="wb")
            sets = self.output_folder.open(f"sets/{rank:05d}.set", mode="wb")
            index = self.output_folder.open(f"docs/{rank:05d}.docs", mode="wb")
            texts, salts, records = [], [], []  # the batch awaiting signatures
            done = 0
            for doc in data:
                dump = str(doc.metadata.get("dump", "unknown"))
                code = dump_codes.setdefault(dump, len(dump_codes))
                salt = dump if self.scope == "per_dump" else ""
                texts.append(self.normalize(doc.text))
                salts.append(salt)
                records.append((hash64(doc.id), hash64(texts[-1], salt), code, len(doc.text), 0))
                if len(texts) >= self.BATCH:
                    self._write_batch(texts, salts, records, done, band_files, full, sets, index)
                    done += len(texts)
                    texts, salts, records = [], [], []
            self._write_batch(texts, salts, records, done, band_files, full, sets, index)
            for file in (*band_files, full, sets, index):
                file.close()
            with self.output_folder.open(f"docs/{rank:05d}.dumps.json", mode="w") as f:
                json.dump(list(dump_codes), f)
            self._sort_bands(rank, bands)

    def _write_batch(self, texts, salts, records, first_doc: int, band_files: list, full, sets, index) -> None:
        """Index records, full signature rows (zeros without shingles), shingle sets and band records of a batch."""
        if not texts:
            return
        self.stat_update(StatHints.total, value=len(texts))  # once per batch: a call per document cost 5% here
        table = np.array(records, dtype=DOCS_DTYPE)
        if not self.near:
            index.write(table.tobytes())
            full.write(np.zeros((len(texts), self.num_hashes), dtype=self.dtype).tobytes())
            sets.write(np.full((len(texts), SET_WIDTH), SET_PAD, dtype=np.uint32).tobytes())
            return
        hashes, offsets = self.shingler(texts)
        rows = self.signatures(hashes, offsets)
        sets.write(smallest_distinct(hashes, offsets, SET_WIDTH)[0].tobytes())
        shingled = np.diff(offsets) > 0
        self.stat_update("too_short_for_shingles", value=int((~shingled).sum()))
        for i, salt in enumerate(salts):
            if salt and shingled[i]:
                rows[i] ^= self.dump_salt(salt)
        table["shingled"] = shingled
        index.write(table.tobytes())
        full.write(rows.tobytes())
        docs = np.flatnonzero(shingled)
        keys = band_keys(rows[docs], self.config.num_buckets, self.config.hashes_per_bucket)
        band = np.empty(len(docs), dtype=BAND_DTYPE)
        band["doc"] = docs + first_doc
        exact = table["exact"][docs]
        for b, file in enumerate(band_files):
            band["key"] = keys[:, b]
            band["order"] = member_order(exact, b) >> np.uint64(32)
            file.write(band.tobytes())

    def _sort_bands(self, rank: int, bands: int) -> None:
        """Sort each band file by (key, doc): stage 2 reads key ranges with a binary search."""
        for b in range(bands):
            path = f"bucket_{b:03d}/{rank:05d}.minhash.sig"
            with self.output_folder.open(path, mode="rb") as f:
                records = np.frombuffer(f.read(), dtype=BAND_DTYPE)
            records = records[np.argsort(records["key"], kind="stable")]  # docs were appended in increasing order
            with self.output_folder.open(path, mode="wb") as f:
                f.write(records.tobytes())
