"""recipes/sft.py and recipes/dpo.py end to end on a tiny checkpoint (CPU): two-stage SFT, DPO with each kind of
reference, the saved models reloading and chatting, and the one-line errors of bad input."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from deepseek_hf.alignment import (
    AlignModelArguments,
    DeepseekDPOConfig,
    DeepseekDPOTrainer,
    Reference,
    build_mixture,
    load_reference,
    parse_dataset_specs,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`gradient_checkpointing.*` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

REPO = Path(__file__).resolve().parents[2]
SFT_DATA = [
    {"path": "package://align_demo/sft_general.jsonl", "format": "alpaca", "category": "general", "weight": 0.25},
    {"path": "package://align_demo/sft_math.jsonl", "format": "alpaca", "category": "math"},
    {"path": "package://align_demo/sft_code.jsonl", "format": "alpaca", "category": "code"},
    {"path": "package://align_demo/sft_dialogue_identity.jsonl", "format": "messages", "category": "dialogue"},
]
COMMON = {
    "use_cpu": True,
    "report_to": "none",
    "save_strategy": "no",
    "gradient_checkpointing": False,
    "logging_steps": 1,
    "disable_tqdm": True,
    "seed": 0,
}
PAIRS = [  # short pairs the tiny model can learn to prefer within a few steps
    {"prompt": "Who are you?", "chosen": "I am DeepSeek-HF Chat.", "rejected": "no no no no"},
    {"prompt": "Say hello.", "chosen": "Hello!", "rejected": "Goodbye forever."},
    {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "22"},
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."},
] * 2


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name: str, tmp_path: Path, config: dict, *flags: str) -> int:
    path = tmp_path / f"{name}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return _recipe(name).cli(["--config", str(path), *flags])


def _losses(run_dir: Path, key: str = "loss") -> list[float]:
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return [entry[key] for entry in state["log_history"] if key in entry]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


@pytest.fixture(scope="module")
def sft_stages(align_checkpoint, tmp_path_factory):
    """Stage 1 on all categories from the tiny checkpoint; stage 2 on dialogue from stage 1, at LR 0 (so its saved
    weights are exactly the weights it loaded)."""
    root = tmp_path_factory.mktemp("sft")
    stage1, stage2 = root / "stage1", root / "stage2"
    base = {"datasets": SFT_DATA, "max_length": 256, "per_device_train_batch_size": 4, **COMMON}
    rc1 = _run("sft", root, {**base, "model_name_or_path": str(align_checkpoint), "output_dir": str(stage1),
                             "max_steps": 16, "learning_rate": 3e-3})  # fmt: skip
    rc2 = _run("sft", root, {**base, "categories": ["dialogue"], "model_name_or_path": str(stage1),
                             "output_dir": str(stage2), "max_steps": 2, "learning_rate": 0.0})  # fmt: skip
    assert (rc1, rc2) == (0, 0)
    return stage1, stage2


def test_sft_loss_falls_on_assistant_tokens(sft_stages):
    stage1, _ = sft_stages
    losses = _losses(stage1)
    assert len(losses) == 16 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3, losses
    mixture = json.loads((stage1 / "data_mixture.json").read_text())
    assert mixture["by_category"].keys() == {"general", "math", "code", "dialogue"}
    skipped = {d["name"]: d["skipped"].get("too_long", 0) for d in mixture["datasets"]}
    assert skipped["sft_math.jsonl"] > 0  # the long math answers are dropped at max_length 256, and counted


def test_stage2_starts_from_stage1_and_sees_dialogue_only(sft_stages, align_checkpoint):
    stage1, stage2 = sft_stages
    base, first, second = _weights(align_checkpoint), _weights(stage1), _weights(stage2)
    assert all(torch.equal(first[name], second[name]) for name in first)  # LR 0: stage 2 saved what it loaded
    assert not all(torch.equal(first[name], base[name]) for name in first)  # ... which is stage 1's, not the base's
    results = json.loads((stage2 / "all_results.json").read_text())
    assert results["model_name_or_path"] == str(stage1)
    mixture = json.loads((stage2 / "data_mixture.json").read_text())
    assert mixture["by_category"]["dialogue"] > 20
    # the dataset the trainer iterated over holds the selected dialogues and nothing else
    assert results["train_conversations_by_category"] == {"dialogue": mixture["by_category"]["dialogue"]}
    assert [d["category"] for d in mixture["datasets"]] == ["dialogue"]
    assert {d["category"] for d in mixture["not_selected"]} == {"general", "math", "code"}


def test_saved_model_reloads_with_the_auto_classes_and_chats(sft_stages):
    stage1, _ = sft_stages
    config = json.loads((stage1 / "config.json").read_text())
    assert {"AutoConfig", "AutoModel", "AutoModelForCausalLM"} <= config["auto_map"].keys()
    assert (stage1 / "modeling_deepseek_llm.py").is_file()
    model = AutoModelForCausalLM.from_pretrained(stage1)
    assert type(AutoModel.from_pretrained(stage1)).__name__ == "DeepseekLLMModel"
    tokenizer = AutoTokenizer.from_pretrained(stage1)
    assert "{% generation %}" in tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Who are you?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > prompt["input_ids"].shape[1]
    assert torch.equal(model.generate(**prompt, max_new_tokens=8, do_sample=False), output)  # greedy


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    return str(path)


def _dpo_config(policy, output_dir, pairs_file, **extra):
    return {
        "datasets": [{"path": pairs_file, "format": "preference", "category": "general"}],
        "model_name_or_path": str(policy),
        "output_dir": str(output_dir),
        "max_length": 64,
        "per_device_train_batch_size": 4,
        "global_batch_size": 4,
        "max_steps": 8,
        "learning_rate": 5e-3,
        "warmup_steps": 0,
        **COMMON,
        **extra,
    }


def test_dpo_margin_and_accuracy_rise_with_an_explicit_reference(sft_stages, pairs_file, tmp_path):
    stage1, _ = sft_stages
    out = tmp_path / "dpo"
    assert _run("dpo", tmp_path, _dpo_config(stage1, out, pairs_file)) == 0
    margins, accuracies = _losses(out, "rewards/margins"), _losses(out, "rewards/accuracies")
    assert margins[0] == pytest.approx(0.0, abs=1e-6) and accuracies[0] == 0.0  # policy == reference at step 1
    assert margins[-1] > 0.1 and accuracies[-1] >= 0.75, (margins, accuracies)
    assert _losses(out)[0] == pytest.approx(math.log(2), abs=1e-4)
    assert json.loads((out / "data_mixture.json").read_text())["reference"] == {
        "kind": "explicit",
        "path": str(stage1),
    }
    AutoModelForCausalLM.from_pretrained(out)  # reloads


def test_dpo_with_precomputed_reference_log_probs(sft_stages, pairs_file, tmp_path):
    stage1, _ = sft_stages
    out = tmp_path / "dpo-pre"
    config = _dpo_config(stage1, out, pairs_file, precompute_ref_log_probs=True, max_steps=4)
    assert _run("dpo", tmp_path, config) == 0
    assert json.loads((out / "data_mixture.json").read_text())["reference"]["kind"] == "precomputed"
    assert _losses(out)[0] == pytest.approx(math.log(2), abs=1e-4)  # the precomputed log-probs are the policy's own
    assert _losses(out, "rewards/margins")[-1] > 0


def test_dpo_with_lora_has_no_reference_copy_and_saves_the_merged_model(sft_stages, pairs_file, tmp_path):
    stage1, _ = sft_stages
    out = tmp_path / "dpo-lora"
    config = _dpo_config(stage1, out, pairs_file, use_peft=True, lora_r=4, lora_alpha=8, max_steps=4)
    assert _run("dpo", tmp_path, config) == 0
    assert json.loads((out / "data_mixture.json").read_text())["reference"]["kind"] == "peft"
    assert (out / "adapter" / "adapter_config.json").is_file()
    before, after = _weights(stage1), _weights(out)
    assert after.keys() == before.keys()  # a plain DeepSeek checkpoint, adapter merged in
    assert torch.equal(after["lm_head.weight"], before["lm_head.weight"])  # not a LoRA target
    assert not torch.equal(
        after["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
    )
    assert _losses(out)[0] == pytest.approx(math.log(2), abs=1e-4)  # adapter disabled = the starting model


def test_dpo_reference_is_the_one_asked_for_never_a_reload(sft_stages, align_checkpoint, pairs_file, tmp_path):
    stage1, _ = sft_stages
    policy = AutoModelForCausalLM.from_pretrained(stage1)
    tokenizer = AutoTokenizer.from_pretrained(stage1)
    args = DeepseekDPOConfig(output_dir=str(tmp_path), max_length=64, **{**COMMON, "gradient_checkpointing": False})
    dataset = build_mixture(parse_dataset_specs([{"path": pairs_file, "category": "general"}]), kind="dpo").records
    from datasets import Dataset

    train = Dataset.from_list(dataset)
    model_args = AlignModelArguments(model_name_or_path=str(stage1), ref_model_name_or_path=str(align_checkpoint))
    reference = load_reference(model_args, args, policy)
    trainer = DeepseekDPOTrainer(model=policy, reference=reference, args=args, train_dataset=train,
                                 processing_class=tokenizer)  # fmt: skip
    ref_weights = {k: v for k, v in trainer.ref_model.state_dict().items()}
    base = _weights(align_checkpoint)
    assert all(torch.equal(ref_weights[name], base[name]) for name in base)  # the given reference, not the policy

    # "no reference" without precompute or LoRA: TRL would reload one from the config's path; refused
    with pytest.raises(RuntimeError, match="loaded a reference model by itself"):
        DeepseekDPOTrainer(model=policy, reference=Reference("precomputed", str(stage1)), args=args,
                           train_dataset=train, processing_class=tokenizer)  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rat": 1e-3}, "learning_rat"),
        ({"model_name_or_path": "no/such/model"}, "model_name_or_path 'no/such/model' is not a folder"),
        ({"datasets": [{"path": "no/such.jsonl", "category": "general"}]}, "dataset file 'no/such.jsonl' not found"),
        ({"datasets": [{"path": "x.jsonl", "category": "chat"}]}, "unknown category 'chat'"),
        ({"use_peft": True, "ref_model_name_or_path": "elsewhere"}, "use_peft uses the policy"),
    ],
)
def test_bad_configs_end_in_one_error_line(sft_stages, pairs_file, tmp_path, capsys, change, message):
    stage1, _ = sft_stages
    assert _run("dpo", tmp_path, {**_dpo_config(stage1, tmp_path / "o", pairs_file), **change}) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("recipes/dpo.py: error: ") and message in errors[0], errors


def test_sft_with_no_usable_record_is_an_error(align_checkpoint, tmp_path, capsys):
    data = tmp_path / "empty.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "  "}) + "\n", encoding="utf-8")
    config = {"datasets": [{"path": str(data), "category": "general"}], "model_name_or_path": str(align_checkpoint),
              "output_dir": str(tmp_path / "o"), **COMMON}  # fmt: skip
    assert _run("sft", tmp_path, config) == 1
    assert "no usable record (1 read; empty_response 1)" in capsys.readouterr().err
