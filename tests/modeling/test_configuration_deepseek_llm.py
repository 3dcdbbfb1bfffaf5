"""DeepseekLLMConfig: official presets, the family rule, the paper's scale quantities (Table 3, Eq. 2), validation."""

from __future__ import annotations

import pytest
import torch

from deepseek_hf.modeling import PRESETS, DeepseekLLMConfig, DeepseekLLMForCausalLM, swiglu_intermediate_size


def test_7b_preset_is_the_official_config():
    cfg = DeepseekLLMConfig.from_preset("deepseek-llm-7b")
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (30, 4096, 11008)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (32, 32, 128)
    assert (cfg.vocab_size, cfg.max_position_embeddings, cfg.rms_norm_eps) == (102400, 4096, 1e-6)
    assert cfg.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.tie_word_embeddings) == (100000, 100001, False)
    assert cfg.initializer_range == 0.006  # the paper's init std, not the release's 0.02
    assert not (cfg.attention_bias or cfg.mlp_bias)
    assert round(cfg.num_parameters / 1e9, 2) == 6.91


def test_67b_preset_is_the_official_config():
    cfg = DeepseekLLMConfig.from_preset("deepseek-llm-67b")
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (95, 8192, 22016)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (64, 8)
    assert round(cfg.num_parameters / 1e9, 2) == 67.43


def test_default_config_is_the_7b():
    assert DeepseekLLMConfig().to_dict() == DeepseekLLMConfig.from_preset("deepseek-llm-7b").to_dict()


def test_preset_overrides_and_unknown_preset():
    cfg = DeepseekLLMConfig.from_preset("deepseek-llm-7b", num_hidden_layers=2, hidden_size=128)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.head_dim, cfg.intermediate_size) == (2, 128, 4, 11008)
    with pytest.raises(ValueError, match="deepseek-llm-67b"):
        DeepseekLLMConfig.from_preset("deepseek-llm-13b")


@pytest.mark.parametrize(("hidden", "ffn"), [(4096, 11008), (8192, 22016)])
def test_ffn_rule_reproduces_the_released_widths(hidden, ffn):
    assert swiglu_intermediate_size(hidden) == ffn
    assert DeepseekLLMConfig.from_scale(num_hidden_layers=2, hidden_size=hidden).intermediate_size == ffn


def test_from_scale_rebuilds_the_official_shapes():
    for name, kv_heads in (("deepseek-llm-7b", None), ("deepseek-llm-67b", 8)):
        preset = PRESETS[name]
        cfg = DeepseekLLMConfig.from_scale(
            preset["num_hidden_layers"], preset["hidden_size"], num_key_value_heads=kv_heads
        )
        assert cfg.to_dict() == DeepseekLLMConfig.from_preset(name).to_dict()
    with pytest.raises(ValueError, match="head_dim"):
        DeepseekLLMConfig.from_scale(num_hidden_layers=2, hidden_size=200)


# Paper Table 3 (n_vocab 102400, l_seq 4096): n_layer, d_model, N1, N2, M as printed (3 significant digits).
TABLE_3 = [
    (8, 512, 25.2e6, 77.6e6, 352e6),
    (12, 768, 84.9e6, 164e6, 963e6),
    (24, 1024, 302e6, 407e6, 3.02e9),
    (24, 2048, 1.21e9, 1.42e9, 9.66e9),
    (32, 4096, 6.44e9, 6.86e9, 45.1e9),
    (40, 5120, 12.6e9, 13.1e9, 85.6e9),
    (80, 8192, 64.4e9, 65.3e9, 419e9),
]


@pytest.mark.parametrize(("n_layer", "d", "n1", "n2", "m"), TABLE_3)
def test_scale_quantities_match_table_3(n_layer, d, n1, n2, m):
    cfg = DeepseekLLMConfig.from_scale(num_hidden_layers=n_layer, hidden_size=d)
    assert cfg.non_embedding_params == pytest.approx(n1, rel=5e-3)
    assert cfg.total_params == pytest.approx(n2, rel=5e-3)
    assert cfg.flops_per_token == pytest.approx(m, rel=5e-3)


def test_scale_quantities_of_the_7b():
    cfg = DeepseekLLMConfig.from_preset("deepseek-llm-7b")
    assert cfg.flops_per_token == 72 * 30 * 4096**2 + 12 * 30 * 4096 * 4096
    assert f"{cfg.flops_per_token:.3e}" == "4.228e+10"
    assert 6 * cfg.non_embedding_params == pytest.approx(3.624e10, rel=1e-3)
    assert cfg.flops_per_token_at(2048) < cfg.flops_per_token


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"num_key_value_heads": 2},
        {"num_key_value_heads": 1, "head_dim": 16},
        {"attention_bias": True, "mlp_bias": True},
        {"tie_word_embeddings": True},
    ],
)
def test_num_parameters_is_exact(tiny_config, shape):
    cfg = tiny_config(**shape)
    assert cfg.num_parameters == DeepseekLLMForCausalLM(cfg).num_parameters()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_attention_heads": 5}, "num_attention_heads"),  # does not divide hidden_size 32
        ({"num_key_value_heads": 3}, "num_key_value_heads"),  # does not divide 4 heads
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_hidden_layers": -1}, "num_hidden_layers"),
        ({"num_attention_heads": 0}, "num_attention_heads"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"intermediate_size": 0}, "intermediate_size"),
        ({"max_position_embeddings": 0}, "max_position_embeddings"),
        ({"head_dim": 7}, "head_dim"),  # RoPE needs an even head size
        ({"rms_norm_eps": 0.0}, "rms_norm_eps"),
        ({"initializer_range": -0.1}, "initializer_range"),
        ({"attention_dropout": 1.5}, "attention_dropout"),
        ({"hidden_act": "swish-ish"}, "hidden_act"),
        ({"bos_token_id": 128}, "bos_token_id"),  # outside vocab_size 128
        ({"eos_token_id": [2, 500]}, "eos_token_id"),
        ({"loss_chunk_size": 0}, "loss_chunk_size"),
    ],
)
def test_bad_config_raises_value_error_naming_the_field(tiny_config, overrides, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        tiny_config(**overrides)


def test_config_edited_after_construction_is_checked_when_building_the_model(tiny_config):
    cfg = tiny_config()
    cfg.update_from_string("num_attention_heads=3")
    with pytest.raises(ValueError, match="`num_attention_heads`"):
        DeepseekLLMForCausalLM(cfg)


def test_check_vocab_covers(tiny_config):
    cfg = tiny_config(vocab_size=128)
    cfg.check_vocab_covers(128)
    cfg.check_vocab_covers(list(range(100)))  # anything with a length, e.g. a tokenizer
    with pytest.raises(ValueError, match="`vocab_size` \\(128\\).*129"):
        cfg.check_vocab_covers(129)
    DeepseekLLMConfig.from_preset("deepseek-llm-7b").check_vocab_covers(100015)  # the real tokenizer fits


def test_legacy_rope_theta_and_json_round_trip(tiny_config, tmp_path):
    cfg = tiny_config(rope_theta=500000.0)
    assert cfg.rope_parameters == {"rope_type": "default", "rope_theta": 500000.0}
    cfg.save_pretrained(tmp_path)
    loaded = DeepseekLLMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == cfg.to_dict()
    assert loaded.head_dim == 8 and loaded.initializer_range == cfg.initializer_range


def test_model_init_uses_the_paper_std(tiny_config):
    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(tiny_config(hidden_size=64, vocab_size=2048, intermediate_size=256))
    for weight in (model.lm_head.weight, model.model.embed_tokens.weight, model.model.layers[0].mlp.up_proj.weight):
        assert weight.std().item() == pytest.approx(0.006, rel=0.05)
    assert torch.equal(model.model.norm.weight, torch.ones(64))
