"""What `recipes/sft.py` and `recipes/dpo.py` share: the parser, logging, and the CLI convention (a user error is
one `error:` line and exit code 1; `--debug` or DEEPSEEK_HF_DEBUG=1 shows the traceback)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import transformers
from trl import TrlParser

from ..utils import USER_ERRORS, debug_requested, describe_error

__all__ = ["run_recipe", "setup_logging"]


def setup_logging(training_args, module_name: str) -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    for name in (module_name, "deepseek_hf"):
        logging.getLogger(name).setLevel(logging.INFO if training_args.should_log else logging.WARNING)


def _take_debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """Remove a bare `--debug` (show tracebacks); `--debug <option>` stays TrainingArguments' debug option."""
    for index, arg in enumerate(argv):
        if arg == "--debug" and (index + 1 == len(argv) or argv[index + 1].startswith("-")):
            return argv[:index] + argv[index + 1 :], True
    return argv, False


def run_recipe(prog: str, dataclass_types: tuple, main: Callable, argv: list[str] | None, doc: str) -> int:
    """Parse `--config YAML` + flags strictly with `TrlParser` into `dataclass_types`, run `main(*parsed)`."""
    argv, debug = _take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    parser = TrlParser(dataclass_types, prog=prog, description=doc.split("\n\n")[0])
    try:
        main(*parser.parse_args_and_config(argv))
    except USER_ERRORS as error:  # the configuration, a path or the data
        if debug or debug_requested():
            raise
        print(f"{prog}: error: {describe_error(error)}\n(--debug shows the traceback)", file=sys.stderr)
        return 1
    return 0
