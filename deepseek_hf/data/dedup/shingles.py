"""Vectorized text -> shingle hashes -> MinHash signatures, the hot path of near-dedup.

The profile of the first version (cProfile, 20,011 Quan Tang Shi poems, one core) put the time in four Python-level
loops: datatrove's `simplify_text` strips combining marks with a generator over every character (~20%), the
shingles were built by joining 5 unit strings and hashing each join with xxh64 (~25%), the 320 MinHash values were
computed as `(a*x + b) mod (2^61 - 1)` in uint64 with a row-major `minimum.reduceat` (~35%), and the band files
were sorted as structured arrays (~15%). Here:

* `normalize` is `simplify_text` with the combining marks removed by one compiled character class (same output,
  checked on the shared corpora in the tests);
* `Shingler` tokenizes a whole batch of documents at once on their code points: a per-code-point class table
  (space / CJK / word / apostrophe / other, built lazily from the same regular expressions as
  `text.CJKWordTokenizer`, so the units are exactly `CJKWordTokenizer().word_tokenize`'s), unit hashes as
  polynomial hashes from prefix sums, shingle hashes as a polynomial of `n` consecutive unit hashes, each finished
  by the splitmix64 mixer: no Python operation per unit or per shingle;
* `MinHasher` computes `a*x + b` modulo 2^64 (or 2^32) for all permutations at once, laid out (permutations x
  shingles) so the per-document minima are one `minimum.reduceat` along contiguous memory.

rensa's Rust kernel (`RMinHash.digest_matrix_from_flat_token_hashes`) hashes 1M shingles x 320 in 0.06 s against
0.25 s here, but its digests come back only as Python lists (`to_rows`, 0.66 s for 20k x 320): slower end to end
than numpy, so it is a benchmark peer, not a dependency. Every constant is derived from the seed with splitmix64,
so signatures do not depend on numpy's random streams or on the machine (pinned by a committed fixture).
"""

from __future__ import annotations

import re
import sys
import unicodedata

import numpy as np
import regex
from datatrove.utils.text import (
    MONTHS_PATTERN,
    NUMBERS_PATTERN,
    PUNCTUATION,
    PUNCTUATION_TRANS,
    WEEKDAYS_PATTERN,
    WHITESPACE_PATTERN,
    TextNormConfig,
)

from deepseek_hf.data.text import _CJK, DEFAULT_NORM

U64 = np.uint64
_MASK = (1 << 64) - 1
_MN: regex.Pattern | None = None
SET_PAD = np.uint32(0xFFFFFFFF)  # padding of the shingle-set rows (`smallest_distinct`); real values stop below it
# punctuation (which `simplify_text` turns into spaces) and whitespace runs in one pass: one space
_PUNCTUATION_OR_SPACE = re.compile(r"[\s" + re.escape(PUNCTUATION) + "]+")


def _combining_marks() -> regex.Pattern:
    """Combining marks as `unicodedata` (what `simplify_text` uses) classifies them: `regex`'s `\\p{Mn}` minus the
    code points its newer Unicode tables add (unassigned for this Python), compiled once per process (~50 ms)."""
    global _MN
    if _MN is None:
        every = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, sys.maxunicode + 1)))
        newer = [c for c in regex.findall(r"\p{Mn}", every) if unicodedata.category(c) != "Mn"]
        excluded = "".join(map(regex.escape, newer))
        _MN = regex.compile(r"(?V1)[\p{Mn}--[" + excluded + "]]+" if newer else r"\p{Mn}+")
    return _MN


def normalize(text: str, config: TextNormConfig = DEFAULT_NORM) -> str:
    """datatrove's `simplify_text`, step for step, with the combining-mark removal done by one regex and the
    punctuation and whitespace steps by another."""
    if config.lowercase:
        text = text.lower()
    if config.norm_numbers:
        text = NUMBERS_PATTERN.sub("0", text)
    if config.norm_weekdays:
        text = WEEKDAYS_PATTERN.sub("WEEKDAY", text)
    if config.norm_monthnames:
        text = MONTHS_PATTERN.sub("MONTH", text)
    if config.remove_punctuation and config.norm_whitespace:
        # = translate to spaces, strip, collapse spaces (the final strip covers the first): 2-3x faster
        text = _PUNCTUATION_OR_SPACE.sub(" ", text)
    else:
        if config.remove_punctuation:
            text = text.translate(PUNCTUATION_TRANS)
        if config.norm_whitespace:
            text = WHITESPACE_PATTERN.sub(" ", text.strip())
    if config.norm_unicode_diacritics:
        text = _combining_marks().sub("", unicodedata.normalize("NFD", text))
    return text.strip()


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, element-wise on uint64 (wrapping arithmetic): a bijection with full avalanche."""
    z = values.astype(U64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> U64(30)
        z *= U64(0xBF58476D1CE4E5B9)
        z ^= z >> U64(27)
        z *= U64(0x94D049BB133111EB)
        z ^= z >> U64(31)
    return z


# unit classes of a code point, as `CJKWordTokenizer`'s pattern `[CJK]|[^\W CJK]+(?:['’][^\W CJK]+)*|[^\s]` sees it
SPACE, CJK, WORD, APOSTROPHE, OTHER, UNKNOWN = 1, 2, 3, 4, 5, 0
_CLASSIFIERS = [
    (regex.compile(r"\s"), SPACE),
    (regex.compile(rf"[{_CJK}]"), CJK),
    (regex.compile(rf"[^\W{_CJK}]"), WORD),
    (regex.compile(r"['’]"), APOSTROPHE),
]
_CLASS_TABLE = np.zeros(sys.maxunicode + 1, dtype=np.uint8)  # filled lazily, for the code points actually seen


def code_point_classes(code_points: np.ndarray) -> np.ndarray:
    unknown = code_points[_CLASS_TABLE[code_points] == UNKNOWN]
    for c in np.unique(unknown).tolist():
        char = chr(c)
        _CLASS_TABLE[c] = next((cls for pattern, cls in _CLASSIFIERS if pattern.match(char)), OTHER)
    return _CLASS_TABLE[code_points]


_B = U64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2^64
_B_INV = U64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))
_M = U64(0xD6E8FEB86659FD93)


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) modulo 2^64, by doubling (log2(n) vectorized steps)."""
    out = np.ones(max(n, 1), dtype=U64)
    size, step = 1, base
    with np.errstate(over="ignore"):
        while size < n:
            take = min(size, n - size)
            out[size : size + take] = out[:take] * step
            size += take
            step = step * step
    return out[:n]


class Shingler:
    """Hashes of the `n`-unit shingles of many normalized texts at once (units: `CJKWordTokenizer`'s)."""

    MAX_CHARS = 1 << 21  # code points per batch: bounds the working arrays (~100 MB) whatever the documents

    def __init__(self, n: int):
        self.n = n
        self._pow = self._pow_inv = np.zeros(0, U64)

    def _ensure_powers(self, length: int) -> None:
        if len(self._pow) < length:
            size = max(length, 2 * len(self._pow), 1024)
            self._pow, self._pow_inv = _powers(_B, size), _powers(_B_INV, size)

    def units(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(unit hashes, document of each unit, unit start, unit end) in code points of `" ".join(texts)`."""
        joined = " ".join(texts)
        cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        cls = code_point_classes(cps)
        word = cls == WORD
        inner = np.zeros_like(word)  # an apostrophe between two word characters joins them into one unit
        inner[1:-1] = (cls[1:-1] == APOSTROPHE) & word[:-2] & word[2:]
        wordlike = word | inner
        solid = cls != SPACE
        joins_prev = np.zeros_like(word)
        joins_prev[1:] = wordlike[1:] & wordlike[:-1]
        joins_next = np.zeros_like(word)
        joins_next[:-1] = joins_prev[1:]
        starts = np.flatnonzero(solid & ~joins_prev)
        ends = np.flatnonzero(solid & ~joins_next) + 1
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        doc_starts = np.cumsum(lengths + 1) - lengths - 1
        doc = np.searchsorted(doc_starts, starts, side="right") - 1
        self._ensure_powers(len(cps) + 1)
        with np.errstate(over="ignore"):
            prefix = np.zeros(len(cps) + 1, dtype=U64)
            np.cumsum(cps.astype(U64) * self._pow[: len(cps)], out=prefix[1:])
            raw = (prefix[ends] - prefix[starts]) * self._pow_inv[starts]  # sum_j c_j B^(j - start)
            raw += (ends - starts).astype(U64) * _M
        return splitmix64(raw), doc, starts, ends

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes of all texts, concatenated, and offsets (len(texts) + 1): text i has
        `hashes[offsets[i]:offsets[i + 1]]` (empty when it has fewer than `n` units)."""
        hashes, offsets, done = [], [0], 0
        for batch in self._batches(texts):
            h, o = self._shingles(batch)
            hashes.append(h)
            offsets.extend((o[1:] + done).tolist())
            done += len(h)
        return (np.concatenate(hashes) if hashes else np.zeros(0, U64)), np.asarray(offsets, dtype=np.int64)

    def _batches(self, texts: list[str]):
        start, chars = 0, 0
        for i, text in enumerate(texts):
            if chars and chars + len(text) > self.MAX_CHARS:
                yield texts[start:i]
                start, chars = i, 0
            chars += len(text) + 1
        if start < len(texts) or not texts:
            yield texts[start:]

    def _shingles(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        unit_hash, doc, _, _ = self.units(texts)
        count = len(unit_hash) - self.n + 1
        if count <= 0:
            return np.zeros(0, U64), np.zeros(len(texts) + 1, dtype=np.int64)
        with np.errstate(over="ignore"):
            combined = unit_hash[:count].copy()
            for k in range(1, self.n):
                combined *= _M
                combined += unit_hash[k : k + count]
        inside = doc[:count] == doc[self.n - 1 :]  # shingles never span two documents
        hashes = splitmix64(combined[inside])
        counts = np.bincount(doc[:count][inside], minlength=len(texts))
        return hashes, np.concatenate([[0], np.cumsum(counts)])

    def unit_strings(self, text: str) -> list[str]:
        """The units of one text, as strings (for tests: equal to `CJKWordTokenizer().word_tokenize(text)`)."""
        _, _, starts, ends = self.units([text])
        return [text[a:b] for a, b in zip(starts.tolist(), ends.tolist())]


def smallest_distinct(hashes: np.ndarray, offsets: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The `width` smallest distinct 32-bit values (top bits of the shingle hashes, capped below 0xFFFFFFFF, the
    padding) of each set `hashes[offsets[i]:offsets[i + 1]]`, sorted and padded: rows (sets, width) uint32; and the
    number of distinct values of each set. One sort of (set, value) keys for the whole batch, no loop per set."""
    n = len(offsets) - 1
    values = np.minimum(hashes >> U64(32), U64(SET_PAD) - U64(1))
    keys = (np.repeat(np.arange(n, dtype=U64), np.diff(offsets)) << U64(32)) | values
    keys.sort()  # then the first of each run: np.unique takes ~80x longer on 2M uint64 here (its hash path)
    if len(keys):
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    owner = (keys >> U64(32)).astype(np.int64)
    counts = np.bincount(owner, minlength=n)
    position = np.arange(len(keys)) - (np.cumsum(counts) - counts)[owner]
    keep = position < width
    rows = np.full((n, width), SET_PAD, dtype=np.uint32)
    rows[owner[keep], position[keep]] = keys[keep].astype(np.uint32)
    return rows, counts


class MinHasher:
    """`num_hashes` MinHash values per set: min over its elements x of `a_i * x + b_i` modulo 2^bits.

    x is the top `bits` of the (splitmix64-mixed, so uniformly distributed) shingle hash, a_i odd: each map is a
    bijection of the 2^bits values. 32 bits (`hash_precision: 32`) halve the memory traffic and signature size of 64
    (the default); the constants come from splitmix64 of (seed, i), so they are the same on every machine."""

    CHUNK = 4096  # shingles hashed at once: 320 x 4096 x 4 bytes = 5 MB of working memory

    def __init__(self, num_hashes: int, seed: int, bits: int = 32):
        if bits not in (32, 64):
            raise ValueError(f"MinHash values are 32 or 64 bits, got {bits}")
        self.num_hashes, self.bits = num_hashes, bits
        self.dtype = np.dtype(np.uint32 if bits == 32 else np.uint64)
        i = np.arange(num_hashes, dtype=U64)
        with np.errstate(over="ignore"):
            base = U64(seed & _MASK) * U64(0x2545F4914F6CDD1D)
            a = splitmix64(base + 2 * i) | U64(1)
            b = splitmix64(base + 2 * i + U64(1))
        shift = U64(64 - bits)
        self.a = (a >> shift).astype(self.dtype) | self.dtype.type(1)
        self.b = (b >> shift).astype(self.dtype)

    def values(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes >> U64(64 - self.bits)).astype(self.dtype)

    def signatures(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures (len(offsets) - 1, num_hashes) of the sets `hashes[offsets[i]:offsets[i + 1]]`; an empty set
        gives a row of zeros (such documents are left to exact dedup)."""
        n_docs = len(offsets) - 1
        sizes = np.diff(offsets)
        nonempty = np.flatnonzero(sizes > 0)
        starts = offsets[nonempty]
        # minima of the non-empty sets, (num_hashes, sets): each block of shingles fills a contiguous column range
        minima = np.empty((self.num_hashes, len(nonempty)), dtype=self.dtype)
        x = self.values(hashes)
        a, b = self.a[:, None], self.b[:, None]
        work = np.empty((self.num_hashes, self.CHUNK), dtype=self.dtype)
        with np.errstate(over="ignore"):
            for lo in range(0, len(x), self.CHUNK):
                hi = min(lo + self.CHUNK, len(x))
                block = work[:, : hi - lo]
                np.multiply(a, x[None, lo:hi], out=block)
                block += b
                first = int(np.searchsorted(starts, lo, side="right")) - 1  # the set containing lo
                last = int(np.searchsorted(starts, hi, side="left"))  # sets [first, last) meet [lo, hi)
                cuts = starts[first:last] - lo
                cuts[0] = 0
                part = np.minimum.reduceat(block, cuts, axis=1)
                if starts[first] < lo:  # continues from the previous block
                    np.minimum(part[:, 0], minima[:, first], out=part[:, 0])
                minima[:, first:last] = part
        out = np.zeros((n_docs, self.num_hashes), dtype=self.dtype)  # empty sets: zeros
        out[nonempty] = minima.T
        return out
