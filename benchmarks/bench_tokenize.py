"""Tokenizing a corpus: today's single-process path vs `deepseek-hf data tokenize` with 1 and 2 local workers.

Same corpus (JSONL files cut from `../shared/data/corpus/pretrain_mix.jsonl.gz`, repeated up to `--mb` MB, or the
shipped demo corpus when the shared data is absent), same tokenizer (the real DeepSeek LLM vocabulary rebuilt from
`../shared/data/tokenizer/`, else one trained on the demo corpus), measured in one run, each case in a fresh process:

- `single`: `build_packed_dataset`'s path (`load_documents` -> `iter_texts` -> `tokenize_corpus`), one process, the
  Rust tokenizer's default threads;
- `workers=1`, `workers=2`: `run_tokenize` with `--tasks` tasks on the local executor, each task one tokenizer
  thread (`RAYON_NUM_THREADS=1`, as `TokenShardWriter` sets it): the speed-up of 2 workers over 1 is the scaling
  (target >= 1.6x on 2 cores).

Reports tokens/s (tokens / wall seconds of the whole call, reading included) and the peak memory (RSS high-water
mark of the process doing the work: the main one for `single` and `workers=1`, whose tasks run in-process) at
`--mb` and `2 x --mb`: flat means streaming. All outputs also agree: the same token count for every case.
The `workers=2` wall time includes a fixed start-up (the forkserver importing torch and transformers once, the
multiprocess manager), about 15 s here on 2 cores shared with other jobs: below ~16 MB it dominates.

    python benchmarks/bench_tokenize.py                 # 16 MB and 32 MB, 4 tasks (several minutes on 2 cores)
    python benchmarks/bench_tokenize.py --mb 1          # a quick check that every case runs
    python benchmarks/bench_tokenize.py --mb 32 --tasks 8 --json out.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CORPUS = SHARED / "corpus" / "pretrain_mix.jsonl.gz"
GGUF = SHARED / "tokenizer" / "deepseek-llm" / "ggml-vocab-deepseek-llm.gguf"
DEMO = REPO / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=16.0, help="corpus size (MB of JSONL); also measured at 2x")
    parser.add_argument("--files", type=int, default=8, help="JSONL files the corpus is cut into")
    parser.add_argument("--tasks", type=int, default=4, help="tasks of the sharded runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_tokenizer(workdir: Path) -> str:
    folder = workdir / "tokenizer"
    if GGUF.is_file():
        from deepseek_hf.tokenizer import save_tokenizer, tokenizer_from_gguf

        save_tokenizer(tokenizer_from_gguf(GGUF), folder)
    else:
        from deepseek_hf.tokenizer import train_tokenizer

        print(f"note: {GGUF} not found; using a 4000-token tokenizer trained on the demo corpus", file=sys.stderr)
        train_tokenizer([str(DEMO)], vocab_size=4000, output_dir=folder, show_progress=False)
    return str(folder)


def make_corpus(folder: Path, mb: float, files: int) -> Path:
    """`files` JSONL files of about `mb` MB together: the source's lines, repeated as needed."""
    source = CORPUS if CORPUS.is_file() else DEMO
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        lines = [json.dumps({"text": json.loads(line)["text"]}, ensure_ascii=False) + "\n" for line in handle]
    folder.mkdir(parents=True)
    target, written, i = mb * 1e6 / files, 0, 0
    for f in range(files):
        size = 0
        with open(folder / f"part{f:03d}.jsonl", "w", encoding="utf-8") as out:
            while size < target:
                line = lines[i % len(lines)]
                out.write(line)
                size += len(line.encode("utf-8"))
                i += 1
        written += size
    return folder


def run_case(case: str, workdir: Path, tasks: int) -> dict:
    """One measurement, in this (fresh) process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _peak_memory import peak_memory

    corpus, tokenizer_dir = workdir / "corpus", workdir / "tokenizer"
    out = workdir / f"out-{case}"
    if case == "single":
        from deepseek_hf.training import load_tokenizer
        from deepseek_hf.training.corpus import tokenize_corpus
        from deepseek_hf.training.packing import iter_texts, load_documents

        tokenizer = load_tokenizer(str(tokenizer_dir))
        with peak_memory(on_cuda=False) as measured:
            start = time.perf_counter()
            corpus_out = tokenize_corpus(iter_texts(load_documents(str(corpus))), tokenizer, out)
            seconds = time.perf_counter() - start
        tokens = corpus_out.num_tokens
    else:
        from datatrove.utils.logging import logger

        from deepseek_hf.data.tokenize import MANIFEST_FILE, TokenizeConfig, run_tokenize

        logger.remove()  # datatrove's per-task logs would drown the table
        workers = int(case.split("=")[1])
        config = TokenizeConfig(
            input=str(corpus),
            tokenizer=str(tokenizer_dir),
            output_dir=str(out),
            executor={"tasks": tasks, "workers": workers},
        )
        with peak_memory(on_cuda=False) as measured:
            start = time.perf_counter()
            run_tokenize(config)
            seconds = time.perf_counter() - start
        tokens = json.loads((out / MANIFEST_FILE).read_text())["num_tokens"]
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, **measured}


def measure(case: str, workdir: Path, tasks: int) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true"}
    if case != "single":
        env["RAYON_NUM_THREADS"] = "1"  # one tokenizer thread per task, also in the in-process workers=1 run
    command = [sys.executable, __file__, "--case", case, "--workdir", str(workdir)]
    done = subprocess.run(command + ["--tasks", str(tasks)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"case {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.workdir, args.tasks)))
        return 0
    results: dict = {"cores": os.cpu_count(), "tasks": args.tasks, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tokenizer(Path(tmp))
        for mb in (args.mb, 2 * args.mb):
            workdir = Path(tmp) / f"{mb:g}mb"
            make_corpus(workdir / "corpus", mb, args.files)
            os.symlink(tokenizer, workdir / "tokenizer")
            results["sizes"][f"{mb:g}"] = {
                case: measure(case, workdir, args.tasks) for case in ("single", "workers=1", "workers=2")
            }
    print(f"{'MB':>6} {'case':>10} {'tokens':>10} {'s':>7} {'tokens/s':>10} {'peak MB':>8}")
    for mb, cases in results["sizes"].items():
        for case, r in cases.items():
            print(
                f"{mb:>6} {case:>10} {r['tokens']:>10} {r['seconds']:>7.2f} {r['tokens_per_s']:>10.0f} "
                f"{r['peak_memory_mb']:>8.1f}"
            )
        counts = {r["tokens"] for r in cases.values()}
        assert len(counts) == 1, f"the cases disagree on the token count: {cases}"
        speedup = cases["workers=2"]["tokens_per_s"] / cases["workers=1"]["tokens_per_s"]
        cases["speedup_2_vs_1_workers"] = speedup
        print(
            f"{mb:>6} 2 workers / 1 worker: {speedup:.2f}x (target >= 1.6x on 2 cores); "
            f"1 worker / single process: {cases['workers=1']['tokens_per_s'] / cases['single']['tokens_per_s']:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
