"""The scaling-law fits recover known laws from noisy synthetic results, with honest uncertainties, and refuse or
flag degenerate input."""

import json
import math

import numpy as np
import pytest
from scaling_synthetic import (
    K_L,
    K_M,
    TRUE_A,
    TRUE_ALPHA,
    TRUE_B_EXP,
    TRUE_ETA_EXP,
    _row,
    grid_rows,
    isoflop_rows,
    optimal_bpb,
    predict_row,
)

from deepseek_hf.scaling.fits import fit_grid, fit_isoflop, fit_loss_law, fit_results
from deepseek_hf.scaling.laws import MODEL_SCALE_LAW


def within(estimate, truth, sigmas=3.0):
    return abs(estimate.value - truth) < sigmas * estimate.std


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isoflop_recovers_the_allocation_exponents(seed):
    fit = fit_isoflop(isoflop_rows(seed=seed), n_bootstrap=200, seed=seed)
    a, b = fit.model_scale.exponent, fit.data_scale.exponent
    assert 0 < a.std < 0.02 and within(a, TRUE_A)  # sigma small enough to mean something
    assert 0 < b.std < 0.02 and within(b, 1 - TRUE_A)
    assert a.low < a.value < a.high
    assert fit.exponent_sum.value == pytest.approx(1.0, abs=1e-9)  # D_opt = C / M_opt makes a + b = 1
    assert within(fit.model_scale.coefficient, K_M)
    for curve in fit.curves:
        assert curve.used and not curve.at_edge
        assert math.log10(curve.model_scale_opt / (K_M * curve.budget**TRUE_A)) == pytest.approx(0, abs=0.05)
        assert curve.tokens_opt * curve.model_scale_opt == pytest.approx(curve.budget)
    assert fit.warnings == ()


def test_isoflop_against_the_chinchilla_closed_form():
    """Independent oracle: for L = E + A/M^p + B/D^q with D = C/M, the exact optimum is
    M_opt = (p A / (q B))^(1/(p+q)) * C^(q/(p+q)); the quadratic-in-log-M fit must land on that exponent."""
    E, A, B, p, q = 0.5, 40.0, 60.0, 0.30, 0.33
    exponent = q / (p + q)
    rng = np.random.default_rng(7)
    rows = []
    for budget in (1e13, 1e14, 1e15, 1e16):
        m_opt = (p * A / (q * B)) ** (1 / (p + q)) * budget**exponent
        for i, m in enumerate(m_opt * np.geomspace(0.25, 4, 7)):
            bpb = E + A / m**p + B / (budget / m) ** q + 1e-4 * rng.standard_normal()
            rows.append(_row(f"c-{budget:.0e}-{i}", "isoflop", budget, m, budget / m, 4096, 1e-3, bpb))
    fit = fit_isoflop(rows, n_bootstrap=100)
    assert fit.model_scale.exponent.value == pytest.approx(exponent, abs=0.01)


def test_grid_recovers_the_hyperparameter_exponents():
    fit = fit_grid(grid_rows(), n_bootstrap=200)
    batch, rate = fit.batch_size.exponent, fit.learning_rate.exponent
    assert 0 < batch.std < 0.03 and within(batch, TRUE_B_EXP)
    assert 0 < rate.std < 0.03 and within(rate, TRUE_ETA_EXP)
    assert fit.batch_size.paper.exponent == 0.3271 and fit.learning_rate.paper.exponent == -0.1250
    for budget in fit.budgets:
        best = min(budget.eval_bpb)
        near = {run for run, bpb in zip(budget.runs, budget.eval_bpb) if bpb <= best * 1.0025}
        assert {run for run, flag in zip(budget.runs, budget.near_optimal) if flag} == near
        assert 1 < len(near) < len(budget.runs)


def test_loss_law_recovers_alpha_and_predicts_a_larger_run():
    rows = isoflop_rows()
    fit = fit_loss_law(rows, n_bootstrap=200)
    assert 0 < fit.alpha.std < 0.002 and within(fit.alpha, TRUE_ALPHA)
    assert fit.coefficient.value == pytest.approx(K_L, rel=0.1)
    prediction = fit.predict(1e16)  # 10x beyond the largest fitted budget
    assert prediction.value == pytest.approx(optimal_bpb(1e16), rel=0.005)
    assert prediction.low < optimal_bpb(1e16) < prediction.high or within(prediction, optimal_bpb(1e16))
    with pytest.raises(ValueError, match="positive"):
        fit.predict(0)


def test_offset_loss_law_recovers_the_irreducible_loss():
    budgets = tuple(10.0**x for x in np.arange(13, 16.01, 0.5))
    rows = isoflop_rows(budgets, noise=0.0005)
    floor = 0.3
    for row in rows:
        row["eval_bpb"] += floor  # truth: L = 0.3 + K_L C^-alpha + quadratic
    fit = fit_loss_law(rows, form="offset", n_bootstrap=40)
    assert fit.irreducible.value == pytest.approx(floor, abs=0.1)
    assert fit.alpha.value == pytest.approx(TRUE_ALPHA, rel=0.25)
    with pytest.raises(ValueError, match="at least 4 usable budgets"):
        fit_loss_law(isoflop_rows(budgets[:3]), form="offset", n_bootstrap=0)


def test_fit_results_everything_with_a_prediction_check():
    rows = isoflop_rows() + grid_rows() + [predict_row(error=0.01)]
    fits = fit_results(rows, n_bootstrap=100, seed=3)
    assert fits.n_runs == {"grid": 245, "isoflop": 35, "predict": 1}
    assert fits.skipped == {} and fits.warnings == ()
    (check,) = fits.predictions
    assert check.actual == pytest.approx(optimal_bpb(1e16) * 1.01)
    assert check.relative_error == pytest.approx(-0.01, abs=0.003)
    as_json = json.loads(json.dumps(fits.to_dict()))
    assert as_json["isoflop"]["model_scale"]["paper"] == {"coefficient": 0.1715, "exponent": 0.5243}
    assert as_json["bootstrap"] == {"n": 100, "seed": 3, "confidence": 0.95}
    assert as_json["predictions"][0]["run"] == "predict-1e16"


def test_bootstrap_is_seeded():
    rows = isoflop_rows()
    first, again = (fit_isoflop(rows, n_bootstrap=50, seed=5) for _ in range(2))
    other = fit_isoflop(rows, n_bootstrap=50, seed=6)
    assert first.model_scale.exponent == again.model_scale.exponent
    assert first.model_scale.exponent.std != other.model_scale.exponent.std
    assert first.model_scale.exponent.value == other.model_scale.exponent.value  # the fit itself has no randomness
    none = fit_isoflop(rows, n_bootstrap=0)
    assert none.model_scale.exponent.std is None and none.model_scale.band(np.array([1e14])) is None


def test_one_budget_is_refused():
    with pytest.raises(ValueError, match="at least 2 usable budgets, got 1"):
        fit_isoflop(isoflop_rows(budgets=(1e14,)), n_bootstrap=0)
    with pytest.raises(ValueError, match="at least 2 usable budgets, got 1"):
        fit_grid(grid_rows(budgets=(1e14,)), n_bootstrap=0)
    with pytest.raises(ValueError, match="nothing could be fitted"):
        fit_results(isoflop_rows(budgets=(1e14,)) + grid_rows(budgets=(1e14,)), n_bootstrap=0)


def test_two_budgets_warn():
    fit = fit_isoflop(isoflop_rows(budgets=(1e13, 1e15)), n_bootstrap=20)
    assert any("only 2 usable budgets" in message for message in fit.warnings)


def test_a_curve_with_too_few_points_is_left_out(caplog):
    rows = isoflop_rows() + isoflop_rows(budgets=(3e15,), n_per_budget=2)
    fit = fit_isoflop(rows, n_bootstrap=0)
    (short,) = [curve for curve in fit.curves if curve.budget == 3e15]
    assert not short.used and short.model_scale_opt is None and "fewer than 3 distinct" in short.note
    assert any("3e+15" in message and "left out" in message for message in fit.warnings)
    assert "left out" in caplog.text  # logged, not only kept on the result
    assert fit.model_scale.n_budgets == 5


def test_a_concave_curve_is_left_out():
    rows = isoflop_rows()
    for row in rows:
        if row["budget"] == 1e13:
            row["eval_bpb"] = 2.0 - row["eval_bpb"]  # upside down: a maximum, no minimum
    fit = fit_isoflop(rows, n_bootstrap=0)
    assert not fit.curves[0].used and "not convex" in fit.curves[0].note


def test_a_minimum_at_the_edge_is_flagged_and_can_be_excluded():
    rows = isoflop_rows(budgets=(1e13, 1e14, 1e15)) + isoflop_rows(budgets=(3e15,), shift=0.7)
    fit = fit_isoflop(rows, n_bootstrap=0)
    edge = fit.curves[-1]
    assert edge.at_edge and edge.used
    assert [curve.at_edge for curve in fit.curves[:-1]] == [False, False, False]
    assert any("edge of the sampled model scales" in message for message in fit.warnings)
    excluded = fit_isoflop(rows, n_bootstrap=0, exclude_edge=True)
    assert not excluded.curves[-1].used and excluded.model_scale.n_budgets == 3
    assert excluded.model_scale.exponent.value == pytest.approx(TRUE_A, abs=0.02)


def test_grid_budget_edge_and_too_few_runs():
    rows = grid_rows(budgets=(1e13, 1e14, 1e15))
    few = grid_rows(budgets=(3e15,))[:2]
    edge = grid_rows(budgets=(1e16,))
    for row in edge:
        if row["run"] == "grid-1e+16--3-0":  # the smallest batch of the grid wins
            row["eval_bpb"] = 0.5
    fit = fit_grid(rows + few + edge, n_bootstrap=0)
    by_budget = {budget.budget: budget for budget in fit.budgets}
    assert not by_budget[3e15].used and by_budget[1e16].at_edge and by_budget[1e16].used
    assert by_budget[1e16].best_run == "grid-1e+16--3-0" and sum(by_budget[1e16].near_optimal) == 1
    assert not any(by_budget[c].at_edge for c in (1e13, 1e14, 1e15))
    assert any("3e+15: 2 run(s), fewer than 3" in message for message in fit.warnings)
    assert any("1e+16: the best run" in message and "edge of the grid" in message for message in fit.warnings)
    assert not fit_grid(rows + edge, n_bootstrap=0, exclude_edge=True).budgets[-1].used


def test_missing_kinds_and_bad_options():
    with pytest.raises(ValueError, match="no rows of kind 'isoflop'"):
        fit_isoflop(grid_rows(), n_bootstrap=0)
    with pytest.raises(ValueError, match="no rows of kind 'grid'"):
        fit_grid(isoflop_rows(), n_bootstrap=0)
    with pytest.raises(ValueError, match="empty"):
        fit_results([])
    with pytest.raises(ValueError, match="n_bootstrap"):
        fit_isoflop(isoflop_rows(), n_bootstrap=-1)
    with pytest.raises(ValueError, match="form must be one of"):
        fit_loss_law(isoflop_rows(), form="exp")
    only_iso = fit_results(isoflop_rows() + [predict_row(budget=1e14)], n_bootstrap=0)
    assert only_iso.skipped == {"grid": "no rows of kind 'grid'"}
    assert any("not beyond the largest fitted budget" in message for message in only_iso.warnings)


def test_paper_law_is_the_reference_for_m_opt():
    fit = fit_isoflop(isoflop_rows(), n_bootstrap=0)
    assert fit.model_scale.paper is MODEL_SCALE_LAW
    # the synthetic truth is the paper's law, so the fitted law must agree with it across the fitted range
    for budget in (1e13, 1e15):
        assert fit.model_scale(budget) == pytest.approx(MODEL_SCALE_LAW(budget), rel=0.05)
