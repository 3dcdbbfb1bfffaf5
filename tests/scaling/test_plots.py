"""The scaling-study figures: valid PNGs, one per fitted part, with the panels the paper's Figures 2-5 have."""

import logging

import matplotlib.image
import pytest
from scaling_synthetic import grid_rows, isoflop_rows, predict_row

from deepseek_hf.scaling.fits import fit_results
from deepseek_hf.scaling.plots import PLOT_FILES, plot_results, result_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fits():
    rows = isoflop_rows(budgets=(1e13, 1e14, 1e15)) + grid_rows(budgets=(1e13, 1e14, 1e15)) + [predict_row()]
    return fit_results(rows, n_bootstrap=30)


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def test_figures_have_the_expected_panels(fits):
    figures = result_figures(fits)
    assert tuple(figures) == PLOT_FILES
    assert len(_image_axes(figures["grid_heatmap.png"])) == 3  # one heat map per budget (+ its colour bar)
    assert len(figures["grid_heatmap.png"].axes) == 6
    heatmap = _image_axes(figures["grid_heatmap.png"])[0]
    outlined = [patch for patch in heatmap.patches if not patch.get_fill()]
    assert len(outlined) == sum(fits.grid.budgets[0].near_optimal)  # the near-optimal region, cell by cell
    assert len(figures["grid_fits.png"].axes) == 2  # B_opt and eta_opt against C
    assert len(figures["isoflop.png"].axes) == 1
    iso = figures["isoflop.png"].axes[0]
    assert len(iso.collections) == 3  # the runs of each budget
    assert len(iso.lines) == 6  # a fitted quadratic and its minimum per budget
    assert len(figures["optimal_allocation.png"].axes) == 2  # M_opt and D_opt
    (loss_ax,) = figures["loss_law.png"].axes
    labels = loss_ax.get_legend_handles_labels()[1]
    assert "measured" in labels and "predicted" in labels
    assert max(loss_ax.get_xlim()) > 1e16  # the law is drawn out to the predicted run


def test_plot_results_writes_valid_pngs_atomically(fits, tmp_path):
    written = plot_results(fits, tmp_path / "plots")
    assert sorted(written) == sorted(PLOT_FILES)
    for name, path in written.items():
        assert path == tmp_path / "plots" / name
        assert path.read_bytes()[:8] == PNG_MAGIC
        height, width, _ = matplotlib.image.imread(path).shape
        assert height > 300 and width > 500
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(PLOT_FILES)  # no temporary files left


def test_only_the_figures_the_fits_allow(caplog):
    fits = fit_results(isoflop_rows(budgets=(1e13, 1e14, 1e15)), n_bootstrap=0)
    with caplog.at_level(logging.WARNING):
        figures = result_figures(fits)
    assert sorted(figures) == ["isoflop.png", "loss_law.png", "optimal_allocation.png"]
    assert "grid_heatmap.png and grid_fits.png not drawn" in caplog.text
