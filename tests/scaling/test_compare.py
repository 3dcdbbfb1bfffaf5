"""Table 4: the IsoFLOP fit of several corpora side by side recovers each corpus's own exponents (synthetic results
drawn from different laws), says whether a rises between them beyond the noise, and reaches the command line."""

import json

import numpy as np
import pytest
from scaling_synthetic import _row

from deepseek_hf.cli import main as deepseek_hf_main
from deepseek_hf.scaling.compare import (
    PAPER_TABLE_4,
    corpora_table,
    exponent_trend,
    fit_corpora,
    resolve_corpus_results,
)
from deepseek_hf.scaling.results import write_results

BUDGETS = (1e13, 3e13, 1e14, 3e14, 1e15)
# two "corpora" drawn from the paper's early-data and OpenWebText2 exponents (Table 4), other coefficients
LAWS = {"early": (0.450, 0.9), "owt2": (0.578, 0.05)}


def corpus_rows(a, k, *, seed, budgets=BUDGETS, n=7, noise=0.002):
    """IsoFLOP rows whose minimum follows M_opt = k C^a: bpb = 5 C^-0.05 + 0.15 (log10 M / M_opt)^2 + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        x_opt = np.log10(k * budget**a)
        for i, x in enumerate(x_opt + np.linspace(-0.6, 0.6, n)):
            bpb = 5 * budget**-0.05 + 0.15 * (x - x_opt) ** 2 + noise * rng.standard_normal()
            rows.append(_row(f"iso-{budget:.0e}-{i}", "isoflop", budget, 10.0**x, budget / 10.0**x, 4096, 1e-3, bpb))
    return rows


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    paths = {}
    for seed, (name, (a, k)) in enumerate(LAWS.items()):
        paths[name] = root / name / "results.jsonl"
        write_results(paths[name], corpus_rows(a, k, seed=seed))
    return paths


def test_each_corpus_gets_its_own_exponents_back(tables):
    result = fit_corpora({name: str(path) for name, path in tables.items()}, n_bootstrap=200, seed=0)
    assert list(result.fits) == ["early", "owt2"] and not result.not_fitted
    for name, (a, _) in LAWS.items():
        fit = result.fits[name]
        a_hat, b_hat = fit.model_scale.exponent, fit.data_scale.exponent
        assert abs(a_hat.value - a) < 3 * a_hat.std and a_hat.std < 0.03, (name, a_hat)
        assert abs(b_hat.value - (1 - a)) < 3 * b_hat.std
    (step,) = exponent_trend(result.fits)
    assert step.significant and step.difference == pytest.approx(0.128, abs=3 * step.std)
    assert "a rises" in str(step)


def test_same_law_twice_is_not_called_a_change():
    """Two corpora drawn from one law with different noise: the trend must not claim a difference."""
    result = fit_corpora(
        {"one": corpus_rows(0.5, 0.2, seed=1), "two": corpus_rows(0.5, 0.2, seed=2)}, n_bootstrap=200, seed=0
    )
    (step,) = exponent_trend(result.fits)
    assert not step.significant and "does not change significantly" in str(step)


def test_table_puts_the_papers_rows_beside_ours(tables):
    result = fit_corpora(dict(tables), n_bootstrap=50, seed=0)
    table = corpora_table(result)
    lines = table.splitlines()
    assert lines[0].startswith("| approach | a (M_opt ∝ C^a) | b (D_opt ∝ C^b) |")
    for name, a, b in PAPER_TABLE_4:
        assert f"| {name} | {a:.3f} | {b:.3f} |" in table
    early = next(line for line in lines if line.startswith("| early |"))
    assert f"{result.fits['early'].model_scale.exponent.value:.3f} ± " in early and "| 5 | 35 |" in early
    assert any(line.startswith("- early -> owt2: a rises") for line in lines)


def test_a_corpus_without_a_fit_stays_in_the_table_with_the_reason(tables):
    one_budget = corpus_rows(0.5, 0.2, seed=3, budgets=(1e14,))
    result = fit_corpora({"thin": one_budget, "owt2": str(tables["owt2"])}, n_bootstrap=20)
    assert list(result.fits) == ["owt2"] and "at least 2 usable budgets" in result.not_fitted["thin"]
    assert "| thin | not fitted | not fitted |" in corpora_table(result)
    with pytest.raises(ValueError, match="no corpus could be fitted: thin: .*2 usable budgets"):
        fit_corpora({"thin": one_budget}, n_bootstrap=0)


def test_results_named_by_folder_by_name_or_by_study(tables, tmp_path):
    early, owt2 = str(tables["early"]), str(tables["owt2"])
    assert resolve_corpus_results([early, owt2]) == {"early": early, "owt2": owt2}
    assert resolve_corpus_results([f"low={owt2}", f"high={early}"]) == {"low": owt2, "high": early}
    with pytest.raises(ValueError, match="two results tables are named 'early'"):
        resolve_corpus_results([early, early])
    study = tables["early"].parent.parent
    (study / "corpora.json").write_text(json.dumps({"corpora": {
        "owt2": {"dataset_path": "x", "results": "owt2/results.jsonl"},
        "early": {"dataset_path": "y", "results": "early/results.jsonl"}}}))  # fmt: skip
    assert list(resolve_corpus_results([str(study)])) == ["owt2", "early"]  # the config's order
    with pytest.raises(FileNotFoundError, match="without corpora.json"):
        resolve_corpus_results([str(tmp_path)])


def test_cli_fit_and_plot_several_corpora(tables, tmp_path, capsys):
    table, output = tmp_path / "table4.md", tmp_path / "fits.json"
    argv = ["scaling", "fit", str(tables["early"]), str(tables["owt2"]), "--bootstrap", "50"]
    assert deepseek_hf_main([*argv, "--table", str(table), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed == table.read_text() and "| Ours (OpenWebText2) | 0.578 | 0.422 |" in printed
    data = json.loads(output.read_text())
    assert data["corpora"] == ["early", "owt2"] and data["trend"][0]["significant"] is True
    assert abs(data["fits"]["owt2"]["model_scale"]["exponent"]["value"] - 0.578) < 0.03
    plots = tmp_path / "plots"
    assert deepseek_hf_main(["scaling", "plot", f"early={tables['early']}", f"owt2={tables['owt2']}",
                             "--bootstrap", "20", "--output-dir", str(plots)]) == 0  # fmt: skip
    assert sorted(p.name for p in plots.iterdir()) == [
        "corpora_allocation.png",
        "isoflop_early.png",
        "isoflop_owt2.png",
    ]


def test_cli_table_needs_several_corpora(tables, capsys):
    assert deepseek_hf_main(["scaling", "fit", str(tables["early"]), "--table", "t.md", "--bootstrap", "0"]) == 1
    assert "--table writes the comparison of several corpora" in capsys.readouterr().err
