"""The `deepseek-hf` command line: one sub-command group per part of the recipe.

Each group lives in its own module with a `main(argv, prog)` function (or the function named after a colon,
`module:function`); it is imported only when its group is run, so `deepseek-hf --help` stays fast and a broken
optional part cannot break the others. `pretrain`, `sft` and `dpo` run the recipe scripts of `recipes/` (installed
as `deepseek_hf.recipes`), the same code as `python recipes/<name>.py` (`deepseek_hf.recipe_cli`).

Errors are caught here once for every group: a user error (`deepseek_hf.utils.USER_ERRORS`: OSError, ValueError,
KeyError, ModuleNotFoundError, UnpicklingError, i.e. a wrong path, configuration or data file, a missing package)
ends in one `error:` line and exit status 1; programming errors keep their traceback. `deepseek-hf --debug ...`
(or DEEPSEEK_HF_DEBUG=1) shows the traceback of user errors too, also in groups that print their own errors.
"""

from __future__ import annotations

import importlib
import os
import sys

from .utils import DEBUG_ENV, USER_ERRORS, debug_requested, describe_error

# group name -> (module with `main(argv, prog)`, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "model": ("deepseek_hf.checkpoints.cli", "inspect presets, convert to/from Llama-format checkpoints"),
    "tokenizer": ("deepseek_hf.tokenizer.cli", "train a byte-level BPE tokenizer, rebuild the real one from GGUF"),
    "data": ("deepseek_hf.data.cli", "run the dedup / filter / remix data pipeline (datatrove)"),
    "eval": (
        "deepseek_hf.eval.cli",
        "evaluate a checkpoint on the paper's benchmarks with lm-eval (perplexity scoring)",
    ),
    "scaling": (
        "deepseek_hf.scaling.cli",
        "batch size, learning rate and model/data allocation from a compute budget",
    ),
    "chat": ("deepseek_hf.chat", "chat with a checkpoint (interactive, or --prompt for one answer), streamed"),
    "pretrain": ("deepseek_hf.recipe_cli:pretrain", "run the pretraining recipe (recipes/pretrain.py) --config ..."),
    "sft": ("deepseek_hf.recipe_cli:sft", "run the SFT recipe (recipes/sft.py) --config ..."),
    "dpo": ("deepseek_hf.recipe_cli:dpo", "run the DPO recipe (recipes/dpo.py) --config ..."),
}


def _usage() -> str:
    lines = ["usage: deepseek-hf [--debug] <command> [args ...]", "", "commands:"]
    lines += [f"  {name:<10} {description}" for name, (_, description) in COMMANDS.items()]
    lines += ["", "options:", "  --debug    show the traceback of an error (also: DEEPSEEK_HF_DEBUG=1)"]
    lines += ["", "Run `deepseek-hf <command> --help` for the arguments of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = False
    while argv and argv[0] == "--debug":
        debug, argv = True, argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"deepseek-hf: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    prog = f"deepseek-hf {name}"
    previous = os.environ.get(DEBUG_ENV)
    if debug:  # groups that print their own errors, and their worker processes, read it from the environment
        os.environ[DEBUG_ENV] = "1"
    try:
        module_name, _, function = COMMANDS[name][0].partition(":")
        module = importlib.import_module(module_name)  # inside: a missing optional dependency is a user error
        return int(getattr(module, function or "main")(rest, prog=prog) or 0)
    except USER_ERRORS as error:
        if debug or debug_requested():
            raise
        print(
            f"{prog}: error: {describe_error(error)}\n(run `deepseek-hf --debug {name} ...` for the traceback)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        if debug or debug_requested():
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        if debug:
            if previous is None:
                os.environ.pop(DEBUG_ENV, None)
            else:
                os.environ[DEBUG_ENV] = previous


if __name__ == "__main__":
    sys.exit(main())
