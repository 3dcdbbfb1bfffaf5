# Two commands on a fresh machine (Python 3.11, pip, gcc):
#   make demo   creates .venv, installs the package, runs the main job on the embedded default data (CPU, minutes)
#   make test   creates .venv, installs the package, runs the whole test suite (slow end-to-end tests included)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build. GPU users: make TORCH_SPEC='torch>=2.6,<2.14'
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip

$(VENV)/.installed: setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m deepseek_hf.demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/bench_model.py

clean:
	rm -rf $(VENV) build dist *.egg-info outputs
