"""Alignment throughput and memory: the recipes' trainers (`DeepseekSFTTrainer` / `DeepseekDPOTrainer` on
`DeepseekLLMForCausalLM`, as recipes/sft.py and recipes/dpo.py build them) against TRL's own `SFTTrainer` /
`DPOTrainer` on `LlamaForCausalLM` of the same shape (vocabulary 102400, the paper's), on the same data (the shipped
demo mixture, converted once) with the same settings, in one command.

Each run (SFT ours / peer, DPO ours / peer, `--repeats` of each in ABBA order; medians reported) is a fresh subprocess, so peak memory (benchmarks/
_peak_memory.py: peak RSS on CPU, peak allocated on CUDA) is that run's alone. Tokens/s: the trainers' own
`num_tokens` count (non-padding tokens; DPO counts prompt + chosen + rejected) over the steps after the warm-up.

    python benchmarks/bench_align.py                          # CPU: 2 layers, d_model 64, rows <= 192 tokens
    python benchmarks/bench_align.py --layers 4 --hidden 512 --max-length 512 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEMO_CORPUS = REPO_ROOT / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"
SFT_DATA = [
    {"path": "package://align_demo/sft_general.jsonl", "format": "alpaca", "category": "general"},
    {"path": "package://align_demo/sft_math.jsonl", "format": "alpaca", "category": "math"},
    {"path": "package://align_demo/sft_code.jsonl", "format": "alpaca", "category": "code"},
    {"path": "package://align_demo/sft_dialogue_identity.jsonl", "format": "messages", "category": "dialogue"},
]
DPO_DATA = [
    {"path": "package://align_demo/dpo_en.json", "format": "sharegpt_preference", "category": "general"},
    {"path": "package://align_demo/dpo_zh.json", "format": "sharegpt_preference", "category": "general"},
]
RUNS = ("sft-ours", "sft-peer", "dpo-ours", "dpo-peer")


def _models(args, tokenizer):
    """Ours (DeepseekLLMForCausalLM) and the peer (LlamaForCausalLM), same shape and vocabulary, untied heads."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM

    shape = dict(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.ffn,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=args.max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(args.seed)
    ours = DeepseekLLMForCausalLM(DeepseekLLMConfig(**shape, attn_implementation="sdpa"))
    torch.manual_seed(args.seed)
    peer = LlamaForCausalLM(LlamaConfig(**shape, tie_word_embeddings=False, attn_implementation="sdpa"))
    return ours, peer


def worker(args) -> dict:
    """One run: build the trainer, train `--steps` steps, report tokens/s after the warm-up and the peak memory."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    sys.path.insert(0, str(BENCH_DIR))
    from _peak_memory import peak_memory

    from deepseek_hf.alignment import (
        DeepseekDPOTrainer,
        DeepseekSFTTrainer,
        Reference,
        build_mixture,
        ensure_training_chat_template,
        parse_dataset_specs,
        preference_length,
        sft_length,
    )

    torch.set_num_threads(args.threads) if args.threads else None
    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    ensure_training_chat_template(tokenizer)
    kind, side = args.worker.split("-")
    specs = parse_dataset_specs(SFT_DATA if kind == "sft" else DPO_DATA)
    length = sft_length(tokenizer) if kind == "sft" else preference_length(tokenizer)
    mixture = build_mixture(specs, kind=kind, length_fn=length, max_length=args.max_length, seed=args.seed)
    records = [{k: v for k, v in r.items() if k != "category"} for r in mixture.records]
    dataset = Dataset.from_list(records)
    ours, peer = _models(args, tokenizer)
    model = ours if side == "ours" else peer
    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"bench_align-{args.worker}-"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        disable_tqdm=True,
        bf16=cuda,
        use_cpu=not cuda,
        gradient_checkpointing=False,
        max_length=args.max_length,
        dataloader_num_workers=0,
    )

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, float]] = []  # (time, cumulative num_tokens) per logged step

        def on_log(self, a, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                if cuda:
                    torch.cuda.synchronize()
                self.marks.append((time.perf_counter(), float(logs["num_tokens"])))

    clock = Clock()
    if kind == "sft":
        config = SFTConfig(assistant_only_loss=True, **common)
        trainer_class = DeepseekSFTTrainer if side == "ours" else SFTTrainer
        trainer = trainer_class(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    else:
        config = DPOConfig(**common)
        reference = copy.deepcopy(model)
        if side == "ours":
            trainer = DeepseekDPOTrainer(model=model, reference=Reference("explicit", None, reference), args=config,
                                         train_dataset=dataset, processing_class=tokenizer)  # fmt: skip
        else:
            trainer = DPOTrainer(model=model, ref_model=reference, args=config, train_dataset=dataset,
                                 processing_class=tokenizer)  # fmt: skip
    del ours, peer
    trainer.add_callback(clock)
    with peak_memory(cuda) as measured:
        trainer.train()
    (t0, n0), (t1, n1) = clock.marks[args.warmup_steps - 1], clock.marks[-1]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "tokens_per_second": (n1 - n0) / (t1 - t0),
        "seconds_per_step": (t1 - t0) / (len(clock.marks) - args.warmup_steps),
        "peak_memory_mb": measured["peak_memory_mb"],
        "first_loss": losses[0],
        "examples": len(dataset),
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", help="tokenizer folder (default: train a 4000-token one on the demo corpus)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=192)
    parser.add_argument("--vocab", type=int, default=102400, help="the paper's vocabulary (102400)")
    parser.add_argument("--max-length", type=int, default=192, help="longer examples are dropped (both sides)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, in ABBA order (medians reported)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        Path(args.worker_out).write_text(json.dumps(worker(args)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench_align-"))
    if args.tokenizer is None:
        from deepseek_hf.tokenizer import train_tokenizer

        args.tokenizer = str(work / "tokenizer")
        train_tokenizer([str(DEMO_CORPUS)], vocab_size=4000, output_dir=args.tokenizer, show_progress=False)
    shared = ("layers", "hidden", "heads", "ffn", "vocab", "max_length", "batch_size", "steps", "warmup_steps",
              "threads", "seed")  # fmt: skip
    passed = [item for key in shared for item in (f"--{key.replace('_', '-')}", str(getattr(args, key)))]
    results = {"shape": {k: getattr(args, k) for k in ("layers", "hidden", "heads", "ffn", "vocab", "max_length",
                                                       "batch_size", "steps", "warmup_steps")}}  # fmt: skip
    # ours, peer, peer, ours, ... (ABBA): a load that drifts during the command weighs on both sides alike
    order = [("ours", "peer") if i % 2 == 0 else ("peer", "ours") for i in range(args.repeats)]
    for kind in ("sft", "dpo"):
        measured = {"ours": [], "peer": []}
        for index, side in enumerate(side for pair in order for side in pair):
            run, out = f"{kind}-{side}", work / f"{kind}-{side}-{index}.json"
            command = [sys.executable, __file__, *passed, "--tokenizer", args.tokenizer, "--worker", run,
                       "--worker-out", str(out)]  # fmt: skip
            print(f"running {run} ({index // 2 + 1} of {args.repeats}) ...", flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            measured[side].append(json.loads(out.read_text()))
        for side, runs in measured.items():
            median = {key: statistics.median(r[key] for r in runs) for key in ("tokens_per_second",
                      "seconds_per_step", "peak_memory_mb")}  # fmt: skip
            results[f"{kind}-{side}"] = {**runs[0], **median, "runs": runs}
    for kind in ("sft", "dpo"):
        ours, peer = results[f"{kind}-ours"], results[f"{kind}-peer"]
        results[f"{kind}_ratio_tokens_per_second"] = ours["tokens_per_second"] / peer["tokens_per_second"]
        results[f"{kind}_ratio_peak_memory"] = ours["peak_memory_mb"] / peer["peak_memory_mb"]

    print(f"device {results['sft-ours']['device']}, shape {results['shape']}")
    print(f"{'':34}{'tokens/s':>10}{'s/step':>9}{'peak MB':>10}{'examples':>10}")
    names = {"ours": "recipe (DeepseekLLM)", "peer": "TRL + LlamaForCausalLM"}
    for kind in ("sft", "dpo"):
        for side in ("ours", "peer"):
            r = results[f"{kind}-{side}"]
            label = f"{kind.upper()} {names[side]}"
            print(f"{label:34}{r['tokens_per_second']:>10.0f}{r['seconds_per_step']:>9.2f}"
                  f"{r['peak_memory_mb']:>10.0f}{r['examples']:>10}")  # fmt: skip
        print(f"{kind.upper() + ' ratio recipe / peer':34}{results[f'{kind}_ratio_tokens_per_second']:>10.2f}x"
              f"{'':>8}{results[f'{kind}_ratio_peak_memory']:>9.2f}x")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
