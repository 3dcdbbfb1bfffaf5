"""`deepseek-hf pretrain|sft|dpo --config ...`: the recipe scripts, run from the installed package.

The scripts of `recipes/` are installed as `deepseek_hf.recipes.<name>` (setup.py maps the folder, its YAMLs and
accelerate configs as package data), so a `pip install` user runs the very code that `python recipes/<name>.py`
runs, as `trl sft` runs TRL's own script. The one addition: `--config` also takes the name of a shipped config,
relative to the recipes folder, with or without `.yaml`:

    deepseek-hf pretrain --config tiny/pretrain/config_cpu                 # = recipes/tiny/pretrain/config_cpu.yaml
    deepseek-hf pretrain --config my_run.yaml --max_tokens 2e6             # an existing file wins over a name
    accelerate launch --config_file ZERO1.yaml -m deepseek_hf.cli pretrain --config deepseek-llm-7b/pretrain/config_full

An unknown name is an error listing the shipped configs; every other argument goes to the script unchanged (`--help`
is the script's).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from importlib import resources
from pathlib import Path

PACKAGE = "deepseek_hf.recipes"
CONFIG_SUFFIXES = (".yaml", ".yml")


def recipes_root() -> Path:
    """The folder of the installed recipes (the repository's `recipes/` in an editable install)."""
    return Path(str(resources.files(PACKAGE)))


def shipped_configs(stage: str | None = None) -> list[str]:
    """Names of the shipped recipe configs (`tiny/pretrain/config_cpu.yaml`, ...), accelerate's excluded; with
    `stage`, those in a `<model>/<stage>/` folder only (`pretrain`, `sft`, `dpo`, `data`)."""
    root = recipes_root()
    names = (path.relative_to(root) for path in root.rglob("*") if path.suffix in CONFIG_SUFFIXES)
    return sorted(
        name.as_posix()
        for name in names
        if name.parts[0] != "accelerate_configs" and (stage is None or stage in name.parts[1:-1])
    )


def resolve_config(value: str, stage: str | None = None) -> str:
    """An existing file as given; else the shipped config of that name (`.yaml` optional); else a FileNotFoundError
    listing the shipped names (of `stage`'s recipe, when it has any)."""
    if Path(value).is_file():
        return value
    root = recipes_root()
    for name in (value, *(value + suffix for suffix in CONFIG_SUFFIXES)):
        if name.endswith(CONFIG_SUFFIXES) and (root / name).is_file():
            return str(root / name)
    shipped = shipped_configs(stage) or shipped_configs()
    raise FileNotFoundError(
        f"--config {value}: no such file, and no shipped config of that name; shipped {stage + ' ' if stage else ''}"
        f"configs (in {root}): " + ", ".join(name.rsplit(".", 1)[0] for name in shipped)
    )


def _resolve_config_argument(argv: list[str], stage: str | None = None) -> list[str]:
    """`--config NAME` / `--config=NAME` with NAME resolved; the rest of argv as it was."""
    argv = list(argv)
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--config" and index + 1 < len(argv):
            argv[index + 1] = resolve_config(argv[index + 1], stage)
        elif arg.startswith("--config="):
            argv[index] = "--config=" + resolve_config(arg.partition("=")[2], stage)
    return argv


def run_recipe(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run `deepseek_hf.recipes.<name>.cli(argv)` with `--config` resolved; its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    module_name = f"{PACKAGE}.{name}"
    if importlib.util.find_spec(module_name) is None:
        raise FileNotFoundError(f"the {name} recipe is not installed ({recipes_root() / (name + '.py')} is missing)")
    script = importlib.import_module(module_name)
    argv = _resolve_config_argument(argv, stage=name)
    if prog is not None and "prog" in inspect.signature(script.cli).parameters:
        return int(script.cli(argv, prog=prog) or 0)
    return int(script.cli(argv) or 0)


def pretrain(argv: list[str] | None = None, prog: str | None = "deepseek-hf pretrain") -> int:
    return run_recipe("pretrain", argv, prog)


def sft(argv: list[str] | None = None, prog: str | None = "deepseek-hf sft") -> int:
    return run_recipe("sft", argv, prog)


def dpo(argv: list[str] | None = None, prog: str | None = "deepseek-hf dpo") -> int:
    return run_recipe("dpo", argv, prog)
