"""Near-dedup: the pipeline's stages vs rensa and gaoya (Rust MinHash LSH), and the stages' growth under duplication.

`--mode speed` (default) runs, in ONE process and on the same documents, one after the other:

* ours: the pipeline's own steps (`DedupSignature` -> `DedupBuckets` for every band + the exact band ->
  `DedupClusters`) in-process, as one executor task each would; signature files on local disk;
* rensa 0.5.0: `RMinHash.from_token_sets` + `RMinHashLSH(0.8, 320, 40)`, streaming query-then-insert, candidates
  kept when `RMinHash.jaccard` >= 0.8, union-find of the matches;
* gaoya 0.2.2: `MinHashStringIndex(num_bands=40, band_size=8, jaccard_threshold=0.8)` (its query verifies the
  estimated Jaccard itself), streaming query-then-insert, union-find.

All get the same shingle sets: the pipeline's normalized, CJK-aware 5-unit n-grams (the peers get them as strings,
built by a Python loop over `CJKWordTokenizer` units, which is part of their end-to-end time as it would be for a
user of those libraries; normalization is the same fast `normalize` for all), 320 MinHash values as 40 bands x 8
rows, verification at estimated Jaccard >= 0.8. Quality: pairs with exact Jaccard >= 0.8 (ground truth by prefix
filtering) found in the same duplicate cluster. Time: wall and CPU seconds; memory: the resident set's peak rise
during the method (sampled every 2 ms). The box may be shared: only same-run ratios mean anything, hence one process.

`--mode growth`: copies of the corpus (copy k of each document with one random line removed, new ids) at 1, 4 and 8
copies, dedup stages only, 2 signature shards: time and peak memory per stage, the work counters, the size of the
signature and shingle-set files (which the cluster stage memory-maps, so its resident set grows with them), and the
growth ratios of the bucket and cluster stages (the cluster stage verifies the candidate pairs).

    python benchmarks/bench_dedup.py                        # poems (dedup_demo) and the corpus, ours/rensa/gaoya
    python benchmarks/bench_dedup.py --mode growth          # 1, 4, 8 copies of the corpus
    python benchmarks/bench_dedup.py --datasets poems --limit 5000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
POEMS = os.path.join(SHARED, "dedup_demo", "quantangshi_files00-19.jsonl.gz")
CORPUS = os.path.join(SHARED, "corpus", "pretrain_mix.jsonl.gz")
SAMPLE = os.path.join(REPO, "deepseek_hf", "assets", "demo", "tangshi_dedup_sample.jsonl.gz")
BANDS, ROWS, THRESHOLD = 40, 8, 0.8


def load_texts(path: str, text_key: str, limit: int = -1) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if 0 <= limit <= len(texts):
                break
            value = json.loads(line)[text_key]
            texts.append("\n".join(value) if isinstance(value, list) else value)
    return texts


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Measure:
    """Wall and CPU seconds of a block, and the peak rise of resident memory during it (sampled every 2 ms)."""

    def __enter__(self):
        self.start_mb = self.peak_mb = rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def _sample(self):
        while not self._done.wait(0.002):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        self._done.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
        self.rise_mb = self.peak_mb - self.start_mb


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def labels(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))])


def score(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Recall and precision of 'same cluster' against the true pairs (flagged = all pairs inside clusters)."""
    sizes = np.bincount(np.unique(labels, return_inverse=True)[1].ravel())
    flagged = int((sizes * (sizes - 1) // 2).sum())
    hits = int((labels[truth[:, 0]] == labels[truth[:, 1]]).sum()) if len(truth) else 0
    return (hits / len(truth) if len(truth) else 1.0), (hits / flagged if flagged else 1.0)


def run_ours(texts: list[str], folder: str, tasks: int = 1, stats: dict | None = None) -> tuple[np.ndarray, dict]:
    """The pipeline's stages; returns the cluster label of each document and a Measure per stage (`stats`: filled
    with the stages' counters)."""
    from datatrove.data import Document

    from deepseek_hf.data.config import DedupConfig
    from deepseek_hf.data.dedup import DedupBuckets, DedupClusters, DedupSignature, minhash_config
    from deepseek_hf.data.dedup.files import REMOVE_DTYPE

    config = minhash_config(DedupConfig(num_buckets=BANDS, hashes_per_bucket=ROWS, threshold=THRESHOLD))
    bounds = np.linspace(0, len(texts), tasks + 1).astype(int).tolist()
    stages = {}
    with Measure() as stages["signatures"]:
        for rank in range(tasks):
            docs = (
                Document(text=texts[i], id=str(i), metadata={"dump": "d"}) for i in range(*bounds[rank : rank + 2])
            )
            DedupSignature(f"{folder}/sig", config).run(docs, rank, tasks)
    with Measure() as stages["buckets"]:
        buckets = DedupBuckets(f"{folder}/sig", f"{folder}/edges", config, THRESHOLD)
        for band in range(buckets.num_bands):
            buckets.run(None, band, buckets.num_bands)
    with Measure() as stages["clusters"]:
        clusters = DedupClusters(f"{folder}/sig", f"{folder}/edges", f"{folder}/clusters")
        clusters.run(None, 0, 1)
    if stats is not None:  # the work counters: candidate pairs written, pairs compared
        stats.update({k: v.total for k, v in (*buckets.stats.stats.items(), *clusters.stats.stats.items())})
    labels = np.arange(len(texts))
    for rank in range(tasks):
        removals = np.fromfile(f"{folder}/clusters/{rank:05d}.remove", dtype=REMOVE_DTYPE)
        labels[bounds[rank] + removals["doc"].astype(np.int64)] = (
            np.asarray(bounds)[removals["kept_rank"]] + removals["kept_doc"]
        )
    return labels, stages


def shingle_strings(texts: list[str]) -> list[list[str]]:
    """The pipeline's shingles as strings (what a user of rensa / gaoya would feed them), a Python loop."""
    from deepseek_hf.data.dedup.shingles import normalize
    from deepseek_hf.data.text import CJKWordTokenizer

    tokenize = CJKWordTokenizer().word_tokenize
    out = []
    for text in texts:
        units = tokenize(normalize(text))
        out.append([" ".join(units[i : i + 5]) for i in range(len(units) - 4)])
    return out


def run_rensa(texts: list[str]) -> np.ndarray:
    from rensa import RMinHash, RMinHashLSH

    shingles = shingle_strings(texts)
    minhashes = RMinHash.from_token_sets(shingles, num_perm=BANDS * ROWS, seed=1)
    lsh = RMinHashLSH(THRESHOLD, BANDS * ROWS, BANDS)
    found = UnionFind(len(texts))
    for i, m in enumerate(minhashes):
        if not shingles[i]:
            continue
        for j in lsh.query(m):
            if m.jaccard(minhashes[j]) >= THRESHOLD:
                found.union(i, j)
        lsh.insert(i, m)
    return found.labels()


def run_gaoya(texts: list[str]) -> np.ndarray:
    from gaoya.minhash import MinHashStringIndex

    shingles = shingle_strings(texts)
    index = MinHashStringIndex(
        hash_size=32, jaccard_threshold=THRESHOLD, num_bands=BANDS, band_size=ROWS, num_hashes=BANDS * ROWS
    )
    found = UnionFind(len(texts))
    for i, grams in enumerate(shingles):
        if not grams:
            continue
        doc = " ".join(g.replace(" ", "\x01") for g in grams)  # one whitespace-separated word per shingle
        for j in index.query(doc):
            found.union(i, j)
        index.insert_document(i, doc)
    return found.labels()


def truth_pairs(texts: list[str]) -> np.ndarray:
    from deepseek_hf.data.config import DedupConfig
    from deepseek_hf.data.dedup.quality import make_signer, shingle_sets, similar_pairs

    pairs = similar_pairs(shingle_sets(texts, make_signer(DedupConfig())), THRESHOLD)
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def speed(datasets: list[str], limit: int, methods: list[str]) -> None:
    sources = {"poems": (POEMS if os.path.exists(POEMS) else SAMPLE, "paragraphs"), "corpus": (CORPUS, "text")}
    for name in datasets:
        path, key = sources[name]
        texts = load_texts(path, key, limit)
        megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        truth = truth_pairs(texts)
        print(f"\n{name}: {len(texts):,} documents, {megabytes:.1f} MB from {path}; {len(truth)} pairs with J >= 0.8")
        print(
            f"{'method':<8} {'docs/s':>8} {'MB/s':>6} {'wall s':>7} {'cpu s':>6} {'rise MB':>8} {'recall':>7} {'precision':>9}"
        )
        rows = {}
        for method in methods:
            with tempfile.TemporaryDirectory() as folder, Measure() as m:
                if method == "ours":
                    labels, _ = run_ours(texts, folder)
                else:
                    labels = (run_rensa if method == "rensa" else run_gaoya)(texts)
            recall, precision = score(labels, truth)
            rows[method] = m
            print(
                f"{method:<8} {len(texts) / m.wall:>8,.0f} {megabytes / m.wall:>6.2f} {m.wall:>7.2f} {m.cpu:>6.2f} "
                f"{m.rise_mb:>8.0f} {recall:>7.3f} {precision:>9.3f}"
            )
        for method in methods[1:]:
            print(
                f"ours / {method}: {rows[method].wall / rows['ours'].wall:.2f}x wall, "
                f"{rows[method].cpu / rows['ours'].cpu:.2f}x CPU"
            )


def copies(texts: list[str], k: int, seed: int = 0) -> list[str]:
    """The corpus, then k - 1 more copies of each document with one random line removed."""
    rng = random.Random(seed)
    out = list(texts)
    for _ in range(k - 1):
        for text in texts:
            lines = text.split("\n")
            if len(lines) > 1:
                del lines[rng.randrange(len(lines))]
            out.append("\n".join(lines))
    return out


def growth(limit: int, factors: list[int]) -> None:
    texts = load_texts(CORPUS, "text", limit)
    print(f"{len(texts):,} documents of {CORPUS}, copies with one random line removed, 2 signature shards\n")
    print(
        f"{'copies':>6} {'docs':>8} "
        + " ".join(f"{s + ' s':>14} {s + ' MB':>15}" for s in ("signatures", "buckets", "clusters"))
    )
    runs = {}
    for k in factors:
        corpus = copies(texts, k)
        with tempfile.TemporaryDirectory() as folder:
            labels, stages = run_ours(corpus, folder, tasks=2, stats=(counters := {}))
            tables_mb = sum(  # what the cluster stage memory-maps: full signatures and shingle sets
                os.path.getsize(os.path.join(folder, "sig", part, name)) / 2**20
                for part in ("full", "sets")
                for name in os.listdir(os.path.join(folder, "sig", part))
            )
        runs[k] = stages
        cells = " ".join(f"{m.wall:>8.2f} ({m.cpu:>5.2f}) {m.rise_mb:>15.0f}" for m in stages.values())
        removed = int((labels != np.arange(len(labels))).sum())
        print(
            f"{k:>6} {len(corpus):>8,} {cells}   removed {removed:,}; candidate memberships "
            f"{counters.get('candidate_documents', 0):,}, pairs {counters.get('candidate_pairs', 0):,}, "
            f"compared {counters.get('compared_pairs', 0):,} ({counters.get('exact_jaccard_pairs', 0):,} exact); "
            f"signature + set files {tables_mb:.0f} MB"
        )
        sys.stdout.flush()
    pairs = [(a, b) for a, b in zip(factors, factors[1:])] + ([(factors[0], factors[-1])] if len(factors) > 2 else [])
    for a, b in pairs:
        ratios = []
        for name, stages in (
            ("buckets", ("buckets",)),
            ("clusters", ("clusters",)),
            ("both", ("buckets", "clusters")),
        ):
            wall = [sum(runs[k][s].wall for s in stages) for k in (a, b)]
            cpu = [sum(runs[k][s].cpu for s in stages) for k in (a, b)]
            ratios.append(f"{name} {wall[1] / wall[0]:.1f}x ({cpu[1] / cpu[0]:.1f}x CPU)")
        print(f"{a} -> {b} copies ({b / a:.0f}x the documents): " + ", ".join(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["speed", "growth"], default="speed")
    parser.add_argument("--datasets", nargs="+", default=["poems", "corpus"], choices=["poems", "corpus"])
    parser.add_argument("--methods", nargs="+", default=["ours", "rensa", "gaoya"], choices=["ours", "rensa", "gaoya"])
    parser.add_argument("--copies", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--limit", type=int, default=-1)
    args = parser.parse_args()
    from datatrove.utils.logging import logger

    logger.remove()  # datatrove's per-step logs would drown the table
    if args.mode == "speed":
        speed(args.datasets, args.limit, args.methods)
    else:
        growth(args.limit, args.copies)


if __name__ == "__main__":
    main()
