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

# The main job on the embedded default (shipped data, CPU): data pipeline -> tokenizer -> pretraining -> generation
# -> evaluation (six shipped benchmark samples, scored by perplexity as the paper does, beside its published scores).
# Each run starts afresh in outputs/demo/ (recipes/README.md explains the stages).
DEMO := outputs/demo
DEMO_EVAL_TASKS := deepseek_hellaswag,deepseek_piqa,deepseek_winogrande,deepseek_arc_easy,deepseek_arc_challenge,deepseek_openbookqa
demo: install
	rm -rf $(DEMO)
	$(BIN)/python recipes/prepare_data.py --config recipes/tiny/data/config_demo.yaml
	$(BIN)/deepseek-hf tokenizer train $(DEMO)/data/output --vocab-size 4000 --output-dir $(DEMO)/tokenizer
	$(BIN)/python recipes/pretrain.py --config recipes/tiny/pretrain/config_cpu.yaml
	$(BIN)/deepseek-hf model generate $(DEMO)/pretrain --prompt "First Citizen:" --prompt "春眠不觉晓，"
	$(BIN)/deepseek-hf eval run $(DEMO)/pretrain --data demo --device cpu --output-dir $(DEMO)/eval \
		--tasks $(DEMO_EVAL_TASKS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each benchmark prints ours vs a peer measured in the same command (figures: benchmarks/README.md).
bench: install
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_tokenizer.py
	$(BIN)/python benchmarks/bench_dedup.py
	$(BIN)/python benchmarks/bench_pretrain.py
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) build dist *.egg-info outputs
