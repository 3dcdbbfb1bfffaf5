"""`deepseek-hf pretrain|sft|dpo`: the recipe scripts run from the package (`recipes/` installed as
`deepseek_hf.recipes`), shipped configs by name; from a built wheel, where the repository is absent, a short
pretraining run resolves and saves a checkpoint that loads in a fresh process with only transformers
(`AutoModelForCausalLM`, `AutoModel`, `AutoTokenizer`, `trust_remote_code=True`) with the same tokens and logits."""

from __future__ import annotations

import gzip
import importlib.machinery
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from deepseek_hf.cli import COMMANDS, main
from deepseek_hf.recipe_cli import recipes_root, resolve_config, run_recipe, shipped_configs

REPO = Path(__file__).resolve().parents[2]
DEMO_CORPUS = REPO / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"


def test_the_recipes_folder_is_the_package():
    assert recipes_root() == REPO / "recipes"  # the editable install maps it (setup.py)
    assert {"tiny/pretrain/config_cpu.yaml", "deepseek-llm-7b/pretrain/config_full.yaml"} <= set(shipped_configs())
    assert all(not name.startswith("accelerate_configs/") for name in shipped_configs())
    assert all("/pretrain/" in name for name in shipped_configs("pretrain"))


@pytest.mark.parametrize("name", ["tiny/pretrain/config_cpu", "tiny/pretrain/config_cpu.yaml"])
def test_shipped_configs_by_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config(name) == str(REPO / "recipes/tiny/pretrain/config_cpu.yaml")


def test_an_existing_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny/pretrain").mkdir(parents=True)
    (tmp_path / "tiny/pretrain/config_cpu.yaml").write_text("seq_length: 64\n", encoding="utf-8")
    assert resolve_config("tiny/pretrain/config_cpu.yaml") == "tiny/pretrain/config_cpu.yaml"
    assert resolve_config("tiny/pretrain/config_cpu") == str(REPO / "recipes/tiny/pretrain/config_cpu.yaml")


def test_an_unknown_name_lists_the_shipped_configs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--config", "tiny/pretrain/config_gpu"]) == 1
    err = capsys.readouterr().err
    assert "--config tiny/pretrain/config_gpu: no such file, and no shipped config of that name" in err
    assert "tiny/pretrain/config_cpu" in err and "deepseek-llm-7b/pretrain/config_full" in err
    assert "tiny/data/config_demo" not in err  # the pretraining recipe's configs only


@pytest.fixture
def echo_recipe(monkeypatch):
    """A stand-in recipe module `deepseek_hf.recipes.echo` whose `cli(argv)` records its arguments."""
    module = types.ModuleType("deepseek_hf.recipes.echo")
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    module.calls = []
    module.cli = lambda argv=None: module.calls.append(argv) or 7
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_the_wiring_is_generic(echo_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = str(REPO / "recipes/tiny/pretrain/config_cpu.yaml")
    assert run_recipe("echo", ["--config", "tiny/pretrain/config_cpu", "--seq_length", "64"]) == 7
    assert run_recipe("echo", ["--config=tiny/pretrain/config_cpu", "--debug"]) == 7
    assert echo_recipe.calls == [["--config", shipped, "--seq_length", "64"], [f"--config={shipped}", "--debug"]]
    for name in ("pretrain", "sft", "dpo"):
        assert COMMANDS[name][0] == f"deepseek_hf.recipe_cli:{name}"


def test_a_missing_recipe_is_named():
    with pytest.raises(
        FileNotFoundError, match=r"the no_such recipe is not installed \(.*recipes/no_such.py is missing"
    ):
        run_recipe("no_such", ["--config", "tiny/pretrain/config_cpu"])


@pytest.mark.parametrize(
    "name, config, flag",
    [
        ("pretrain", "tiny/pretrain/config_cpu", "--tokenizer_name_or_path"),
        ("sft", "tiny/sft/stage1", "--model_name_or_path"),
        ("dpo", "tiny/dpo/config", "--model_name_or_path"),
    ],
)
def test_an_error_names_the_command_that_was_run(name, config, flag, tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    assert main([name, "--config", config, flag, str(missing), "--output_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"deepseek-hf {name}: error: ") and str(missing) in err, err


def test_pretrain_help_through_the_cli(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--config", "tiny/pretrain/config_cpu", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config CONFIG.yaml" in out and "--max_tokens" in out and "--help-all lists them" in out


# --- from the built wheel ----------------------------------------------------------------------------------------

TINY_MODEL = "num_hidden_layers=2,hidden_size=32,intermediate_size=64,num_attention_heads=2,num_key_value_heads=2"


@pytest.fixture(scope="module")
def installed_run(wheel, tmp_path_factory):
    """The wheel installed into its own folder; `deepseek-hf pretrain --config tiny/pretrain/config_cpu` run from
    there (in a folder with no `recipes/`) for two steps on a small corpus; returns (site folder, run folder)."""
    from deepseek_hf.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("installed_recipes")
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    corpus = root / "corpus.jsonl"
    with gzip.open(DEMO_CORPUS, "rt", encoding="utf-8") as src:
        corpus.write_text("".join(line for _, line in zip(range(60), src)), encoding="utf-8")
    train_tokenizer([corpus], vocab_size=300, output_dir=root / "tokenizer", show_progress=False)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    # In one process (imports are the slow part): which files the module and the name resolve to, then
    # `deepseek-hf pretrain --config tiny/pretrain/config_cpu --help`, then the run (deepseek_hf.cli.main both).
    script = """
import sys, deepseek_hf.recipes.pretrain as m, deepseek_hf.recipe_cli as c, deepseek_hf.cli as cli
print(m.__file__, c.resolve_config("tiny/pretrain/config_cpu"))
try:
    cli.main(["pretrain", "--config", "tiny/pretrain/config_cpu", "--help"])
except SystemExit as exit:
    print("help exit status", exit.code)
sys.exit(cli.main(sys.argv[1:]))
"""
    command = [sys.executable, "-c", script, "pretrain", "--config", "tiny/pretrain/config_cpu"]
    command += ["--tokenizer_name_or_path", "tokenizer", "--dataset_path", "corpus.jsonl", "--output_dir", "run"]
    command += ["--seq_length", "64", "--max_tokens", "1024", "--warmup_steps", "0", "--config_overrides", TINY_MODEL]
    command += ["--report_to", "none", "--save_strategy", "no"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.split()[:2] == [
        str(site / "deepseek_hf/recipes/pretrain.py"),
        str(site / "deepseek_hf/recipes/tiny/pretrain/config_cpu.yaml"),
    ]
    assert "help exit status 0" in result.stdout and "usage: " in result.stdout and "--max_tokens" in result.stdout
    assert "INFO deepseek_hf.recipes.pretrain: Model saved to run" in result.stdout
    return site, root / "run"


@pytest.mark.slow
def test_pretrain_runs_from_the_installed_wheel(installed_run):
    site, run = installed_run
    assert (site / "deepseek_hf/recipes/tiny/pretrain/config_cpu.yaml").is_file()
    assert (site / "deepseek_hf/recipes/accelerate_configs/zero1.yaml").is_file()
    assert not (site / "recipes").exists()
    results = json.loads((run / "all_results.json").read_text(encoding="utf-8"))
    assert results["train_tokens"] == 1024 and results["dataset"] == "corpus.jsonl"
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert (config["num_hidden_layers"], config["hidden_size"]) == (2, 32)
    assert {"model.safetensors", "tokenizer.json", "modeling_deepseek_llm.py"} <= {p.name for p in run.iterdir()}


REMOTE_CODE_SCRIPT = """
import json, sys, torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
path, texts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
backbone = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
assert "deepseek_hf" not in sys.modules, "the checkpoint must load without the deepseek_hf package"
ids = [tokenizer(text).input_ids for text in texts]
chat = tokenizer.apply_chat_template([{"role": "user", "content": texts[0]}], add_generation_prompt=True)
chat = chat["input_ids"] if hasattr(chat, "keys") else chat
with torch.no_grad():
    batch = torch.tensor([ids[0]])
    logits = model(batch).logits
    hidden = backbone(batch).last_hidden_state
    generated = model.generate(batch, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
torch.save({"ids": ids, "chat": list(chat), "logits": logits, "hidden": hidden, "generated": generated,
            "classes": [type(model).__name__, type(backbone).__name__]}, out)
"""


@pytest.mark.slow
def test_the_recipe_checkpoint_loads_with_remote_code_only(installed_run, tmp_path):
    """Fresh process, no deepseek_hf import: the Auto classes with trust_remote_code give our tokens and logits."""
    from deepseek_hf.modeling import DeepseekLLMForCausalLM
    from deepseek_hf.tokenizer import DeepseekLLMTokenizer

    _, run = installed_run
    texts = ["Hello world, 你好，世界！", "The quick brown fox.\n\n  def f(x): return x"]
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(run), json.dumps(texts), str(tmp_path / "out.pt")],
        cwd=tmp_path,  # not the repository root, whose `modeling/` folder would be importable
        env=env,
        check=True,
        timeout=300,
    )
    remote = torch.load(tmp_path / "out.pt")
    assert remote["classes"] == ["DeepseekLLMForCausalLM", "DeepseekLLMModel"]
    tokenizer = DeepseekLLMTokenizer.from_pretrained(run)
    model = DeepseekLLMForCausalLM.from_pretrained(run).eval()
    assert remote["ids"] == [tokenizer(text).input_ids for text in texts]
    ours_chat = tokenizer.apply_chat_template([{"role": "user", "content": texts[0]}], add_generation_prompt=True)
    assert remote["chat"] == list(ours_chat["input_ids"] if hasattr(ours_chat, "keys") else ours_chat)
    batch = torch.tensor([remote["ids"][0]])
    with torch.no_grad():
        torch.testing.assert_close(remote["logits"], model(batch).logits, atol=0, rtol=0)
        torch.testing.assert_close(remote["hidden"], model.model(batch).last_hidden_state, atol=0, rtol=0)
        expected = model.generate(batch, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert torch.equal(remote["generated"], expected)
