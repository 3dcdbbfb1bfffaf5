"""Pretraining throughput: the recipe's loop (PretrainTrainer, DeepseekLLMForCausalLM, packed rows) against a plain
transformers `Trainer` on `LlamaForCausalLM` with the same shapes and the same documents, one document per row
padded to the longest row of its batch (the usual fine-tuning collator), in one process.

Reports, for both: optimizer steps/s, positions/s (all tokens the model computes on, padding included) and real
tokens/s (non-padding tokens, the useful work), their ratio; and the share of compute lost to padding over a whole
epoch with and without packing. On a CUDA GPU it runs in bf16 and adds MFU (model FLOPs = 6 x parameters + the
attention term, per token, over the GPU's dense bf16 peak).

    python benchmarks/bench_pretrain.py                      # CPU defaults: tiny model, rows of 256, 8 per step
    python benchmarks/bench_pretrain.py --layers 8 --hidden 512 --seq-length 1024 --batch-size 16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import (
    DataCollatorForLanguageModeling,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from deepseek_hf.training import PretrainConfig, PretrainTrainer, build_model, build_packed_dataset, load_tokenizer
from deepseek_hf.training.corpus import document_token_ids
from deepseek_hf.training.packing import iter_texts, load_documents

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO_ROOT / "deepseek_hf" / "assets" / "demo" / "corpus_sample.jsonl.gz"
BF16_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


class StepTimer(TrainerCallback):
    """Wall-clock time at the end of every optimizer step."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


class UnpackedDocuments(torch.utils.data.Dataset):
    """One document per row, truncated to `seq_length` (the peer's data)."""

    def __init__(self, documents: list[list[int]], seq_length: int):
        self.rows = [ids[:seq_length] for ids in documents]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return {"input_ids": self.rows[index]}


def padding_share(lengths: np.ndarray, batch_size: int, seed: int) -> float:
    """Share of computed positions that are padding over one epoch, rows padded to the longest of their batch."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    padded = real = 0
    for start in range(0, len(order), batch_size):
        batch = lengths[order[start : start + batch_size]]
        padded += batch.max() * len(batch)
        real += batch.sum()
    return float(1 - real / padded)


def flops_per_token(layers: int, hidden: int, ffn: int, vocab: int, seq_length: int) -> float:
    """Training FLOPs per token: 6 x (attention + SwiGLU + LM head weights) + 12 x layers x hidden x seq (attention)."""
    params = layers * (4 * hidden * hidden + 3 * hidden * ffn) + hidden * vocab
    return 6 * params + 12 * layers * hidden * seq_length


def measure(trainer, timer: StepTimer, warmup_steps: int, tokens_per_step) -> dict:
    trainer.train()
    times = timer.times
    durations = np.diff(times[warmup_steps - 1 :])  # steady state: steps after the warm-up steps
    per_step = float(np.median(durations))
    steps = range(warmup_steps, len(times))
    real = statistics.mean(tokens_per_step(step)[0] for step in steps)
    positions = statistics.mean(tokens_per_step(step)[1] for step in steps)
    return {
        "seconds_per_step": per_step,
        "positions_per_second": positions / per_step,
        "real_tokens_per_second": real / per_step,
        "padding_share_measured": 1 - real / positions,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(DEMO_CORPUS))
    parser.add_argument("--tokenizer", help="tokenizer folder (default: train a 4000-token one on the corpus)")
    parser.add_argument("--seq-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8, help="rows per optimizer step (one device)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup-steps", type=int, default=3, help="first steps left out of the timing")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=768)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_pretrain-"))
    if args.tokenizer is None:
        from deepseek_hf.tokenizer import train_tokenizer

        args.tokenizer = str(work / "tokenizer")
        train_tokenizer([args.corpus], vocab_size=4000, output_dir=args.tokenizer, show_progress=False)
    tokenizer = load_tokenizer(args.tokenizer)
    cuda = torch.cuda.is_available()
    shape = (
        f"num_hidden_layers={args.layers},hidden_size={args.hidden},intermediate_size={args.ffn},"
        f"num_attention_heads={args.heads},num_key_value_heads={args.heads},max_position_embeddings={args.seq_length}"
    )
    common = dict(
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-3,
        logging_steps=args.steps,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
        bf16=cuda,
        use_cpu=not cuda,
        adam_beta2=0.95,
        weight_decay=0.1,
        max_grad_norm=1.0,
    )

    # --- the recipe's loop: packed rows ---
    packed = build_packed_dataset(args.corpus, tokenizer, args.seq_length, cache_dir=work / "tokenized")
    torch.manual_seed(args.seed)
    model = build_model(tokenizer, preset="deepseek-llm-tiny", overrides=shape, attn_implementation="sdpa")
    ours_timer = StepTimer()
    ours = PretrainTrainer(
        model=model,
        args=PretrainConfig(
            output_dir=str(work / "ours"),
            warmup_steps=0,
            plot_loss_curve=False,
            save_stage1_checkpoint=False,
            include_num_input_tokens_seen=False,
            **common,
        ),
        train_dataset=packed,
        callbacks=[ours_timer],
    )
    row_tokens = args.batch_size * args.seq_length
    ours_result = measure(ours, ours_timer, args.warmup_steps, lambda step: (row_tokens, row_tokens))

    # --- the peer: plain Trainer, LlamaForCausalLM, one document per row, padded ---
    documents = document_token_ids(tokenizer, list(iter_texts(load_documents(args.corpus))))
    unpacked = UnpackedDocuments(documents, args.seq_length)
    config = model.config
    torch.manual_seed(args.seed)
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=config.vocab_size,
            hidden_size=args.hidden,
            intermediate_size=args.ffn,
            num_hidden_layers=args.layers,
            num_attention_heads=args.heads,
            num_key_value_heads=args.heads,
            max_position_embeddings=args.seq_length,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
            attn_implementation="sdpa",
        )
    )
    peer_timer, seen = StepTimer(), []

    class CountingCollator(DataCollatorForLanguageModeling):
        def __call__(self, features, return_tensors=None):
            batch = super().__call__(features, return_tensors)
            seen.append((int(batch["attention_mask"].sum()), batch["input_ids"].numel()))
            return batch

    peer = Trainer(
        model=llama,
        args=TrainingArguments(output_dir=str(work / "peer"), lr_scheduler_type="constant", **common),
        train_dataset=unpacked,
        data_collator=CountingCollator(tokenizer, mlm=False),
        callbacks=[peer_timer],
    )
    peer_result = measure(peer, peer_timer, args.warmup_steps, lambda step: seen[step])

    lengths = np.array([len(row) for row in unpacked.rows])
    full_lengths = np.array([len(ids) for ids in documents])
    padding = {
        "without_packing": padding_share(lengths, args.batch_size, args.seed),
        "with_packing": 0.0,  # rows are full; only the corpus' last partial row is left out
        "packing_dropped_tail_share": packed.stats()["dropped_tail_tokens"] / packed.corpus.num_tokens,
        "truncated_share_without_packing": float(1 - lengths.sum() / full_lengths.sum()),
    }
    results = {
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "shape": {
            "layers": args.layers,
            "hidden": args.hidden,
            "heads": args.heads,
            "ffn": args.ffn,
            "vocab": config.vocab_size,
            "seq_length": args.seq_length,
            "batch_size": args.batch_size,
        },
        "recipe_packed": ours_result,
        "trainer_llama_padded": peer_result,
        "ratio_real_tokens_per_second": ours_result["real_tokens_per_second"] / peer_result["real_tokens_per_second"],
        "ratio_positions_per_second": ours_result["positions_per_second"] / peer_result["positions_per_second"],
        "padding_share": padding,
    }
    if cuda:
        peak = next((v for k, v in BF16_PEAK_FLOPS.items() if k in torch.cuda.get_device_name()), None)
        per_token = flops_per_token(args.layers, args.hidden, args.ffn, config.vocab_size, args.seq_length)
        if peak:
            for name in ("recipe_packed", "trainer_llama_padded"):
                results[name]["mfu"] = results[name]["positions_per_second"] * per_token / peak

    print(f"device {results['device']}, shape {results['shape']}")
    print(f"{'':28}{'s/step':>10}{'positions/s':>14}{'real tokens/s':>16}{'padding':>10}")
    for name in ("recipe_packed", "trainer_llama_padded"):
        r = results[name]
        mfu = f"  MFU {r['mfu']:.1%}" if "mfu" in r else ""
        print(
            f"{name:28}{r['seconds_per_step']:>10.3f}{r['positions_per_second']:>14,.0f}"
            f"{r['real_tokens_per_second']:>16,.0f}{r['padding_share_measured']:>10.1%}{mfu}"
        )
    print(
        f"ratio recipe / Trainer+Llama: real tokens/s x{results['ratio_real_tokens_per_second']:.2f}, "
        f"positions/s x{results['ratio_positions_per_second']:.2f}"
    )
    print(
        f"compute lost to padding over an epoch: {padding['without_packing']:.1%} without packing "
        f"(+{padding['truncated_share_without_packing']:.1%} of tokens truncated away), "
        f"{padding['with_packing']:.1%} with packing ({padding['packing_dropped_tail_share']:.2%} tail left out)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if math.isfinite(results["ratio_real_tokens_per_second"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
