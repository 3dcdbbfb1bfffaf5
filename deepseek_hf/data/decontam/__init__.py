"""Benchmark decontamination: drop or flag training documents that share long n-grams with benchmark items.

The paper (DeepSeek LLM, arXiv 2401.02954, section 4) removed from its SFT data whatever overlapped the C-Eval
validation set and the CMMLU test set. Here the items of any benchmark of `deepseek_hf.eval` are read through the
evaluation's own task definitions and loaders (`items`), their CJK-aware n-grams indexed (`index`), and a datatrove
filter drops or flags the documents that hit an item, with a report of which items each benchmark lost to which
documents (`steps`); `records` applies the same step to SFT / DPO JSONL files.

>>> from deepseek_hf.data.decontam import NGramIndex, DecontaminationFilter      # doctest: +SKIP
>>> index = NGramIndex.from_benchmarks(["cmmlu", "ceval"], "../shared/data", ngram=13)  # doctest: +SKIP

Pipeline: a `decontaminate:` section in the data config; JSONL: `deepseek-hf data decontaminate`. See
`deepseek_hf/data/README.md` ("Benchmark decontamination").
"""

from deepseek_hf.data.decontam.index import NGramIndex, Thresholds
from deepseek_hf.data.decontam.items import ITEM_FIELDS, benchmark_tasks, load_items
from deepseek_hf.data.decontam.steps import DecontaminationFilter, DecontaminationReport

__all__ = [
    "ITEM_FIELDS",
    "DecontaminationFilter",
    "DecontaminationReport",
    "NGramIndex",
    "Thresholds",
    "benchmark_tasks",
    "load_items",
]
