"""lm-eval's built-in `cmmlu` (letter scoring, `haonan-li/cmmlu` on the Hub) on local CSV files instead.

lm-eval lets a task in an include path override a built-in task of the same name. For each CMMLU subject whose files
are in the data folder this writes a two-line override: the built-in subject YAML itself (`include:` by absolute path,
so its prompt, shots and metrics stay lm-eval's) with `dataset_path: csv` and the local `data_files`, plus a `cmmlu`
group of the subjects found. How many of the 67 subjects were found is logged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)


def builtin_overrides(tasks: list[str], data_dir: str | None, scratch: Path) -> list[str]:
    """Extra include paths that point the requested built-in tasks at `data_dir` (none if nothing applies)."""
    if data_dir is None or not any(task == "cmmlu" or task.startswith("cmmlu_") for task in tasks):
        return []
    import lm_eval.tasks

    builtin = Path(lm_eval.tasks.__file__).resolve().parent / "cmmlu"
    all_subjects = sorted(path.stem.removeprefix("cmmlu_") for path in builtin.glob("cmmlu_*.yaml"))
    local = Path(data_dir) / "cmmlu"
    found = [
        s for s in all_subjects if (local / "test" / f"{s}.csv").is_file() and (local / "dev" / f"{s}.csv").is_file()
    ]
    if not found:
        raise FileNotFoundError(
            f"built-in cmmlu: no subject has both {local}/test/<subject>.csv and dev/<subject>.csv"
        )
    for task in tasks:
        if task.startswith("cmmlu_") and task.removeprefix("cmmlu_") not in found:
            raise FileNotFoundError(
                f"built-in {task}: {local}/test/{task.removeprefix('cmmlu_')}.csv (or dev/) is missing"
            )
    folder = scratch / "cmmlu_local"
    folder.mkdir(parents=True)
    for subject in found:
        override = {
            "include": str(builtin / f"cmmlu_{subject}.yaml"),
            "dataset_path": "csv",
            "dataset_name": None,
            "dataset_kwargs": {
                "data_files": {
                    "test": str(local / "test" / f"{subject}.csv"),
                    "dev": str(local / "dev" / f"{subject}.csv"),
                }
            },
        }
        (folder / f"cmmlu_{subject}.yaml").write_text(yaml.safe_dump(override, allow_unicode=True), encoding="utf-8")
    group = yaml.safe_load((builtin / "_cmmlu.yaml").read_text(encoding="utf-8"))
    group["task"] = [f"cmmlu_{subject}" for subject in found]
    (folder / "_cmmlu.yaml").write_text(yaml.safe_dump(group, allow_unicode=True), encoding="utf-8")
    logger.warning(
        "built-in cmmlu: %d of %d subjects have local files in %s; the group 'cmmlu' scores those %d",
        len(found),
        len(all_subjects),
        local,
        len(found),
    )
    return [str(folder)]
