"""Llama-format checkpoints (the official release format) <-> ours, through the Python API and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaForCausalLM

from deepseek_hf.checkpoints.cli import main as model_cli
from deepseek_hf.checkpoints.llama_format import (
    config_from_llama,
    convert_checkpoint,
    load_llama_checkpoint,
    save_as_llama,
)
from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM

IDS = torch.tensor([[1, 7, 19, 23, 5, 42, 3, 3, 90], [1, 8, 8, 8, 2, 11, 64, 65, 66]])
GQA = dict(hidden_size=64, num_attention_heads=8, num_key_value_heads=2, intermediate_size=96, vocab_size=97)


def _logits(model):
    with torch.no_grad():
        return model.eval()(IDS).logits


@pytest.fixture
def llama_dir(llama_twin, tmp_path):
    """A Llama-format checkpoint as released: config.json (model_type llama), safetensors, tokenizer files."""
    llama, _ = llama_twin("sdpa", **GQA)
    path = tmp_path / "llama"
    llama.save_pretrained(path, max_shard_size="100KB")  # sharded, with model.safetensors.index.json
    (path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
    return llama, path


def test_load_llama_checkpoint_gives_identical_logits_and_generation(llama_dir):
    llama, path = llama_dir
    assert (path / "model.safetensors.index.json").is_file()
    ours = load_llama_checkpoint(path)
    assert type(ours) is DeepseekLLMForCausalLM and ours.config.num_key_value_heads == 2
    torch.testing.assert_close(_logits(ours), _logits(llama), atol=0, rtol=0)
    kwargs = dict(max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(IDS[:, :4], **kwargs), llama.generate(IDS[:, :4], **kwargs))


def test_config_mapping_keeps_the_architecture(llama_dir):
    llama, path = llama_dir
    config = config_from_llama(path)
    for field in (
        "hidden_size",
        "num_key_value_heads",
        "intermediate_size",
        "rms_norm_eps",
        "rope_parameters",
        "head_dim",
    ):
        assert getattr(config, field) == getattr(llama.config, field), field


def test_cli_round_trip_llama_to_ours_to_llama(llama_dir, tmp_path):
    llama, path = llama_dir
    ours_dir, back_dir = tmp_path / "ours", tmp_path / "back"
    assert model_cli(["from-llama", str(path), str(ours_dir)]) == 0
    config = json.loads((ours_dir / "config.json").read_text())
    assert config["model_type"] == "deepseek_llm" and "AutoModelForCausalLM" in config["auto_map"]
    assert (ours_dir / "modeling_deepseek_llm.py").is_file() and (ours_dir / "tokenizer_config.json").is_file()
    ours = DeepseekLLMForCausalLM.from_pretrained(ours_dir)
    torch.testing.assert_close(_logits(ours), _logits(llama), atol=0, rtol=0)

    assert model_cli(["to-llama", str(ours_dir), str(back_dir)]) == 0
    config = json.loads((back_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and "auto_map" not in config
    assert not list(back_dir.glob("*.py"))
    back = LlamaForCausalLM.from_pretrained(back_dir)
    torch.testing.assert_close(_logits(back), _logits(llama), atol=0, rtol=0)


def test_save_as_llama_from_memory(tiny_config, tmp_path):
    torch.manual_seed(0)
    ours = DeepseekLLMForCausalLM(tiny_config(num_key_value_heads=2, initializer_range=0.2))
    save_as_llama(ours, tmp_path / "llama")
    assert json.loads((tmp_path / "llama" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    llama = LlamaForCausalLM.from_pretrained(tmp_path / "llama")
    torch.testing.assert_close(_logits(llama), _logits(ours), atol=0, rtol=0)


def test_bad_inputs_fail_clearly_and_write_nothing(llama_dir, tmp_path, capsys):
    _, path = llama_dir
    assert model_cli(["from-llama", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(ValueError, match="model_type 'llama'; expected 'deepseek_llm'"):
        convert_checkpoint(path, tmp_path / "out", to="llama")
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_checkpoint(path, tmp_path / "exists", to="deepseek_llm")

    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))  # weights hold 2 layers
    with pytest.raises(ValueError, match="missing.*model.layers.2"):
        convert_checkpoint(path, tmp_path / "out", to="deepseek_llm")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


def test_model_info_cli_prints_the_paper_quantities(capsys):
    assert model_cli(["info", "--preset", "deepseek-llm-7b", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_parameters"] == DeepseekLLMConfig.from_preset("deepseek-llm-7b").num_parameters
    assert info["flops_per_token_M"] == 42278584320
    assert model_cli(["info", "--scale", "8", "512"]) == 0
    table = capsys.readouterr().out
    assert "25,165,824 (25.2M)" in table and "352,321,536 (352M)" in table  # Table 3, first row
    assert model_cli(["info", "--set", "hidden_size=100"]) == 2  # 32 heads do not divide 100
    assert "`num_attention_heads`" in capsys.readouterr().err


def _recipe_output_folder(path, model):
    """What recipes/pretrain.py leaves: the final model + training state, and checkpoints with optimizer state."""
    from transformers import TrainingArguments

    def training_files(folder):
        model.save_pretrained(folder)  # model.safetensors, config.json (+ auto_map), our modeling files
        torch.save(TrainingArguments(output_dir=str(path), report_to=[]), folder / "training_args.bin")  # a pickle
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2}))

    training_files(path)
    (path / "tokenized").mkdir()  # the packed-data cache
    for name in ("checkpoint-2", "stage1-checkpoint-1"):
        training_files(path / name)
        torch.save({"state": {}, "param_groups": []}, path / name / "optimizer.pt")
        torch.save({"last_epoch": 2}, path / name / "scheduler.pt")
        torch.save({"python": [1, 2, 3]}, path / name / "rng_state.pth")
    return path


def test_to_llama_converts_a_recipe_output_folder_and_its_checkpoints(tiny_config, tmp_path, capsys):
    torch.manual_seed(0)
    ours = DeepseekLLMForCausalLM(tiny_config(num_key_value_heads=2, initializer_range=0.2)).eval()
    run = _recipe_output_folder(tmp_path / "run", ours)
    for source in (run, run / "checkpoint-2", run / "stage1-checkpoint-1"):
        out = tmp_path / "llama" / source.name
        assert model_cli(["to-llama", str(source), str(out)]) == 0, capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == ["config.json", "generation_config.json", "model.safetensors"]
        llama = LlamaForCausalLM.from_pretrained(out)
        torch.testing.assert_close(_logits(llama), _logits(ours), atol=0, rtol=0)


def test_to_llama_on_a_run_without_a_final_model_names_its_checkpoints(tiny_config, tmp_path, capsys):
    run = _recipe_output_folder(tmp_path / "run", DeepseekLLMForCausalLM(tiny_config()))
    for file in run.iterdir():  # the run is still going: only checkpoints so far
        if file.is_file():
            file.unlink()
    assert model_cli(["to-llama", str(run), str(tmp_path / "out")]) == 2
    assert "checkpoint-2, stage1-checkpoint-1" in capsys.readouterr().err


def test_unreadable_weights_are_a_clear_error(tiny_config, tmp_path, capsys):
    DeepseekLLMForCausalLM(tiny_config()).save_pretrained(tmp_path / "ours")
    (tmp_path / "ours" / "model.safetensors").write_bytes(b"not a tensor file")  # e.g. a truncated download
    assert model_cli(["to-llama", str(tmp_path / "ours"), str(tmp_path / "out")]) == 2
    assert "cannot read the tensors of" in capsys.readouterr().err and not (tmp_path / "out").exists()
