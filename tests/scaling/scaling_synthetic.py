"""Synthetic results tables drawn from known laws with noise: what the fit tests recover (imported by the tests of
`deepseek_hf.scaling.fits`, `.plots` and `deepseek-hf scaling fit|plot`; not a test module itself)."""

from __future__ import annotations

import numpy as np

# The truth the fits must recover (the paper's exponents, at the small budgets a CPU study can pay for).
TRUE_A = 0.5243  # M_opt = K_M C^a
K_M = 0.1715
TRUE_ALPHA = 0.05  # bpb_opt = K_L C^-alpha
K_L = 5.0
TRUE_B_EXP = 0.3271  # B_opt = K_B C^e
K_B = 0.2920
TRUE_ETA_EXP = -0.1250  # eta_opt = K_ETA C^e
K_ETA = 0.3118
BUDGETS = (1e13, 3e13, 1e14, 3e14, 1e15)


def _row(run, kind, budget, model_scale, tokens, batch_size, learning_rate, bpb):
    return {
        "run": run,
        "kind": kind,
        "budget": float(budget),
        "n_layer": 2,
        "d_model": 64,
        "n_heads": 2,
        "seq_len": 128,
        "vocab_size": 1000,
        "model_scale": float(model_scale),
        "tokens": float(tokens),
        "flops": float(model_scale) * float(tokens),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "eval_loss": float(bpb) * 3.0,
        "eval_bpb": float(bpb),
        "train_loss": None,
        "wall_s": 1.0,
        "output_dir": f"runs/{run}",
    }


def optimal_bpb(compute):
    return K_L * np.power(compute, -TRUE_ALPHA)


def isoflop_rows(budgets=BUDGETS, *, n_per_budget=7, span=1.2, curvature=0.15, noise=0.002, shift=0.0, seed=0):
    """`n_per_budget` model scales per budget spread over `span` decades around the true M_opt (moved by `shift`
    decades, to put the minimum at an edge), bpb = the optimal loss + curvature * (log10 M / M_opt)^2 + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        x_opt = np.log10(K_M * budget**TRUE_A)
        xs = x_opt + shift + np.linspace(-span / 2, span / 2, n_per_budget)
        for i, x in enumerate(xs):
            m = 10.0**x
            bpb = optimal_bpb(budget) + curvature * (x - x_opt) ** 2 + noise * rng.standard_normal()
            rows.append(_row(f"iso-{budget:.0e}-{i}", "isoflop", budget, m, budget / m, 4096, 1e-3, bpb))
    return rows


def grid_rows(budgets=BUDGETS, *, noise=0.0005, curvature=0.004, seed=0):
    """A batch x LR grid per budget on fixed absolute values (powers of 2 in batch, of sqrt 2 in LR), as a sweep
    would lay it out; bpb rises quadratically in log2 distance from the true B_opt(C), eta_opt(C)."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        b_opt, eta_opt = K_B * budget**TRUE_B_EXP, K_ETA * budget**TRUE_ETA_EXP
        centre_b, centre_eta = round(np.log2(b_opt)), round(2 * np.log2(eta_opt)) / 2
        m = K_M * budget**TRUE_A
        for i in range(-3, 4):
            for j in range(-3, 4):
                batch = 2.0 ** (centre_b + i / 2)
                lr = 2.0 ** (centre_eta + j / 4)
                excess = (np.log2(batch / b_opt)) ** 2 + (np.log2(lr / eta_opt)) ** 2
                bpb = optimal_bpb(budget) * (1 + curvature * excess) + noise * rng.standard_normal()
                rows.append(_row(f"grid-{budget:.0e}-{i}-{j}", "grid", budget, m, budget / m, round(batch), lr, bpb))
    return rows


def predict_row(budget=1e16, *, error=0.0):
    """A run 10x beyond the largest budget, measured `error` (relative) off the true optimal loss."""
    m = K_M * budget**TRUE_A
    return _row("predict-1e16", "predict", budget, m, budget / m, 4096, 1e-3, optimal_bpb(budget) * (1 + error))
