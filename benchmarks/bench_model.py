"""DeepseekLLMForCausalLM vs transformers' LlamaForCausalLM with the same weights, measured in the same command.

One shared config with the real 102400 vocabulary; both models get identical weights and inputs.

- train step: forward + backward + AdamW step with `labels` (ours: fused chunked linear + cross-entropy, no full
  logits; Llama: full float32 logits + `ForCausalLMLoss`). Both models live in one worker process and their steps
  alternate (ours, llama, llama, ours, ...), so background load hits both alike; median over `--steps` after
  `--warmup`.
- forward throughput: tokens/s of `model(input_ids)` (full logits, eval mode, no grad), alternating the same way.
- peak memory of a train step: one fresh process per model, two train steps; the peak above the set-up baseline
  (model + optimizer built, weights loaded). CPU: peak RSS (`VmHWM`, reset through `/proc/self/clear_refs` right
  before the first step) minus the RSS at that point. CUDA: `max_memory_allocated` minus `memory_allocated`.
  Both include the gradients and AdamW states (identical for the two models) and everything transient.
- MFU (CUDA only): training tokens/s × (6·N_matmul + 12·n_layer·d·seq) / peak bf16 FLOP/s.

CPU (the recorded figures):
    python benchmarks/bench_model.py
A ~1B model at 4096 context on a GPU with flash-attn:
    python benchmarks/bench_model.py --device cuda --dtype bfloat16 --attn flash_attention_2 \\
        --scale 16 2048 --seq-len 4096 --batch-size 4 --steps 10
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"train_step_s": 1.0, "peak_memory_mb": 0.6}
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model (one config shared by both implementations)")
    model.add_argument("--vocab-size", type=int, default=102400)
    model.add_argument("--hidden-size", type=int, default=256)
    model.add_argument("--num-layers", type=int, default=4)
    model.add_argument("--head-dim", type=int, default=64, help="attention heads = hidden size / head dim")
    model.add_argument("--num-kv-heads", type=int, default=None, help="GQA key/value heads (default: MHA)")
    model.add_argument(
        "--scale",
        nargs=2,
        type=int,
        metavar=("N_LAYER", "D_MODEL"),
        help="a DeepSeek family member (head_dim 128, FFN 8/3·d), e.g. `16 2048` (~1.2B); overrides the sizes above",
    )
    model.add_argument(
        "--loss-chunk-size", type=int, default=None, help="ours: tokens per loss chunk (config default)"
    )
    run = parser.add_argument_group("run")
    run.add_argument("--seq-len", type=int, default=512)
    run.add_argument("--batch-size", type=int, default=4)
    run.add_argument("--steps", type=int, default=5, help="timed train steps per run")
    run.add_argument("--warmup", type=int, default=1, help="untimed train steps first")
    run.add_argument("--forward-steps", type=int, default=3, help="timed inference forwards per run")
    run.add_argument("--device", default="cpu", help="cpu or cuda")
    run.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    run.add_argument("--attn", default="sdpa", choices=["eager", "sdpa", "flash_attention_2", "flash_attention_3"])
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    run.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak bf16 TFLOP/s for MFU (auto for H100/H200/A100)"
    )
    run.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    parser.add_argument("--worker", choices=["timing", "memory-deepseek", "memory-llama"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_config(args):
    from deepseek_hf.modeling import DeepseekLLMConfig

    common = dict(
        vocab_size=args.vocab_size, max_position_embeddings=max(args.seq_len, 4096), bos_token_id=0, eos_token_id=1
    )
    if args.loss_chunk_size:
        common["loss_chunk_size"] = args.loss_chunk_size
    if args.scale:
        return DeepseekLLMConfig.from_scale(*args.scale, num_key_value_heads=args.num_kv_heads, **common)
    return DeepseekLLMConfig.from_scale(
        args.num_layers, args.hidden_size, head_dim=args.head_dim, num_key_value_heads=args.num_kv_heads, **common
    )


# ------------------------------------------------------------------------------------------------------------------
# worker: one model, one process
# ------------------------------------------------------------------------------------------------------------------
def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _build(kind: str, args, config):
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM

    from deepseek_hf.checkpoints.llama_format import config_to_llama
    from deepseek_hf.modeling import DeepseekLLMForCausalLM

    dtype = getattr(torch, args.dtype)
    if kind == "deepseek":
        model = DeepseekLLMForCausalLM._from_config(config, attn_implementation=args.attn, dtype=dtype)
    else:
        model = LlamaForCausalLM._from_config(config_to_llama(config), attn_implementation=args.attn, dtype=dtype)
    model.load_state_dict(load_file(str(args.weights)), strict=True, assign=True)
    model.to(device=args.device, dtype=dtype).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    return model, optimizer


def _train_step(model, optimizer, input_ids) -> float:
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()  # also synchronizes the device


def _input_ids(args):
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len), generator=generator).to(args.device)


def run_timing_worker(args) -> dict:
    """Both models in one process, steps alternating (ours, llama, llama, ours, ...): machine load hits both alike."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    config, input_ids = build_config(args), _input_ids(args)
    models = {kind: _build(kind, args, config) for kind in ("deepseek", "llama")}
    times = {kind: {"train": [], "forward": []} for kind in models}
    first_loss = {}
    for step in range(args.warmup + args.steps):
        for kind in sorted(models, reverse=step % 2 == 1):
            _sync(input_ids.device)
            start = time.perf_counter()
            loss = _train_step(*models[kind], input_ids)
            if step >= args.warmup:
                times[kind]["train"].append(time.perf_counter() - start)
            first_loss.setdefault(kind, loss)
    with torch.no_grad():
        for model, _ in models.values():
            model.eval()
        for step in range(1 + args.forward_steps):
            for kind in sorted(models, reverse=step % 2 == 1):
                _sync(input_ids.device)
                start = time.perf_counter()
                models[kind][0](input_ids=input_ids, use_cache=False)
                _sync(input_ids.device)
                if step:
                    times[kind]["forward"].append(time.perf_counter() - start)
    tokens = input_ids.numel()
    return {
        kind: {
            "train_step_s": statistics.median(times[kind]["train"]),
            "forward_tokens_per_s": tokens / statistics.median(times[kind]["forward"]),
            "first_loss": first_loss[kind],
        }
        for kind in models
    } | {
        "device_name": torch.cuda.get_device_name() if input_ids.is_cuda else "cpu",
        "threads": torch.get_num_threads(),
    }


def run_memory_worker(args) -> dict:
    """One model per fresh process: peak memory of two train steps above the set-up baseline."""
    import torch
    from _peak_memory import peak_memory  # beside this script (workers run it as a script)

    if args.threads:
        torch.set_num_threads(args.threads)
    kind = args.worker.removeprefix("memory-")
    config, input_ids = build_config(args), _input_ids(args)
    model, optimizer = _build(kind, args, config)
    gc.collect()
    with peak_memory(input_ids.is_cuda) as measured:
        for _ in range(2):  # the first step also creates the AdamW states
            _train_step(model, optimizer, input_ids)
    return measured


# ------------------------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------------------------
def training_flops_per_token(config, seq_len: int) -> float:
    """6·N_matmul + 12·n_layer·d·seq (PaLM appendix B); N_matmul = parameters in matmuls (no embedding lookup)."""
    n_matmul = config.num_parameters - config.vocab_size * config.hidden_size * (
        0 if config.tie_word_embeddings else 1
    )
    n_matmul -= config.hidden_size * (2 * config.num_hidden_layers + 1)  # norm weights
    return 6 * n_matmul + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_timing_worker(args) if args.worker == "timing" else run_memory_worker(args)
        print("RESULT " + json.dumps(result))
        return 0

    import torch
    from safetensors.torch import save_file

    from deepseek_hf.modeling import DeepseekLLMForCausalLM

    config = build_config(args)
    forwarded = list(argv if argv is not None else sys.argv[1:])  # workers ignore --json
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.safetensors"
        torch.manual_seed(0)
        save_file(DeepseekLLMForCausalLM(config).state_dict(), str(weights))  # one set of weights for both

        def worker(name: str) -> dict:
            command = [sys.executable, __file__, *forwarded, "--worker", name, "--weights", str(weights)]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if done.returncode != 0:
                raise RuntimeError(f"worker {name} failed:\n{done.stdout}\n{done.stderr}")
            return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])

        timing = worker("timing")
        memory = {kind: worker(f"memory-{kind}") for kind in ("deepseek", "llama")}
    median = {kind: {**timing[kind], **memory[kind]} for kind in ("deepseek", "llama")}
    ours, llama = median["deepseek"], median["llama"]
    device_name, threads = timing["device_name"], timing["threads"]
    print(
        f"config: {config.num_hidden_layers} layers, d {config.hidden_size}, {config.num_attention_heads} heads "
        f"({config.num_key_value_heads} kv), FFN {config.intermediate_size}, vocab {config.vocab_size}, "
        f"{config.num_parameters / 1e6:.1f}M params; batch {args.batch_size} x seq {args.seq_len}; {args.dtype}, "
        f"{args.attn}, {device_name}"
        + (f" ({threads} threads)" if args.device == "cpu" else "")
        + f"; medians of {args.steps} alternating train steps, {args.forward_steps} forwards; loss chunk "
        f"{config.loss_chunk_size} tokens"
    )
    print(f"{'':<26}{'ours':>12}{'llama':>12}{'ratio':>9}{'target':>9}")
    rows = [
        ("train step (s)", "train_step_s", "{:.3f}"),
        ("peak memory (MiB)", "peak_memory_mb", "{:.0f}"),
        ("forward (tokens/s)", "forward_tokens_per_s", "{:.0f}"),
    ]
    ok = True
    for label, key, fmt in rows:
        ratio = ours[key] / llama[key]
        target = TARGETS.get(key)
        verdict = "" if target is None else (f"<={target}x " + ("ok" if ratio <= target else "MISSED"))
        ok &= target is None or ratio <= target
        print(f"{label:<26}{fmt.format(ours[key]):>12}{fmt.format(llama[key]):>12}{ratio:>8.2f}x  {verdict}")
    loss_gap = abs(ours["first_loss"] - llama["first_loss"])
    print(f"first-step loss: ours {ours['first_loss']:.6f}, llama {llama['first_loss']:.6f} (|diff| {loss_gap:.1e})")
    results = {"config": config.to_diff_dict(), "args": {k: str(v) for k, v in vars(args).items()}, "median": median}
    if args.device.startswith("cuda"):
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)
        flops = training_flops_per_token(config, args.seq_len)
        tokens = args.batch_size * args.seq_len
        for kind, values in median.items():
            achieved = tokens / values["train_step_s"] * flops / 1e12
            mfu = f", MFU {100 * achieved / peak:.1f}% of {peak:.0f}" if peak else " (pass --peak-tflops for MFU)"
            print(f"{kind}: {tokens / values['train_step_s']:.0f} training tokens/s, {achieved:.1f} TFLOP/s{mfu}")
            results.setdefault("mfu", {})[kind] = achieved / peak if peak else None
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
