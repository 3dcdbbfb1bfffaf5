"""`deepseek-hf scaling fit|plot RESULTS`: the fitted laws next to the paper's, figures, and one-line errors."""

import json
import re

import pytest
from scaling_synthetic import TRUE_A, grid_rows, isoflop_rows, predict_row

from deepseek_hf.cli import main as deepseek_hf_main
from deepseek_hf.scaling.results import csv_path_for, write_results


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "results.jsonl"
    budgets = (1e13, 1e14, 1e15)
    write_results(path, isoflop_rows(budgets) + grid_rows(budgets) + [predict_row(error=0.02)])
    return path


def test_fit_prints_every_coefficient_next_to_the_paper(table, tmp_path, capsys):
    output = tmp_path / "fits.json"
    argv = ["scaling", "fit", str(table), "--output", str(output), "--bootstrap", "50", "--seed", "1"]
    assert deepseek_hf_main(argv) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "0.5243" in lines["M_opt exponent"] and "±" in lines["M_opt exponent"]  # fitted ± std ... paper
    assert "0.3271" in lines["B_opt exponent"] and "-0.125" in lines["eta_opt exponent"]
    error = re.search(r"error (\S+)%", lines["predict predict-1e16 (C=1e+16)"]).group(1)
    assert float(error) == pytest.approx(-100 * 0.02 / 1.02, abs=0.3)  # measured 2% above the law's truth
    fits = json.loads(output.read_text())
    exponent = fits["isoflop"]["model_scale"]["exponent"]
    assert abs(exponent["value"] - TRUE_A) < 3 * exponent["std"]
    assert fits["bootstrap"] == {"n": 50, "seed": 1, "confidence": 0.95}
    assert not [p for p in tmp_path.iterdir() if p.name != "fits.json"]  # written atomically


def test_fit_json_from_the_csv_copy(table, capsys):
    assert deepseek_hf_main(["scaling", "fit", str(csv_path_for(table)), "--bootstrap", "0", "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)
    assert fits["n_runs"] == {"grid": 147, "isoflop": 21, "predict": 1}
    assert fits["isoflop"]["model_scale"]["exponent"]["std"] is None


def test_plot_writes_the_figures(tmp_path, capsys):
    table = tmp_path / "results.jsonl"
    write_results(table, isoflop_rows((1e13, 1e14)))  # the five figures are checked in test_plots.py
    out_dir = tmp_path / "plots"
    assert deepseek_hf_main(["scaling", "plot", str(table), "--output-dir", str(out_dir), "--bootstrap", "0"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["isoflop.png", "loss_law.png", "optimal_allocation.png"]
    assert capsys.readouterr().out.count("wrote ") == 3


def test_warnings_go_to_stderr(tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    write_results(path, isoflop_rows((1e13, 1e14)) + isoflop_rows((1e15,), shift=0.7))
    assert deepseek_hf_main(["scaling", "fit", str(path), "--bootstrap", "0"]) == 0
    captured = capsys.readouterr()
    assert "warning: IsoFLOP, budget 1e+15: the minimum is at the edge" in captured.err
    assert "IsoFLOP C=1e+15 (edge)" in captured.out
    assert "grid: not fitted" in captured.out


def test_bad_tables_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    torn = tmp_path / "torn.jsonl"
    torn.write_text(json.dumps(isoflop_rows((1e13,))[0])[:40])
    one_budget = tmp_path / "one.jsonl"
    write_results(one_budget, isoflop_rows((1e13,)))
    cases = [
        (tmp_path / "missing.jsonl", "no results table"),
        (empty, "empty"),
        (torn, "torn write"),
        (one_budget, "nothing could be fitted.*at least 2 usable budgets, got 1"),
    ]
    for path, message in cases:
        assert deepseek_hf_main(["scaling", "fit", str(path), "--bootstrap", "0"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("deepseek-hf scaling: error: ")
        assert re.search(message, err), err
    assert deepseek_hf_main(["scaling", "fit", str(one_budget), "--bootstrap", "-1"]) == 1
    assert "--bootstrap must be >= 0" in capsys.readouterr().err
