"""Measuring decontamination: benchmark items planted into a real corpus, found or missed, by us and by datatrove.

Each sampled item is planted into one corpus document in one of four forms; every other document is untouched, so a
hit on one of them is a false positive (or a real overlap of the corpus with a benchmark, shown by `--show`):

* `verbatim`: the item as the evaluation prints it (fields on their own lines), alone, as an SFT record would be;
* `reformatted`: whitespace and punctuation changed: ASCII <-> CJK punctuation, option labels `(A)` / `Ａ．`, newlines
  -> spaces or tabs, spaces inserted after CJK characters and punctuation;
* `inside_document`: verbatim, in the middle of a longer corpus document of the item's script (Chinese items in
  Chinese documents);
* `question_only`: the question and the gold option's text but no option list, inside a document (partial copies:
  found only when the question carries at least `min_fraction` of the item's n-grams).

datatrove's `NGramsDecontFilter` runs on the same documents, with an index of the same item texts hashed by its
own `NGramsDecontIndexer.compute_hashes` (the indexer itself needs `lighteval`, which is not installed): with its
default English tokenizer (spaCy `en`, also not installed, splits datatrove's punctuation-free simplified text at
whitespace, so `str.split` stands in for it) and with our CJK-aware units.

    python -m deepseek_hf.data.decontam.planted --data ../shared/data --corpus ../shared/data/corpus/pretrain_mix.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import tempfile
import time
from types import SimpleNamespace

import numpy as np
from datatrove.data import Document
from datatrove.utils.word_tokenizers import WordTokenizer

from deepseek_hf.data.decontam.index import NGramIndex, Thresholds
from deepseek_hf.data.decontam.items import Item, load_items
from deepseek_hf.data.text import CJK_CHAR, count_cjk

VARIANTS = ("verbatim", "reformatted", "inside_document", "question_only")
_TO_ASCII = str.maketrans(
    {"，": ",", "。": ".", "：": ":", "？": "?", "；": ";", "（": "(", "）": ")", "“": '"', "”": '"'}
)
_TO_CJK = str.maketrans({",": "，", ".": "。", ":": "：", "?": "？", ";": "；", "(": "（", ")": "）"})


def _label(letter: str, rng: random.Random) -> str:
    return rng.choice([f"({letter}) ", f"{letter}、", f"{letter}：", f"{chr(0xFEE0 + ord(letter))}．"])


def _reformat(text: str, rng: random.Random) -> str:
    text = re.sub(r"(?m)^([A-H])\. ", lambda m: _label(m[1], rng), text)
    text = text.translate(_TO_ASCII if rng.random() < 0.5 else _TO_CJK)
    text = re.sub(r"\n", lambda m: rng.choice(["  ", " \n\n", "\t"]), text)
    # spaces after CJK characters and punctuation (inside an English word or a number they would make other words)
    return "".join(ch + (" " if _spaceable(ch) and rng.random() < 0.1 else "") for ch in text)


def _spaceable(ch: str) -> bool:
    return bool(CJK_CHAR.match(ch)) or not (ch.isalnum() or ch.isspace())


def render(item: Item, variant: str, rng: random.Random, host: str) -> str:
    """The text of a document holding `item` in form `variant` (`host`: the document it is planted into)."""
    if variant == "verbatim":
        return "\n".join(item.fields)
    if variant == "reformatted":
        return _reformat("\n".join(item.fields), rng)
    if variant == "inside_document" or len(item.fields) == 1:
        planted = "\n".join(item.fields)
    else:  # the question and the text of its first option, as "answer"
        planted = f"{item.fields[0]}\n答案：{item.fields[-1].split(chr(10))[0][3:]}"
    paragraphs = host.split("\n")
    cut = len(paragraphs) // 2
    return "\n".join([*paragraphs[:cut], planted, *paragraphs[cut:]])


def plant(items: list[Item], corpus: list[dict], per_variant: int, seed: int = 0) -> tuple[list[dict], dict]:
    """A copy of `corpus` with `per_variant` of `items` (sampled) planted per form, each into its own document of
    the item's script (over 300 characters); returns it and {document id: (item id, form)}."""
    rng = random.Random(seed)
    docs = [dict(d) for d in corpus]
    chinese = [i for i, d in enumerate(docs) if len(d["text"]) > 300 and count_cjk(d["text"]) > len(d["text"]) / 2]
    latin = [i for i, d in enumerate(docs) if len(d["text"]) > 300 and not count_cjk(d["text"])]
    truth, used = {}, set()
    for variant in VARIANTS:
        for item in rng.sample(items, per_variant):
            pool = chinese if count_cjk(" ".join(item.fields)) else latin
            host = rng.choice([i for i in pool if i not in used])
            used.add(host)
            docs[host]["text"] = render(item, variant, rng, docs[host]["text"])
            truth[docs[host]["id"]] = (item.id, variant)
    return docs, truth


class SpaceSplit(WordTokenizer):
    """What spaCy's English tokenizer makes of datatrove's simplified (punctuation-free) text: the space-separated
    words; a Chinese run without spaces is one token."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def datatrove_filter(items: list[Item], folder: str, tokenizer: WordTokenizer, n_grams: int = 12):
    """datatrove's `NGramsDecontFilter` over an index of the item texts hashed by its indexer's `compute_hashes`."""
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.hashing import create_hash_func

    config = NGramsDecontConfig(n_grams=n_grams)
    indexer = SimpleNamespace(config=config, tokenizer=tokenizer, hash_func=create_hash_func(config.hash_config))
    by_benchmark: dict[str, set] = {}
    for item in items:
        hashes = NGramsDecontIndexer.compute_hashes(indexer, "\n".join(item.fields))
        by_benchmark.setdefault(item.benchmark, set()).update(hashes)
    for benchmark, hashes in by_benchmark.items():
        np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(f"{folder}/{benchmark}.index.hashes")
    return NGramsDecontFilter(folder, config, language=tokenizer)


def score(found: dict[str, bool], truth: dict) -> dict:
    """Recall per planted form and false positives among the untouched documents."""
    result = {}
    for variant in VARIANTS:
        planted = [doc for doc, (_, form) in truth.items() if form == variant]
        result[variant] = f"{sum(found[d] for d in planted)}/{len(planted)}"
    clean = [doc for doc in found if doc not in truth]
    false = sum(found[d] for d in clean)
    result["false_positives"] = f"{false}/{len(clean)} ({100 * false / max(len(clean), 1):.3f}%)"
    return result


def evaluate(items: list[Item], docs: list[dict], truth: dict, ngram: int, thresholds: Thresholds) -> dict:
    """Ours and datatrove's filter (two tokenizers) on the same planted corpus; per method: recall per form, false
    positives, seconds and seconds per MB."""
    from deepseek_hf.data.text import CJKWordTokenizer

    megabytes = sum(len(d["text"].encode()) for d in docs) / 1e6
    start = time.perf_counter()
    index = NGramIndex.build(items, ngram)
    hits = [
        h for i in range(0, len(docs), 256) for h in index.match([d["text"] for d in docs[i : i + 256]], thresholds)
    ]
    seconds = time.perf_counter() - start
    results = {"ours": {**score({d["id"]: bool(h) for d, h in zip(docs, hits)}, truth), "seconds": seconds}}
    results["ours"]["hits"] = {d["id"]: [index.items[x.item]["id"] for x in h] for d, h in zip(docs, hits) if h}
    for name, tokenizer in (
        ("datatrove (spaCy-en-like tokens)", SpaceSplit()),
        ("datatrove + CJK units", CJKWordTokenizer()),
    ):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            step = datatrove_filter(items, folder, tokenizer)
            found = {d["id"]: step.filter(Document(d["text"], d["id"])) is not True for d in docs}
            results[name] = {**score(found, truth), "seconds": time.perf_counter() - start}
    for entry in results.values():
        entry["seconds_per_mb"] = round(entry["seconds"] / megabytes, 3)
        entry["seconds"] = round(entry["seconds"], 1)
    return results


def main(argv: list[str] | None = None) -> int:
    from deepseek_hf.data.config import DecontaminateConfig

    defaults = DecontaminateConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="benchmark folder laid out like shared/data")
    parser.add_argument("--corpus", required=True, help="JSONL(.gz) corpus with id and text")
    parser.add_argument("--benchmarks", default="cmmlu,ceval")
    parser.add_argument("--per-variant", type=int, default=50)
    parser.add_argument("--ngram", type=int, default=defaults.ngram)
    parser.add_argument("--min-fraction", type=float, default=defaults.min_fraction)
    parser.add_argument("--min-ngrams", type=int, default=defaults.min_ngrams)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="also list our hits on untouched documents")
    args = parser.parse_args(argv)
    with gzip.open(args.corpus, "rt", encoding="utf-8") if args.corpus.endswith(".gz") else open(args.corpus) as f:
        corpus = [json.loads(line) for line in f if line.strip()]
    items = load_items(args.benchmarks.split(","), args.data).items
    totals = NGramIndex.build(items, args.ngram).totals
    detectable = [item for item, total in zip(items, totals.tolist()) if total]  # the others are counted apart
    docs, truth = plant(detectable, corpus, args.per_variant, args.seed)
    results = evaluate(items, docs, truth, args.ngram, Thresholds(args.min_fraction, args.min_ngrams))
    hits = results["ours"].pop("hits")
    print(json.dumps({"items": len(items), "items_without_ngrams": len(items) - len(detectable), **results}, indent=2))
    if args.show:
        print(json.dumps({doc: ids for doc, ids in hits.items() if doc not in truth}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
