"""Every shipped pretraining YAML parses strictly against recipes/pretrain.py's dataclasses (litgpt's
`test_config_hub.py` idea), the paper's configs say what Table 2 says, and the accelerate configs are valid."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from deepseek_hf.modeling import DeepseekLLMConfig
from deepseek_hf.training import resolve_training_plan

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PRETRAIN_CONFIGS = sorted(RECIPES.glob("*/pretrain/*.yaml"))
ACCELERATE_CONFIGS = sorted((RECIPES / "accelerate_configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe", RECIPES / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(recipe, *argv):
    return recipe.make_parser().parse_args_and_config(list(argv))


def test_the_shipped_configs_are_found():
    names = {str(p.relative_to(RECIPES)) for p in PRETRAIN_CONFIGS}
    assert {
        "tiny/pretrain/config_cpu.yaml",
        "deepseek-llm-7b/pretrain/config_full.yaml",
        "deepseek-llm-67b/pretrain/config_full.yaml",
    } <= names


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=lambda p: str(p.relative_to(RECIPES)))
def test_config_parses_strictly(recipe, path):
    data_args, training_args, model_args = parse(recipe, "--config", str(path))
    raw = yaml.safe_load(path.read_text())
    for args in (data_args, training_args, model_args):  # every YAML key landed in a field, with its value
        for key, value in raw.items():
            if hasattr(args, key) and key != "lr_scheduler_kwargs":
                assert getattr(args, key) == (float(value) if isinstance(getattr(args, key), float) else value), key
    assert model_args.model_preset and model_args.tokenizer_name_or_path and data_args.dataset_path


@pytest.mark.parametrize(
    "name, sequences, learning_rate",
    [("deepseek-llm-7b", 2304, 4.2e-4), ("deepseek-llm-67b", 4608, 3.2e-4)],
)
def test_paper_configs_match_table_2(recipe, name, sequences, learning_rate):
    data_args, training_args, model_args = parse(recipe, "--config", str(RECIPES / name / "pretrain/config_full.yaml"))
    assert model_args.model_preset == name and data_args.seq_length == 4096
    assert (training_args.adam_beta1, training_args.adam_beta2) == (0.9, 0.95)
    assert (training_args.weight_decay, training_args.max_grad_norm, training_args.warmup_steps) == (0.1, 1.0, 2000)
    assert training_args.lr_scheduler_type == "multi_step"
    assert training_args.lr_scheduler_kwargs == {"milestones": [0.8, 0.9], "factors": [0.316, 0.1]}
    model = DeepseekLLMConfig.from_preset(name)
    world_size = sequences // training_args.per_device_train_batch_size // 9  # e.g. 64 GPUs x 9 accumulation
    plan = resolve_training_plan(training_args, model, seq_length=4096, world_size=world_size)
    assert plan.global_batch_size == sequences and plan.learning_rate == learning_rate
    assert plan.total_tokens == 2e12 and plan.batch_size_tokens == sequences * 4096


def test_7b_scaling_law_config_gets_batch_and_lr_from_the_laws(recipe):
    _, training_args, _ = parse(recipe, "--config", str(RECIPES / "deepseek-llm-7b/pretrain/config_scaling_law.yaml"))
    assert training_args.global_batch_size is None and training_args.learning_rate is None
    plan = resolve_training_plan(
        training_args, DeepseekLLMConfig.from_preset("deepseek-llm-7b"), seq_length=4096, world_size=1
    )
    assert plan.global_batch_size == 2252 and plan.learning_rate == pytest.approx(4.25e-4, rel=2e-3)


def test_unknown_keys_are_errors(recipe, tmp_path):
    config = tmp_path / "typo.yaml"
    text = (RECIPES / "tiny/pretrain/config_cpu.yaml").read_text()
    config.write_text(text + "lerning_rate: 1.0e-3\n")
    with pytest.raises(ValueError, match="Unknown arguments from config file.*lerning_rate"):
        parse(recipe, "--config", str(config))
    with pytest.raises(ValueError, match="not used by the HfArgumentParser.*--lerning_rate"):
        parse(recipe, "--config", str(RECIPES / "tiny/pretrain/config_cpu.yaml"), "--lerning_rate", "1e-3")


def test_command_line_overrides_the_yaml(recipe):
    data_args, training_args, model_args = parse(
        recipe,
        "--config",
        str(RECIPES / "tiny/pretrain/config_cpu.yaml"),
        "--seq_length",
        "64",
        "--max_tokens",
        "1e5",
        "--config_overrides",
        "num_hidden_layers=2",
    )
    assert data_args.seq_length == 64 and training_args.max_tokens == 1e5
    assert model_args.config_overrides == "num_hidden_layers=2"


def help_text(recipe, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        parse(recipe, flag)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help(recipe, capsys):
    """--help leads with the config file and the recipe's own options (before: 672 lines, no --config)."""
    out = help_text(recipe, capsys, "--help")
    for flag in ("--max_tokens", "--compute_budget", "--global_batch_size", "--model_preset", "--dataset_path"):
        assert flag in out
    assert out.index("  --config CONFIG.yaml") < out.index("  --dataset_path") < out.index("  --max_tokens MAX")
    assert "--restart_optimizer" in out and "--dataset_path_if_missing" in out and "--output_dir" in out
    assert "--eval_strategy" not in out and len(out.splitlines()) < 250
    assert "--help-all lists them" in out  # where the other TrainingArguments options are


def test_help_all_lists_every_training_argument(recipe, capsys):
    out = help_text(recipe, capsys, "--help-all")
    assert "--eval_strategy" in out and "--config CONFIG.yaml" in out and "--max_tokens" in out
    assert out.index("  --config CONFIG.yaml") < out.index("  --dataset_path")


def test_the_shipped_configs_never_fall_back_to_another_corpus():
    """A fallback is asked for by name (`dataset_path_if_missing`); no shipped recipe does."""
    for path in PRETRAIN_CONFIGS:
        raw = yaml.safe_load(path.read_text())
        assert "dataset_path_if_missing" not in raw and "dataset_fallback_path" not in raw, path


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(path))  # rejects unknown keys
    assert config.mixed_precision == "bf16"
    if path.name == "zero1.yaml":
        assert config.distributed_type == "DEEPSPEED" and config.deepspeed_config["zero_stage"] == 1
    if path.name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "DeepseekLLMDecoderLayer"


def test_accelerate_config_names():
    assert {p.name for p in ACCELERATE_CONFIGS} == {"ddp.yaml", "fsdp.yaml", "zero1.yaml"}
