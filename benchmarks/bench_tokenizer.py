"""The rebuilt real DeepSeek LLM tokenizer vs the same vocabulary loaded through transformers' own GGUF path.

Both tokenizers come from llama.cpp's `ggml-vocab-deepseek-llm.gguf` (`../shared/data/tokenizer/`):

- ours: `deepseek_hf.tokenizer.tokenizer_from_gguf` (DeepSeek pre-tokenizer, 15 special tokens at 100000-100014),
  saved and loaded back with `AutoTokenizer` as a user would;
- peer: `PreTrainedTokenizerFast.from_pretrained(folder, gguf_file=...)`, transformers' GGUF tokenizer converter.

Measured in the same command:

- correctness: share of the 46 official reference encodings (llama.cpp `.inp/.out`) reproduced exactly, whether BOS is
  the official id 100000, and the share of corpus documents with `decode(encode(text)) == text`;
- throughput: MB of UTF-8 text per second of `tokenizer(batch_of_texts)` (transformers call, Rust batch encoding),
  English and Chinese documents of `../shared/data/corpus/pretrain_mix.jsonl.gz` separately, best of `--repeats`,
  the two tokenizers alternating; the ratio ours / peer;
- compression: UTF-8 bytes and characters per token (no BOS), English and Chinese.

    python benchmarks/bench_tokenizer.py
    python benchmarks/bench_tokenizer.py --max-mb 0    # the whole corpus (12.7 MB; several minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REFERENCE = REPO / "tests" / "assets" / "tokenizer" / "deepseek_llm_reference_encodings.json"
OURS, PEER = "ours", "peer"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, default=SHARED / "tokenizer/deepseek-llm/ggml-vocab-deepseek-llm.gguf")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus/pretrain_mix.jsonl.gz")
    parser.add_argument("--max-mb", type=float, default=1.5, help="text per language, MB of UTF-8 (0: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="documents per tokenizer call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def load_corpus(path: Path, max_mb: float | None) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {"en": [], "zh": []}
    sizes = dict.fromkeys(texts, 0)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            lang = record.get("lang")
            if lang not in texts or (max_mb and sizes[lang] >= max_mb * 1e6):
                continue
            texts[lang].append(record["text"])
            sizes[lang] += len(record["text"].encode("utf-8"))
    return texts


def load_tokenizers(gguf: Path, workdir: Path):
    """`({name: tokenizer}, {name: seconds to load})`; ours also reports the one-off GGUF conversion."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    import deepseek_hf  # noqa: F401  (registers DeepseekLLMTokenizer with AutoTokenizer)
    from deepseek_hf.tokenizer import save_tokenizer, tokenizer_from_gguf

    start = time.perf_counter()
    save_tokenizer(tokenizer_from_gguf(gguf), workdir / "ours")
    convert = time.perf_counter() - start
    start = time.perf_counter()
    ours = AutoTokenizer.from_pretrained(workdir / "ours")
    ours_load = time.perf_counter() - start
    start = time.perf_counter()
    peer = PreTrainedTokenizerFast.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    peer_load = time.perf_counter() - start
    return {OURS: ours, PEER: peer}, {OURS: ours_load, PEER: peer_load}, convert


def correctness(tokenizer, corpus: dict[str, list[str]]) -> dict:
    cases = json.loads(REFERENCE.read_text(encoding="utf-8"))
    exact = sum(tokenizer(case["text"], add_special_tokens=False).input_ids == case["ids"] for case in cases)
    docs = [text for texts in corpus.values() for text in texts]
    ids = tokenizer(docs, add_special_tokens=False).input_ids
    round_trip = sum(tokenizer.decode(i) == text for i, text in zip(ids, docs))
    return {
        "reference_exact": f"{exact}/{len(cases)}",
        "reference_share": exact / len(cases),
        "bos_id": tokenizer("x").input_ids[0],
        "len": len(tokenizer),
        "round_trip_share": round_trip / len(docs),
    }


def throughput(tokenizer, texts: list[str], batch_size: int) -> float:
    """MB/s of UTF-8 text through `tokenizer(batch)`."""
    size = sum(len(text.encode("utf-8")) for text in texts)
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        tokenizer(texts[i : i + batch_size], add_special_tokens=False)
    return size / 1e6 / (time.perf_counter() - start)


def compression(tokenizer, texts: list[str]) -> dict:
    ids = tokenizer(texts, add_special_tokens=False).input_ids
    num_tokens = sum(len(i) for i in ids)
    return {
        "bytes_per_token": sum(len(t.encode("utf-8")) for t in texts) / num_tokens,
        "chars_per_token": sum(len(t) for t in texts) / num_tokens,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "sequence longer than model_max_length" is expected: whole documents
    for path in (args.gguf, args.corpus):
        if not path.is_file():
            print(f"missing input: {path}", file=sys.stderr)
            return 1
    corpus = load_corpus(args.corpus, args.max_mb)
    sizes = {lang: sum(len(t.encode("utf-8")) for t in texts) / 1e6 for lang, texts in corpus.items()}
    print(f"corpus: {', '.join(f'{lang} {len(corpus[lang])} docs {mb:.2f} MB' for lang, mb in sizes.items())}")
    with tempfile.TemporaryDirectory() as workdir:
        tokenizers, load_s, convert_s = load_tokenizers(args.gguf, Path(workdir))
        results = {name: {"load_s": load_s[name]} for name in tokenizers}
        results[OURS]["gguf_conversion_s"] = convert_s
        for name, tok in tokenizers.items():
            results[name].update(correctness(tok, corpus))
            for lang, texts in corpus.items():
                results[name][f"compression_{lang}"] = compression(tok, texts)
        for lang, texts in corpus.items():
            best = dict.fromkeys(tokenizers, 0.0)
            for _ in range(args.repeats):  # alternate, so background load hits both alike
                for name, tok in tokenizers.items():
                    best[name] = max(best[name], throughput(tok, texts, args.batch_size))
            for name in tokenizers:
                results[name][f"mb_per_s_{lang}"] = best[name]

    ours, peer = results[OURS], results[PEER]
    print(f"ours: GGUF -> tokenizer.json conversion (one-off, llama.cpp's gguf reader) {convert_s:.1f} s")
    print(f"\n{'':38}{'ours':>14}{'peer':>14}{'ours/peer':>11}")
    rows = [
        ("reference encodings exact", "reference_exact", None),
        ("BOS id (official: 100000)", "bos_id", None),
        ("tokenizer length", "len", None),
        ("decode(encode(doc)) == doc", "round_trip_share", None),
        ("load time (s, saved dir / gguf_file=)", "load_s", "ratio"),
        ("throughput en (MB/s, batch)", "mb_per_s_en", "ratio"),
        ("throughput zh (MB/s, batch)", "mb_per_s_zh", "ratio"),
    ]
    for label, key, ratio in rows:
        a, b = ours[key], peer[key]
        fmt = (lambda v: f"{v:.3f}") if isinstance(a, float) else str
        print(f"{label:38}{fmt(a):>14}{fmt(b):>14}{(f'{a / b:.2f}x' if ratio else ''):>11}")
    for lang in corpus:
        for metric in ("bytes_per_token", "chars_per_token"):
            a, b = ours[f"compression_{lang}"][metric], peer[f"compression_{lang}"][metric]
            print(f"{f'{lang} {metric}':38}{a:>14.3f}{b:>14.3f}{a / b:>10.3f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
