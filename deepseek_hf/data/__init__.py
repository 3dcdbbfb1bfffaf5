"""The DeepSeek LLM pretraining-data pipeline (dedup -> filter -> remix) on datatrove.

>>> from deepseek_hf.data import DataPipelineConfig, run_pipeline, load_output
>>> run_pipeline(DataPipelineConfig.demo())             # the embedded demo -> outputs/demo/data  # doctest: +SKIP
>>> ds = load_output("outputs/demo/data")               # a datasets.Dataset with a "text" column  # doctest: +SKIP

Command line: `deepseek-hf data run --config recipes/tiny/data/config_demo.yaml`. See `deepseek_hf/data/README.md`.
Names are imported lazily, so `from deepseek_hf.data import load_output` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DataPipelineConfig": "config",
    "InputConfig": "config",
    "DedupConfig": "config",
    "DecontaminateConfig": "config",
    "run_pipeline": "pipeline",
    "build_stages": "pipeline",
    "load_output": "output",
    "output_files": "output",
    "CJKWordTokenizer": "text",
    "JsonlDocReader": "readers",
    "ParquetDocReader": "readers",
    "DatasetDocReader": "readers",
    "InputValidator": "filters",
    "LanguageIDFilter": "filters",
    "QualityFilter": "filters",
    "RepetitionFilter": "filters",
    "DedupSignature": "dedup",
    "DedupBuckets": "dedup",
    "DedupClusters": "dedup",
    "DocDedupFilter": "dedup",
    "LineDedupSignature": "boilerplate",
    "LineDedupFinder": "boilerplate",
    "LineDedupFilter": "boilerplate",
    "DomainRemixer": "remix",
    "remix_rates": "remix",
    "DecontaminationFilter": "decontam",
    "NGramIndex": "decontam",
    "Ledger": "ledger",
    "evaluate_near_dedup": "dedup.quality",
    "DataPipelineError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
