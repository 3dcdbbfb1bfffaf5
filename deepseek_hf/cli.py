"""The `deepseek-hf` command line: one sub-command group per part of the recipe.

Each group lives in its own module with a `main(argv, prog)` function; it is imported only when its group is
run, so `deepseek-hf --help` stays fast and a broken optional part cannot break the others.
"""

from __future__ import annotations

import importlib
import sys

# group name -> (module with `main(argv, prog)`, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "model": ("deepseek_hf.model_cli", "inspect presets, convert to/from Llama-format checkpoints"),
    "tokenizer": ("deepseek_hf.tokenizer.cli", "train a byte-level BPE tokenizer, rebuild the real one from GGUF"),
    "data": ("deepseek_hf.data.cli", "run the dedup / filter / remix data pipeline (datatrove)"),
    "scaling": (
        "deepseek_hf.scaling.cli",
        "batch size, learning rate and model/data allocation from a compute budget",
    ),
}


def _usage() -> str:
    lines = ["usage: deepseek-hf <command> [args ...]", "", "commands:"]
    lines += [f"  {name:<10} {description}" for name, (_, description) in COMMANDS.items()]
    lines += ["", "Run `deepseek-hf <command> --help` for the arguments of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"deepseek-hf: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest, prog=f"deepseek-hf {name}") or 0)


if __name__ == "__main__":
    sys.exit(main())
