"""The runnable examples in the data modules' docstrings stay true."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["text", "config", "filters", "dedup.quality"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(f"deepseek_hf.data.{module}"))
    assert result.attempted > 0 and result.failed == 0
