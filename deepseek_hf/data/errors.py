"""Errors a user can fix: a bad configuration value, a missing input, a run folder that must not be touched.

`deepseek-hf data ...` prints these as one line and exits non-zero (`--debug` shows the traceback); each also
derives from the built-in exception a caller would expect (`ValueError`, `FileNotFoundError`, ...).
"""

from __future__ import annotations

#: `Document.metadata` key of an unusable input line (the reason): readers set it, `InputValidator` drops, counts
#: and audits the document. Here, not in readers.py, so that the filters need not import the readers (and with them
#: the config, which imports the filters).
INPUT_ERROR = "_input_error"
#: audit copies of unusable lines are cut to this many characters
AUDIT_CHARS = 10_000


class DataPipelineError(Exception):
    """Base class: the message alone tells the user what to change."""


class ConfigError(DataPipelineError, ValueError):
    """An invalid configuration key or value (the message names the key)."""


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value of the wrong type (the message names the key, the expected type and the value)."""


class InputNotFoundError(DataPipelineError, FileNotFoundError):
    """A local input matches no file."""


class RunFolderError(DataPipelineError, FileExistsError):
    """`output_dir` holds something a run must not delete: a foreign folder, or a run of another configuration."""


class StageFailedError(DataPipelineError, RuntimeError):
    """A pipeline stage failed; its datatrove logs (named in the message) hold the tasks' tracebacks."""


class InputError(DataPipelineError, ValueError):
    """An input that holds nothing usable (e.g. no documents to evaluate)."""
