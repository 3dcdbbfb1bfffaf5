"""The shape generator: D * M == C, M around the centre, the paper's laws for batch and LR, clear errors."""

import math

import pytest

from deepseek_hf.modeling import DeepseekLLMConfig
from deepseek_hf.scaling import optimal_allocation, optimal_batch_tokens, optimal_lr, round_batch_sequences
from deepseek_hf.scaling.scale import model_scale_from_config
from deepseek_hf.scaling.shapes import ShapeSpace, candidate_shapes, grid_runs, isoflop_shapes

TINY = ShapeSpace(head_dim=32, ffn_multiple_of=32, max_layers=8, max_width=512, aspect_ratio=(16, 128))


@pytest.mark.parametrize("budget", [1e17, 3e18, 1e20])
def test_paper_scale_profile(budget):
    runs = isoflop_shapes(budget, 4096, num_shapes=7, span=16)
    m_opt = optimal_allocation(budget)[0]
    assert 5 <= len(runs) <= 7
    scales = [run.model_scale for run in runs]
    assert scales == sorted(scales) and len(set(scales)) == len(scales)
    assert scales[0] < m_opt < scales[-1]
    assert m_opt / 8 / 1.6 < scales[0] and scales[-1] < m_opt * 8 * 1.6  # the span, up to the shape grid
    for run in runs:
        assert math.isclose(run.tokens * run.model_scale, budget, rel_tol=1e-12)  # D * M == C
        assert run.batch_sequences == round_batch_sequences(optimal_batch_tokens(budget), 4096)
        assert run.learning_rate == optimal_lr(budget)
        shape = run.shape
        assert shape.d_model % 128 == 0 and shape.n_heads * 128 == shape.d_model
        assert 32 <= shape.d_model / shape.n_layer <= 160
        # the shape is a real config whose own M (the recipe's) is the planned one
        config = DeepseekLLMConfig(**shape.config_overrides(), max_position_embeddings=4096)
        assert model_scale_from_config(config).flops_per_token == run.model_scale
        assert config.intermediate_size % 256 == 0 and config.intermediate_size >= 8 * shape.d_model / 3


def test_presets_ffn_rule():
    """The 8/3 d rounded up to 256 of the presets: 4096 -> 11008 and 8192 -> 22016 as released."""
    from deepseek_hf.scaling.shapes import _shape

    assert _shape(ShapeSpace(), 30, 4096).intermediate_size == 11008
    assert _shape(ShapeSpace(), 95, 8192).intermediate_size == 22016


def test_centre_and_user_hyperparameters():
    runs = isoflop_shapes(1e12, 128, centre=8e5, span=4, space=TINY, batch_tokens=2048, learning_rate=3e-3)
    assert all(run.batch_sequences == 16 and run.learning_rate == 3e-3 for run in runs)
    geometric_mean = math.exp(sum(math.log(r.model_scale) for r in runs) / len(runs))
    assert 8e5 / 2 < geometric_mean < 8e5 * 2
    assert all(math.isclose(r.tokens * r.model_scale, 1e12, rel_tol=1e-12) for r in runs)
    assert len({r.name for r in runs}) == len(runs)


def test_batch_multiple():
    (run, *_) = isoflop_shapes(1e12, 128, space=TINY, batch_multiple=8)
    assert run.batch_sequences % 8 == 0


def test_budget_too_small_for_any_shape():
    with pytest.raises(ValueError, match=r"compute budget 1e\+08 FLOPs is too small .* a budget of about"):
        isoflop_shapes(1e8, 128, space=TINY)


def test_too_few_distinct_shapes():
    with pytest.raises(ValueError, match=r"only 1 distinct shape\(s\) around M = 1e\+06"):
        isoflop_shapes(1e14, 128, space=TINY, centre=1e6, span=1.01, num_shapes=3)
    narrow = ShapeSpace(head_dim=32, ffn_multiple_of=32, max_layers=1, max_width=64, aspect_ratio=(16, 128))
    with pytest.raises(ValueError, match="allows only 2 shape"):
        isoflop_shapes(1e13, 128, space=narrow, min_shapes=3)


def test_window_outside_the_shapes_is_moved_inside(caplog):
    """At toy budgets the law's M_opt is below the smallest model: the profile starts at the smallest shapes."""
    budget = 3e10
    assert optimal_allocation(budget)[0] < candidate_shapes(TINY, 128)[0][0]
    with caplog.at_level("WARNING"):
        runs = isoflop_shapes(budget, 128, space=TINY, num_shapes=3, span=8)
    assert runs[0].model_scale == candidate_shapes(TINY, 128)[0][0] and len(runs) == 3
    assert "leaves the feasible shapes" in caplog.text
    high = isoflop_shapes(1e14, 128, space=TINY, num_shapes=3, span=4, centre=1e12)  # above the largest
    assert high[-1].model_scale == max(m for m, _, _ in candidate_shapes(TINY, 128))


def test_candidates_respect_the_space():
    for m, n_layer, d_model in candidate_shapes(TINY, 128):
        assert 16 <= d_model / n_layer <= 128 and d_model % 32 == 0 and n_layer <= 8
        assert m == 72 * n_layer * d_model**2 + 12 * n_layer * d_model * 128


def test_grid():
    runs = grid_runs(1e12, 128, batch_tokens=[1024, 4096], learning_rates=[1e-3, 3e-3, 1e-2], space=TINY)
    assert len(runs) == 6 and len({r.name for r in runs}) == 6
    assert len({(r.shape.n_layer, r.shape.d_model) for r in runs}) == 1
    assert {(r.batch_tokens, r.learning_rate) for r in runs} == {
        (b, lr) for b in (1024, 4096) for lr in (1e-3, 3e-3, 1e-2)
    }
    assert all(math.isclose(r.tokens * r.model_scale, 1e12, rel_tol=1e-12) for r in runs)
    with pytest.raises(ValueError, match="too small for the grid"):
        grid_runs(1e9, 128, batch_tokens=[4096], learning_rates=[1e-3], n_layer=4, d_model=256, space=TINY)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head_dim": 0}, "head_dim must be a positive integer"),
        ({"aspect_ratio": (100, 10)}, "aspect_ratio"),
        ({"min_layers": 5, "max_layers": 2}, "min_layers"),
    ],
)
def test_bad_space(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapeSpace(**kwargs)


@pytest.mark.parametrize("budget", [0, -1.0, float("inf"), "1e12"])
def test_bad_budget(budget):
    with pytest.raises(ValueError, match="positive number of FLOPs"):
        isoflop_shapes(budget, 128, space=TINY)


def test_shapes_command(capsys):
    import json

    from deepseek_hf.scaling.cli import main

    assert main(["shapes", "--compute", "1e20", "--seq-length", "4096", "--num-shapes", "5", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs == [run.to_dict() for run in isoflop_shapes(1e20, 4096, num_shapes=5)]
    assert main(["shapes", "--compute", "1e20", "--seq_length", "4096"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["run", "n_layer", "d_model"] and len(table) == 1 + len(runs)
    with pytest.raises(ValueError, match="too small"):
        main(["shapes", "--compute", "1e5", "--seq-length", "4096"])
