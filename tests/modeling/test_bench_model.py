"""`benchmarks/bench_model.py` parses its GPU command line and sizes its configs as documented (it is run, not
tested, on CPU: see benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_model.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_model", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_command_line_parses_to_a_1b_config(bench):
    args = bench.parse_args(
        "--device cuda --dtype bfloat16 --attn flash_attention_2 --scale 16 2048 --seq-len 4096 --batch-size 4".split()
    )
    config = bench.build_config(args)
    assert (args.device, args.dtype, args.attn) == ("cuda", "bfloat16", "flash_attention_2")
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (16, 2048, 16)
    assert config.max_position_embeddings == 4096 and config.vocab_size == 102400
    assert 1.0e9 < config.num_parameters < 1.5e9


def test_default_cpu_config_and_flop_count(bench):
    config = bench.build_config(bench.parse_args([]))
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.vocab_size) == (
        4,
        256,
        4,
        102400,
    )
    # 6·N_matmul + 12·n_layer·d·seq, N_matmul = all parameters but the input embedding and the norm weights
    n_matmul = config.num_parameters - 102400 * 256 - 256 * 9
    assert bench.training_flops_per_token(config, 512) == 6 * n_matmul + 12 * 4 * 256 * 512
