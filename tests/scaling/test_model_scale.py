"""`model_scale` against the paper: every row of Table 3 as printed, and the 7B / 67B presets' M."""

import pytest

from deepseek_hf.modeling import DeepseekLLMConfig
from deepseek_hf.scaling import model_flops_per_token
from deepseek_hf.scaling.scale import (
    PAPER_TABLE_3,
    matmul_flops_per_token,
    model_scale,
    model_scale_from_config,
)


def printed(value: float) -> float:
    """A number as Table 3 prints it: three significant figures."""
    return float(f"{value:.3g}")


# The one printed cell that is not the rounded value: 6N1/M of (32, 4096) is 6d / (6d + l_seq) = 6/7 = 0.857 exactly
# (Eq. 2), printed 0.85 (truncated; every other ratio of the table is rounded, e.g. 0.4286 -> 0.43).
TRUNCATED_IN_PAPER = {(32, 4096)}


@pytest.mark.parametrize("row", PAPER_TABLE_3, ids=lambda row: f"L{row[0]}-d{row[1]}")
def test_table_3_row(row):
    n_layer, d_model, n1, n2, m, ratio_6n1, ratio_6n2 = row
    scale = model_scale(n_layer, d_model, seq_len=4096, vocab_size=102400)
    assert printed(scale.n1) == n1
    assert printed(scale.n2) == n2
    assert printed(scale.flops_per_token) == m
    if (n_layer, d_model) in TRUNCATED_IN_PAPER:
        assert scale.ratio_6n1 == 6 / 7 and int(scale.ratio_6n1 * 100) / 100 == ratio_6n1
    else:
        assert round(scale.ratio_6n1, 2) == ratio_6n1
    assert round(scale.ratio_6n2, 2) == ratio_6n2
    assert scale.six_n1 == 6 * scale.n1 and scale.six_n2 == 6 * scale.n2


def test_table_3_has_seven_rows():
    assert [(row[0], row[1]) for row in PAPER_TABLE_3] == [
        (8, 512), (12, 768), (24, 1024), (24, 2048), (32, 4096), (40, 5120), (80, 8192)
    ]  # fmt: skip


def test_first_row_exact_integers():
    """Eq. 2 by hand for (8, 512): 72*8*512^2 = 150994944; 12*8*512*4096 = 201326592; 6*102400*512 = 314572800."""
    scale = model_scale(8, 512, 4096, 102400)
    assert scale.six_n1 == 150_994_944
    assert scale.flops_per_token == 150_994_944 + 201_326_592
    assert scale.six_n2 == 150_994_944 + 314_572_800


@pytest.mark.parametrize(
    "preset, m, six_n1",
    [("deepseek-llm-7b", 4.228e10, 3.624e10), ("deepseek-llm-67b", 4.973e11, 4.590e11)],  # paper-facts, DERIVED
)
def test_presets(preset, m, six_n1):
    config = DeepseekLLMConfig.from_preset(preset)
    scale = model_scale_from_config(config)
    assert float(f"{scale.flops_per_token:.4g}") == m
    assert float(f"{scale.six_n1:.4g}") == six_n1
    assert scale.seq_len == 4096 and scale.vocab_size == 102400
    assert scale.flops_per_token == model_flops_per_token(config, 4096)


def test_gqa_67b_is_overcounted_by_m():
    """Eq. 2 assumes MHA: the 67B's 8 KV heads make its real matmul FLOPs ~13% below M; the 7B (MHA, FFN 11008 >
    8/3 d) is slightly above it."""
    big = DeepseekLLMConfig.from_preset("deepseek-llm-67b")
    exact, m = matmul_flops_per_token(big), model_scale_from_config(big).flops_per_token
    assert 0.85 < exact / m < 0.9
    seven = DeepseekLLMConfig.from_preset("deepseek-llm-7b")
    assert 1.0 < matmul_flops_per_token(seven) / model_scale_from_config(seven).flops_per_token < 1.01


def test_seq_len_changes_only_the_attention_term():
    config = DeepseekLLMConfig.from_preset("deepseek-llm-7b")
    short, full = model_scale_from_config(config, 2048), model_scale_from_config(config)
    assert full.flops_per_token - short.flops_per_token == 12 * 30 * 4096 * 2048
    assert short.six_n1 == full.six_n1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_bad_shape_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="n_layer must be a positive integer"):
        model_scale(bad, 512, 4096, 102400)
