"""Near-dedup stage vs datasketch's MinHashLSH: documents/s, peak memory and quality, measured in one run.

Both sides get the same documents (default: the Quan Tang Shi dedup demo, 20,011 poems; the shipped 3,000-poem
sample when `../shared/data` is absent), the same shingles (the pipeline's normalized, CJK-aware 5-unit n-grams),
the same number of MinHash values (40 bands x 8 rows = 320) and the same verification (estimated Jaccard >= 0.8).

* ours: the pipeline's own steps (`DedupSignature` -> `DedupBuckets` for every band + the exact band ->
  `DedupClusters`) run in-process on the documents, as one executor task each would; signature files on local disk.
* datasketch: `MinHash.bulk` (its default SHA-1 hashing) + `MinHashLSH(params=(40, 8))`, streaming: query each
  document, keep candidates whose `MinHash.jaccard` is >= 0.8, then insert it; duplicates are union-found.

Quality is measured the same way for both against exact Jaccard ground truth (pairs with J >= 0.8): a pair counts
as found when its two documents end in the same duplicate cluster. Each side runs in a fresh subprocess; memory is
its resident set sampled every 2 ms during the stage: the peak, and the peak's rise over the start (the documents
and libraries are already loaded then; the rise is the stage's own working memory).

    python benchmarks/bench_dedup.py                   # prints a table and the ratio ours / datasketch
    python benchmarks/bench_dedup.py --input data.jsonl.gz --text_key text --limit 5000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from itertools import combinations

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data", "dedup_demo", "quantangshi_files00-19.jsonl.gz")
SAMPLE = os.path.join(REPO, "deepseek_hf", "assets", "demo", "tangshi_dedup_sample.jsonl.gz")
BANDS, ROWS, THRESHOLD = 40, 8, 0.8


def load_texts(path: str, text_key: str, limit: int) -> list[str]:
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
    """Current resident set size (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Peak resident memory *during* a block (sampled every 2 ms), and its rise over the start."""

    def __enter__(self):
        self.start = self.peak = rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.002):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def clusters_to_pairs(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {tuple(sorted(p)) for g in groups for p in combinations(g, 2)}


def run_ours(texts: list[str]) -> dict:
    from datatrove.data import Document

    from deepseek_hf.data.config import DedupConfig
    from deepseek_hf.data.dedup import DedupBuckets, DedupClusters, DedupSignature, minhash_config

    docs = [Document(text=t, id=str(i), metadata={"dump": "d"}) for i, t in enumerate(texts)]
    config = minhash_config(DedupConfig(num_buckets=BANDS, hashes_per_bucket=ROWS, threshold=THRESHOLD))
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as memory:
        start = time.perf_counter()
        DedupSignature(f"{tmp}/sig", config).run(iter(docs), 0, 1)
        buckets = DedupBuckets(f"{tmp}/sig", f"{tmp}/edges", config, THRESHOLD)
        for band in range(buckets.num_bands):
            buckets.run(None, band, buckets.num_bands)
        DedupClusters(f"{tmp}/sig", f"{tmp}/edges", f"{tmp}/clusters").run(None, 0, 1)
        seconds = time.perf_counter() - start
        import numpy as np

        from deepseek_hf.data.dedup import EDGE_DTYPE, connected_components

        edges = np.concatenate(
            [
                np.fromfile(os.path.join(f"{tmp}/edges", f), dtype=EDGE_DTYPE).reshape(-1, 4)
                for f in os.listdir(f"{tmp}/edges")
            ]
        )
    labels = connected_components(edges[:, 1].astype(np.int64), edges[:, 3].astype(np.int64), len(texts))
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(i)
    return {
        "seconds": seconds,
        "peak_mb": memory.peak,
        "delta_mb": memory.peak - memory.start,
        "pairs": sorted(clusters_to_pairs([g for g in groups.values() if len(g) > 1])),
    }


def run_datasketch(texts: list[str]) -> dict:
    from datasketch import MinHash, MinHashLSH

    from deepseek_hf.data.config import DedupConfig
    from deepseek_hf.data.evaluation import make_signer
    from deepseek_hf.data.text import normalize

    signer = make_signer(DedupConfig())
    tokenize, n = signer.word_tokenizer.word_tokenize, signer.config.n_grams
    memory = PeakRSS().__enter__()
    start = time.perf_counter()
    shingles = []
    for text in texts:  # the same shingles as the pipeline (its CJK-aware units), as bytes
        units = tokenize(normalize(text))
        shingles.append([" ".join(units[i : i + n]).encode() for i in range(len(units) - n + 1)])
    minhashes = MinHash.bulk(shingles, num_perm=BANDS * ROWS, seed=1)
    lsh = MinHashLSH(num_perm=BANDS * ROWS, params=(BANDS, ROWS))
    parent = list(range(len(texts)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(minhashes):
        if not shingles[i]:
            continue
        for j in lsh.query(m):
            if m.jaccard(minhashes[j]) >= THRESHOLD:
                parent[find(i)] = find(j)
        lsh.insert(i, m)
    seconds = time.perf_counter() - start
    memory.__exit__(None, None, None)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(find(i), []).append(i)
    return {
        "seconds": seconds,
        "peak_mb": memory.peak,
        "delta_mb": memory.peak - memory.start,
        "pairs": sorted(clusters_to_pairs([g for g in groups.values() if len(g) > 1])),
    }


def worker(method: str, args) -> None:
    texts = load_texts(args.input, args.text_key, args.limit)
    result = (run_ours if method == "ours" else run_datasketch)(texts)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", default=SHARED if os.path.exists(SHARED) else SAMPLE)
    parser.add_argument("--text_key", default="paragraphs")
    parser.add_argument("--limit", type=int, default=-1)
    parser.add_argument("--worker", choices=["ours", "datasketch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args)

    from deepseek_hf.data.config import DedupConfig
    from deepseek_hf.data.evaluation import make_signer, shingle_sets, similar_pairs

    texts = load_texts(args.input, args.text_key, args.limit)
    truth = set(similar_pairs(shingle_sets(texts, make_signer(DedupConfig())), THRESHOLD))
    print(f"{len(texts)} documents from {args.input}; {len(truth)} pairs with exact Jaccard >= {THRESHOLD}")
    print(f"num_perm {BANDS * ROWS} = {BANDS} bands x {ROWS} rows, verification at estimated Jaccard >= {THRESHOLD}\n")
    results = {}
    for method in ("ours", "datasketch"):
        command = [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--input",
            args.input,
            "--text_key",
            args.text_key,
            "--limit",
            str(args.limit),
        ]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[method] = json.loads(out.strip().splitlines()[-1])
    print(f"{'method':<12} {'docs/s':>9} {'seconds':>8} {'peak MB':>8} {'delta MB':>9} {'recall':>7} {'precision':>9}")
    for method, r in results.items():
        found = {tuple(p) for p in r["pairs"]}
        recall = len(found & truth) / len(truth) if truth else 1.0
        precision = len(found & truth) / len(found) if found else 1.0
        print(
            f"{method:<12} {len(texts) / r['seconds']:>9,.0f} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f} "
            f"{r['delta_mb']:>9.0f} {recall:>7.3f} {precision:>9.3f}"
        )
    ratio = results["datasketch"]["seconds"] / results["ours"]["seconds"]
    print(f"\nthroughput ours / datasketch: {ratio:.2f}x")


if __name__ == "__main__":
    main()
