"""Model-config overrides (`--config_overrides` of the pretraining recipe, `deepseek-hf model info --set`): one
parser, typed values, and an unknown key is an error naming the closest valid ones instead of being ignored."""

import json

import pytest

from deepseek_hf.checkpoints.cli import main as model_cli
from deepseek_hf.modeling import DeepseekLLMConfig
from deepseek_hf.training.model import build_model_config
from deepseek_hf.utils import config_keys, parse_overrides, parse_value


class _Tokenizer:
    """What `build_model_config` reads of a tokenizer: its length and special-token ids."""

    bos_token_id, eos_token_id, pad_token_id = 0, 1, 2

    def __len__(self):
        return 300


def test_recipe_overrides_reject_a_typo_naming_the_closest_key():
    with pytest.raises(ValueError, match=r"unknown model config key 'num_hidden_layer'.*'num_hidden_layers'"):
        build_model_config(_Tokenizer(), preset="deepseek-llm-tiny", overrides="num_hidden_layer=2,hidden_size=64")


def test_recipe_overrides_keep_types():
    config = build_model_config(
        _Tokenizer(),
        preset="deepseek-llm-tiny",
        overrides="num_hidden_layers=2,hidden_size=64,rms_norm_eps=1e-5,tie_word_embeddings=True,pad_token_id=None,"
        "hidden_act=gelu,rope_theta=5e5",
    )
    assert config.num_hidden_layers == 2 and config.hidden_size == 64 and config.rms_norm_eps == 1e-5
    assert config.tie_word_embeddings is True and config.pad_token_id is None and config.hidden_act == "gelu"
    assert config.rope_parameters["rope_theta"] == 5e5


def test_model_info_rejects_a_typo_in_set(capsys):
    assert model_cli(["info", "--preset", "deepseek-llm-tiny", "--set", "num_hidden_layer=2"]) == 2
    err = capsys.readouterr().err
    assert "'num_hidden_layer'" in err and "did you mean 'num_hidden_layers'" in err


def test_model_info_set_applies_typed_values(capsys):
    argv = [
        "info",
        "--preset",
        "deepseek-llm-tiny",
        "--set",
        "num_hidden_layers=2",
        "--set",
        "max_position_embeddings=2048",
    ]
    assert model_cli([*argv, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_hidden_layers"] == 2 and info["max_position_embeddings"] == 2048
    # with --scale, the family rule's own keyword (FFN rounding) is an override too
    assert model_cli(["info", "--scale", "2", "512", "--set", "ffn_multiple_of=128", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["intermediate_size"] == 1408
    assert model_cli(["info", "--scale", "2", "512", "--set", "hidden_size=64"]) == 2  # --scale sets it already
    assert "--scale" in capsys.readouterr().err


def test_parse_value_keeps_types():
    assert [parse_value(text) for text in ("2", "-3", "0.5", "1e-5", "true", "False", "None", "null")] == [
        2,
        -3,
        0.5,
        1e-5,
        True,
        False,
        None,
        None,
    ]
    assert parse_value("silu") == "silu" and parse_value(' "2" ') == "2" and parse_value("[1, 2]") == [1, 2]
    assert type(parse_value("2")) is int and type(parse_value("2.0")) is float


def test_parse_overrides_splits_only_before_a_key():
    assert parse_overrides("eos_token_id=[1,2], hidden_size=64,") == {"eos_token_id": [1, 2], "hidden_size": 64}
    assert parse_overrides(["a=1", "a=2"]) == {"a": 2}  # the last one wins, as on a command line
    assert parse_overrides(None) == {} and parse_overrides("") == {}
    with pytest.raises(ValueError, match="not of the form key=value"):
        parse_overrides("hidden_size")
    with pytest.raises(ValueError, match="valid keys: a, b"):  # nothing close: the whole list
        parse_overrides("zzz=1", valid_keys={"a", "b"})


def test_config_keys_are_the_config_keywords():
    keys = config_keys(DeepseekLLMConfig)
    assert {"num_hidden_layers", "loss_chunk_size", "dtype", "rope_theta", "torch_dtype"} <= keys
    assert not keys & {"transformers_version", "model_type", "architectures"}


def test_rope_theta_override_reaches_a_config_json_with_rope_parameters(tmp_path, capsys):
    """transformers reads the legacy `rope_theta` only where `rope_parameters` has none: it was silently dropped."""
    DeepseekLLMConfig.from_preset(
        "deepseek-llm-tiny", vocab_size=1024, bos_token_id=0, eos_token_id=1
    ).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["rope_parameters"]["rope_theta"] == 10000.0
    config = build_model_config(_Tokenizer(), config_path=str(tmp_path), overrides="rope_theta=5e5")
    assert config.rope_parameters == {"rope_type": "default", "rope_theta": 5e5}
