"""The reduced CPU study end to end (slow): real tiny pretraining runs -> results table -> fits -> plots.

recipes/tiny/scaling/ci.yaml made smaller still: a batch/LR grid (2 budgets x 3 learning rates on a 1-layer,
d_model 16 model, sequences of 64, a 600-document slice of the shipped corpus), with the runs in this process (the
pretraining recipe's own `cli`), so that it costs seconds, not an interpreter start-up per run. A grid, not IsoFLOP
profiles: at budgets this small the smallest model wins every profile (measured: 3.70 / 4.43 / 4.56 bpb for
d_model 16 / 32 / 48 at 2e9 FLOPs), so an IsoFLOP fit has no interior minimum to find, whereas the grid fit always
has a near-optimal region. The IsoFLOP path, the predicted run and the one-process-per-run launcher are tested with
a stand-in recipe on a known loss surface in test_sweep.py.
"""

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from deepseek_hf.scaling.cli import main as scaling_cli
from deepseek_hf.scaling.results import read_results
from deepseek_hf.scaling.sweep import load_config, run_sweep

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"


def _pretrain_cli():
    spec = importlib.util.spec_from_file_location("pretrain_recipe", REPO / "recipes" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cli


@pytest.mark.slow
def test_reduced_study_end_to_end(tmp_path):
    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(CORPUS, "rt", encoding="utf-8") as source, gzip.open(corpus, "wt", encoding="utf-8") as out:
        for _, line in zip(range(600), source):
            out.write(line)
    base = tmp_path / "base.yaml"
    base.write_text((REPO / "recipes/tiny/scaling/pretrain_base.yaml").read_text().replace(
        "package://demo/corpus_sample.jsonl.gz", str(corpus)) + "use_cpu: true\n")  # fmt: skip
    config = load_config(
        REPO / "recipes/tiny/scaling/ci.yaml",
        {
            "base_config": str(base),
            "output_dir": str(tmp_path / "study"),
            "pretrain_script": str(REPO / "recipes" / "pretrain.py"),
            "kind": "grid",
            "budgets": [6e8, 2e9],
            "predict_budget": None,
            "batch_tokens": [512],
            "learning_rates": [3e-3, 1e-2, 3e-2],
            "n_layer": 1,
            "d_model": 16,
            "seq_length": 64,
            "head_dim": 16,
            "ffn_multiple_of": 16,
            "min_steps": 10,
            "tokenizer_corpus": str(corpus),
            "tokenizer_vocab_size": 500,
        },
    )
    pretrain = _pretrain_cli()
    launched = []

    def runner(command, log_path, timeout):
        launched.append(log_path.stem)
        return pretrain(command[command.index(config.pretrain_script) + 1 :])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what the study's run_env does per process: one thread is faster for these models
    try:
        report = run_sweep(config, runner=runner)
    finally:
        torch.set_num_threads(threads)
    assert not report.failed, report.summary()
    rows = read_results(config.results_path)
    assert len(rows) == 6 and len(launched) == 6 and {row["kind"] for row in rows} == {"grid"}
    for row in rows:
        assert 0 < row["eval_bpb"] < 8 and row["tokens"] * row["model_scale"] >= row["budget"]
        assert row["vocab_size"] >= 515 and Path(row["output_dir"], "model.safetensors").is_file()
        assert row["batch_size"] == 512 and row["n_layer"] == 1 and row["d_model"] == 16
    assert read_results(config.results_path.with_suffix(".csv")) == rows

    assert run_sweep(config, runner=runner).skipped and len(launched) == 6  # resumed: nothing re-run

    fits_path = tmp_path / "fits.json"
    assert scaling_cli(["fit", str(config.results_path), "--bootstrap", "20", "--output", str(fits_path)]) == 0
    fits = json.loads(fits_path.read_text())
    assert fits["grid"] is not None and fits["n_runs"]["grid"] == 6
    plots = tmp_path / "plots"
    assert scaling_cli(["plot", str(config.results_path), "--bootstrap", "20", "--output-dir", str(plots)]) == 0
    assert {"grid_heatmap.png", "grid_fits.png"} <= {path.name for path in plots.iterdir()}
