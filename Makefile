# Two commands on a fresh machine (Python 3.11, pip, gcc):
#   make demo   creates .venv, installs the package, runs the main job on the embedded default data (CPU, minutes)
#   make test   creates .venv, installs the package, runs the whole test suite (slow end-to-end tests included)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build. GPU users: make TORCH_SPEC='torch>=2.6,<2.14'
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo scaling-demo scaling-quality-demo scaling-schedule-demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip

$(VENV)/.installed: setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The main job on the embedded default (shipped data, CPU): data pipeline -> tokenizer -> pretraining -> generation
# -> evaluation (six shipped benchmark samples, scored by perplexity as the paper does, beside its published scores)
# -> alignment: SFT stage 1 (all shipped instruction data) -> repetition ratio -> SFT stage 2 (dialogue only) ->
# repetition ratio -> DPO -> one greedy chat answer.
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
	$(BIN)/python recipes/sft.py --config recipes/tiny/sft/stage1.yaml
	$(BIN)/deepseek-hf eval repetition --model $(DEMO)/sft-stage1 --prompts demo --max-new-tokens 256 \
		--output $(DEMO)/repetition-stage1.json
	$(BIN)/python recipes/sft.py --config recipes/tiny/sft/stage2.yaml
	$(BIN)/deepseek-hf eval repetition --model $(DEMO)/sft-stage2 --prompts demo --max-new-tokens 256 \
		--output $(DEMO)/repetition-stage2.json
	$(BIN)/python recipes/dpo.py --config recipes/tiny/dpo/config.yaml
	$(BIN)/deepseek-hf chat $(DEMO)/dpo --prompt "Who are you?" --max-new-tokens 64

# The scaling study of paper section 3 at CPU scale, on the shipped corpus (about 30 minutes on 2 cores): IsoFLOP
# profiles at 3 budgets, the laws fitted to them, then a larger run whose loss the fit predicted before it started
# (outputs/scaling-demo/prediction.json). Re-running resumes: finished runs are not redone (rm -rf the folder to
# start afresh). The reduced study: make scaling-demo SCALING_CONFIG=recipes/tiny/scaling/ci.yaml SCALING=outputs/scaling-ci
SCALING_CONFIG ?= recipes/tiny/scaling/isoflop_cpu.yaml
SCALING ?= outputs/scaling-demo
scaling-demo: install
	$(BIN)/python recipes/scaling_sweep.py --config $(SCALING_CONFIG) --output_dir $(SCALING)
	$(BIN)/deepseek-hf scaling fit $(SCALING)/results.jsonl --output $(SCALING)/fits.json
	$(BIN)/deepseek-hf scaling plot $(SCALING)/results.jsonl --output-dir $(SCALING)/plots

# Table 4 at CPU scale: the same IsoFLOP study on the shipped corpus and on a copy with half its documents' words
# shuffled, a and b of each beside the paper's (outputs/scaling-quality/table4.md; docs/scaling.md has the figures).
QUALITY := outputs/scaling-quality
scaling-quality-demo: install
	$(BIN)/deepseek-hf scaling degrade-corpus package://demo/corpus_sample.jsonl.gz \
		$(QUALITY)/corpus-shuffled.jsonl --shuffle-fraction 0.5
	$(BIN)/python recipes/scaling_sweep.py --config recipes/tiny/scaling/quality_cpu.yaml
	$(BIN)/deepseek-hf scaling fit $(QUALITY) --table $(QUALITY)/table4.md
	$(BIN)/deepseek-hf scaling plot $(QUALITY) --output-dir $(QUALITY)

# Figure 1b at CPU scale: one model and budget under the 80/10/10, 90/10/0 and 70/15/15 multi-step schedules, the
# loss curves of all three in one figure (outputs/scaling-schedule/schedule_curves.png).
SCHEDULE := outputs/scaling-schedule
scaling-schedule-demo: install
	$(BIN)/python recipes/scaling_sweep.py --config recipes/tiny/scaling/schedule_cpu.yaml
	$(BIN)/deepseek-hf scaling schedules $(SCHEDULE)/results.jsonl --output-dir $(SCHEDULE)

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
	$(BIN)/python benchmarks/bench_align.py
	$(BIN)/python benchmarks/bench_tokenize.py

clean:
	rm -rf $(VENV) build dist *.egg-info outputs
