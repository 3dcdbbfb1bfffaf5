"""Benchmark items as text, read through the evaluation's own task definitions and loaders.

Which benchmarks, subjects and splits exist is read from the task YAMLs of `deepseek_hf.eval_tasks` (each task names
its loader arguments in `dataset_kwargs` and the split it scores in `test_split`), and the rows come from
`deepseek_hf.eval.benchmarks.load_benchmark`: the benchmark list and formats are defined once, by the evaluation.

An item is a few text *fields*; n-grams never cross a field, so whatever separates the fields in a training
document (option letters, a newline, "答案：") does not matter. The fields are what a copy of the item would show:

* exam-style items (mmlu, cmmlu, ceval, arc, openbookqa, race, c3, ccpm): the question (and its passage) and the
  options as one labelled block "A o1 B o2 ...", the way exams and the evaluation prompt print them;
* items whose wrong choices are written for the benchmark and never published as text (hellaswag endings,
  winogrande's other option, chid's other idioms, piqa's wrong solution): the original text with the gold choice
  (hellaswag: context + gold ending; winogrande: the sentence with the right option; chid: the passage with the
  right idiom; piqa: goal, then the gold solution).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deepseek_hf.data.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

LOADER = "deepseek_hf.eval.benchmarks.load_benchmark"
DEMO_DATA = "demo"
LABELS = "ABCDEFGH"


def _labelled(options: list[str]) -> str:
    return "\n".join(f"{LABELS[i]}. {option}" for i, option in enumerate(options))


def _abcd(row: dict) -> list[str]:
    return [row["question"], _labelled([row[letter] for letter in "ABCD"])]


# benchmark -> the text fields of one normalized row (`deepseek_hf.eval.benchmarks.FEATURES`); see the module docstring
ITEM_FIELDS: dict[str, Callable[[dict], list[str]]] = {
    "mmlu": _abcd,
    "cmmlu": _abcd,
    "ceval": _abcd,
    "arc": lambda r: [r["question"], _labelled(r["choices"])],
    "openbookqa": lambda r: [r["question"], _labelled(r["choices"])],
    "piqa": lambda r: [r["goal"], r["choices"][r["gold"]]],
    "hellaswag": lambda r: [f"{r['ctx']} {r['endings'][r['gold']]}"],
    "winogrande": lambda r: [f"{r['context_options'][r['gold']]} {r['continuation']}"],
    "race": lambda r: [r["article"], r["question"], _labelled(r["options"])],
    "c3": lambda r: [r["context"], r["question"], _labelled(r["choices"])],
    "chid": lambda r: [f"{r['prefix']}{r['candidates'][r['gold']]}{r['suffix']}"],
    "ccpm": lambda r: [r["translation"], _labelled(r["choices"])],
}


@dataclass(frozen=True)
class BenchmarkTask:
    """One evaluation task of a benchmark: the loader's subject and the splits it scores and draws shots from."""

    benchmark: str
    subject: str | None
    test_split: str
    fewshot_split: str | None


@dataclass(frozen=True)
class Item:
    id: str
    """`<benchmark>/[<subject>/]<split>/<row>` (row: 0-based, in the loader's order)."""
    benchmark: str
    fields: tuple[str, ...]


@dataclass
class BenchmarkItems:
    """Every item of the chosen benchmarks, with what could not be read (counted, never silent)."""

    items: list[Item] = field(default_factory=list)
    missing_subjects: dict[str, list[str]] = field(default_factory=dict)
    """benchmark -> subjects its tasks define but the data folder lacks (their items are not in the index)."""
    duplicates: dict[str, int] = field(default_factory=dict)
    """benchmark -> items whose text equals an earlier item's (e.g. a few-shot split that is another's test split)."""


class _TaskLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs, keeping a `!function a.b.c` as its dotted name."""


_TaskLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _task_config(path: Path, cache: dict) -> dict:
    """A task YAML with its `include` chain merged (the included file first, this one's keys over it)."""
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_TaskLoader) or {}
        base = _task_config((path.parent / data.pop("include")).resolve(), cache) if "include" in data else {}
        cache[path] = {**base, **data}
    return cache[path]


def benchmark_tasks(task_dir: str | None = None) -> dict[str, list[BenchmarkTask]]:
    """benchmark -> its tasks, from every task YAML that loads its data with `load_benchmark`."""
    from deepseek_hf.eval_tasks import task_dir as default_task_dir

    cache: dict = {}
    tasks: dict[str, list[BenchmarkTask]] = {}
    for path in sorted(Path(task_dir or default_task_dir()).rglob("*.yaml")):
        config = _task_config(path.resolve(), cache)
        kwargs = config.get("dataset_kwargs") or {}
        if "task" not in config or config.get("custom_dataset") != LOADER or "benchmark" not in kwargs:
            continue
        task = BenchmarkTask(
            kwargs["benchmark"], kwargs.get("subject"), config["test_split"], config.get("fewshot_split")
        )
        tasks.setdefault(task.benchmark, []).append(task)
    return tasks


def resolve_data_dir(data_dir: str | None, where: str = "decontaminate.data_dir") -> str | None:
    """`demo` -> the benchmark samples shipped with the package; a folder -> its absolute path; None -> the loaders'
    own default ($DEEPSEEK_HF_EVAL_DATA, else the Hub)."""
    if data_dir is None:
        return None
    if data_dir == DEMO_DATA:
        from deepseek_hf.eval.cli import resolve_data_dir as eval_data_dir

        return eval_data_dir(DEMO_DATA)
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise InputError(f"{where} {data_dir}: no such folder (expected one laid out like cmmlu/test/<subject>.csv)")
    return str(path.resolve())


def check_benchmark_names(benchmarks: list[str], where: str = "decontaminate.benchmarks") -> None:
    from deepseek_hf.eval.benchmarks import BENCHMARKS

    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown or not benchmarks:
        problem = f"unknown benchmark(s) {unknown}" if unknown else "no benchmark given"
        raise ConfigError(f"{where}: {problem}; valid: {', '.join(BENCHMARKS)}")


def _present_subjects(benchmark: str, data_dir: str | None) -> set[str] | None:
    """Subjects with files in the local folder (None: every subject, when the loader reads the Hub)."""
    from deepseek_hf.eval.benchmarks import ENV_VAR, SUBJECT_FILES, available_subjects

    if benchmark not in SUBJECT_FILES or not (data_dir or os.environ.get(ENV_VAR)):
        return None
    return set(available_subjects(benchmark, data_dir))


def load_items(benchmarks: list[str], data_dir: str | None, splits: str = "evaluated") -> BenchmarkItems:
    """The items of `benchmarks` from the splits their tasks score (`evaluated`), or those and the few-shot splits
    (`all`). A subject missing from the data folder is logged and listed; a benchmark with no data is an error."""
    from deepseek_hf.eval.benchmarks import BenchmarkDataError, load_benchmark

    check_benchmark_names(benchmarks)
    if splits not in ("evaluated", "all"):
        raise ConfigError(f"decontaminate.splits must be 'evaluated' or 'all', got {splits!r}")
    tasks = benchmark_tasks()
    result = BenchmarkItems()
    for benchmark in benchmarks:
        seen: set[tuple[str, ...]] = set()
        try:
            present = _present_subjects(benchmark, data_dir)
            chosen = [t for t in tasks.get(benchmark, []) if present is None or t.subject in present]
            missing = sorted(t.subject for t in tasks.get(benchmark, []) if t not in chosen)
            if not chosen:
                raise InputError(f"decontaminate: no {benchmark} items in {data_dir} (no subject of its tasks found)")
            for task in chosen:
                wanted = [task.test_split] + ([task.fewshot_split] if splits == "all" and task.fewshot_split else [])
                data = load_benchmark(benchmark, task.subject, data_dir)
                for split in dict.fromkeys(wanted):
                    prefix = "/".join(p for p in (benchmark, task.subject, split) if p)
                    for row_number, row in enumerate(data[split].to_list()):
                        fields = tuple(ITEM_FIELDS[benchmark](row))
                        if fields in seen:
                            result.duplicates[benchmark] = result.duplicates.get(benchmark, 0) + 1
                            continue
                        seen.add(fields)
                        result.items.append(Item(f"{prefix}/{row_number}", benchmark, fields))
        except BenchmarkDataError as error:
            raise InputError(f"decontaminate: {error}") from None
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            logger.warning(
                "decontaminate: %d %s subjects not in %s, not indexed: %s", len(missing), benchmark, data_dir, shown
            )
            result.missing_subjects[benchmark] = missing
    return result
