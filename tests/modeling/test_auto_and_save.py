"""Save/load round trips, Auto-class registration, and loading a checkpoint with only transformers installed."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import deepseek_hf.modeling as modeling_package
from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM, DeepseekLLMModel

IDS = torch.tensor([[1, 7, 19, 23, 5, 42]])


def _logits(model):
    with torch.no_grad():
        return model.eval()(IDS).logits


def test_save_and_reload_round_trip(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(tiny_config(num_key_value_heads=2))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = DeepseekLLMForCausalLM.from_pretrained(tmp_path)
    assert reloaded.config.to_diff_dict() == model.config.to_diff_dict()
    torch.testing.assert_close(_logits(reloaded), _logits(model), atol=0, rtol=0)
    bf16 = DeepseekLLMForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16


def test_auto_classes_resolve_the_model_type(tiny_config, tmp_path):
    config = tiny_config()
    assert isinstance(AutoConfig.for_model("deepseek_llm", hidden_size=64), DeepseekLLMConfig)
    assert type(AutoModelForCausalLM.from_config(config)) is DeepseekLLMForCausalLM
    assert type(AutoModel.from_config(config)) is DeepseekLLMModel

    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(config)
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is DeepseekLLMConfig
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager")
    assert type(loaded) is DeepseekLLMForCausalLM and loaded.config._attn_implementation == "eager"
    torch.testing.assert_close(_logits(loaded), _logits(model), atol=1e-6, rtol=0)
    backbone = AutoModel.from_pretrained(tmp_path)  # the `model.` prefix is stripped for the bare backbone
    torch.testing.assert_close(backbone.embed_tokens.weight, model.model.embed_tokens.weight)


def test_checkpoint_carries_its_code(tiny_config, tmp_path):
    DeepseekLLMForCausalLM(tiny_config()).save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    assert '"AutoModelForCausalLM": "modeling_deepseek_llm.DeepseekLLMForCausalLM"' in config
    assert '"AutoConfig": "configuration_deepseek_llm.DeepseekLLMConfig"' in config
    assert '"AutoModel": "modeling_deepseek_llm.DeepseekLLMModel"' in config  # every natively registered model class
    assert {"modeling_deepseek_llm.py", "configuration_deepseek_llm.py"} <= {p.name for p in tmp_path.iterdir()}


def test_modeling_files_import_only_torch_transformers_and_each_other():
    """`custom_object_save` copies a module and its relative imports only: anything else would break remote code."""
    folder = Path(modeling_package.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {"." if node.level else node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"torch", "transformers", "huggingface_hub", "math", "collections", "."}, (
                path.name,
                roots,
            )


REMOTE_CODE_SCRIPT = """
import sys, torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True)
backbone = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
assert type(backbone).__name__ == "DeepseekLLMModel", type(backbone)
assert "deepseek_hf" not in sys.modules, "the checkpoint must load without the deepseek_hf package"
assert type(model).__name__ == "DeepseekLLMForCausalLM", type(model)
assert AutoConfig.from_pretrained(sys.argv[1], trust_remote_code=True).model_type == "deepseek_llm"
with torch.no_grad():
    logits = model.eval()(torch.tensor([[1, 7, 19, 23, 5, 42]])).logits
    generated = model.generate(torch.tensor([[1, 7, 19]]), max_new_tokens=5, do_sample=False, pad_token_id=0)
    hidden = backbone.eval()(torch.tensor([[1, 7, 19, 23, 5, 42]])).last_hidden_state
torch.save({"logits": logits, "generated": generated, "hidden": hidden}, sys.argv[2])
"""


@pytest.mark.slow
def test_trust_remote_code_load_in_a_fresh_process_without_deepseek_hf(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(tmp_path / "ckpt"), str(tmp_path / "out.pt")],
        cwd=tmp_path,  # not the repo root, whose `modeling/` folder would be importable
        env=env,
        check=True,
        timeout=300,
    )
    result = torch.load(tmp_path / "out.pt")
    torch.testing.assert_close(result["logits"], _logits(model), atol=0, rtol=0)
    with torch.no_grad():
        hidden = model.model.eval()(torch.tensor([[1, 7, 19, 23, 5, 42]])).last_hidden_state
    torch.testing.assert_close(result["hidden"], hidden, atol=0, rtol=0)
    expected = model.generate(torch.tensor([[1, 7, 19]]), max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(result["generated"], expected)


def test_tiny_preset_generates_and_round_trips_quickly(tmp_path):
    """The demo's path: the tiny preset (real 102400 vocab) builds, generates and reloads in seconds on CPU."""
    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(DeepseekLLMConfig.from_preset("deepseek-llm-tiny")).eval()
    prompt = torch.tensor([[100000, 500, 600]])
    generated = model.generate(prompt, max_new_tokens=8, do_sample=False)
    model.save_pretrained(tmp_path)
    reloaded = DeepseekLLMForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded.generate(prompt, max_new_tokens=8, do_sample=False), generated)


def test_docstring_examples_run():
    import doctest

    from deepseek_hf.modeling import configuration_deepseek_llm, modeling_deepseek_llm

    for module in (configuration_deepseek_llm, modeling_deepseek_llm):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
