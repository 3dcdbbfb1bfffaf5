"""`--model deepseek` (DeepseekLM) vs `--model hf` (HFLM): items/s and peak memory on the same model and requests.

The requests are the real ones: the lead's lm-eval tasks (`deepseek_cmmlu_<subject>`, 5-shot letters after "答案：",
and `deepseek_arc_easy`, 0-shot option texts after "Answer:"; both with their unconditional requests for
acc_mutual_info / acc_uncond) are run once through `lm_eval.simple_evaluate` with a recording model, which keeps
the tokenized `(context_enc, continuation_enc)` requests; every scorer then scores exactly those through
`_loglikelihood_tokens` (tokenization, identical for both, is left out of the timings). Data come from
`$DEEPSEEK_HF_EVAL_DATA` (default `../shared/data`), the tokenizer is the real one rebuilt from the GGUF vocabulary.

Two random-init model shapes (float32, sdpa):
- `vocab`: bench_model.py's config (4 layers, d 256, vocabulary 102400): the output layer is ~90% of the FLOPs,
  so computing logits only at the continuation positions is where the time goes.
- `deep`: 8 layers, d 512, vocabulary 4096 (token ids folded into it, `id % 4096`, for both scorers alike): the
  output layer is < 10% of the FLOPs, so the gain comes from running each context once and the shared 5-shot
  prefix once.

Per shape and task, both scorers in one worker process on one model instance: each at every `--batch-sizes` (hf:
requests per forward; deepseek: rows, i.e. items, per forward), its best kept, then the two at their best
alternating (items/s = documents scored per second, median of `--repeats`). Their
log-likelihoods are compared request by request. Peak memory: one fresh process per scorer (at its best batch
size), peak RSS (`VmHWM`, reset through `/proc/self/clear_refs` once the model and scorer are built) minus the RSS
then (CUDA: `max_memory_allocated` minus `memory_allocated`); deepseek's includes its one-off probe.

CPU (the recorded figures):
    python benchmarks/bench_eval.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GGUF = Path("tokenizer") / "deepseek-llm" / "ggml-vocab-deepseek-llm.gguf"
SHAPES = {  # name: (layers, d_model, vocabulary); head_dim 64, FFN 8/3 d
    "vocab": (4, 256, 102400),
    "deep": (8, 512, 4096),
}
TARGETS = {"vocab": 5.0, "deep": 2.0}  # items/s, deepseek / hf, at least (CMMLU: few-shot letters)
MEMORY_TARGET = 1.0  # ours / hf, at most
MEMORY_FLOOR_MB = 32  # below this on both sides, peak RSS is allocator noise: the ratio is shown, not judged


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("requests")
    data.add_argument("--cmmlu-subject", default="high_school_biology", help="the deepseek_cmmlu_<subject> task")
    data.add_argument("--limit", type=int, default=16, help="documents per task")
    data.add_argument("--data", type=Path, default=None, help="$DEEPSEEK_HF_EVAL_DATA (default ../shared/data)")
    data.add_argument("--tokenizer", type=Path, default=None, help="a saved DeepSeek tokenizer dir (else rebuilt)")
    run = parser.add_argument_group("run")
    run.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    run.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 16], help="each scorer's best is kept")
    run.add_argument("--repeats", type=int, default=2, help="alternating timed runs of deepseek and best hf")
    run.add_argument("--device", default="cpu")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    parser.add_argument("--worker", choices=["timing", "memory-deepseek", "memory-hf"], help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shape", choices=list(SHAPES), help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--worker-batch-size", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_config(shape: str):
    from deepseek_hf.modeling import DeepseekLLMConfig

    layers, width, vocab = SHAPES[shape]
    return DeepseekLLMConfig.from_scale(
        layers, width, head_dim=64, vocab_size=vocab, max_position_embeddings=4096, bos_token_id=0, eos_token_id=1
    )


def head_flops_share(config) -> float:
    """Output-layer share of the matmul FLOPs per token (attention score FLOPs left out, which only lowers it)."""
    head = config.vocab_size * config.hidden_size
    body = config.num_hidden_layers * (
        config.hidden_size * (config.num_attention_heads + 2 * config.num_key_value_heads) * config.head_dim
        + config.num_attention_heads * config.head_dim * config.hidden_size
        + 3 * config.hidden_size * config.intermediate_size
    )
    return head / (head + body)


# ------------------------------------------------------------------------------------------------------------------
# requests: the real tasks through simple_evaluate, recorded once
# ------------------------------------------------------------------------------------------------------------------
def record_requests(args, tokenizer) -> dict[str, dict]:
    """`{task: {"docs": n, "requests": [[context_enc, continuation_enc], ...]}}` as lm-eval builds them."""
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    import deepseek_hf.eval
    from deepseek_hf.eval.scorer import DeepseekLM
    from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM

    tiny = DeepseekLLMConfig.from_scale(1, 64, head_dim=64, vocab_size=102400, bos_token_id=0, eos_token_id=1)
    lm = DeepseekLM(pretrained=DeepseekLLMForCausalLM(tiny), tokenizer=tokenizer, batch_size=1, device="cpu")
    recorded: list = []

    def record(requests, disable_tqdm=False, override_bs=None):
        recorded.extend(requests)
        return [(0.0, False)] * len(requests)

    lm._loglikelihood_tokens = record
    tasks = {"cmmlu": f"deepseek_cmmlu_{args.cmmlu_subject}", "arc_easy": "deepseek_arc_easy"}
    manager = TaskManager(
        include_path=deepseek_hf.eval.task_dir(), include_defaults=False, metadata={"tokenizer": tokenizer}
    )
    out = {}
    with torch.no_grad():
        for name, task in tasks.items():
            recorded.clear()
            evaluated = lm_eval.simple_evaluate(
                model=lm, tasks=[task], limit=args.limit, task_manager=manager, bootstrap_iters=0, log_samples=True
            )
            docs = len(evaluated["samples"][task])
            out[name] = {"task": task, "docs": docs, "requests": [[ctx, cont] for _, ctx, cont in recorded]}
    return out


def load_requests(path: Path, task: str, vocab: int) -> tuple[int, list]:
    data = json.loads(path.read_text())[task]
    fold = (lambda ids: [i % vocab for i in ids]) if vocab < 102400 else (lambda ids: ids)
    requests = [((None, None), fold(ctx), fold(cont)) for ctx, cont in data["requests"]]
    return data["docs"], requests


# ------------------------------------------------------------------------------------------------------------------
# workers
# ------------------------------------------------------------------------------------------------------------------
def _setup(args):
    import torch
    from transformers import AutoTokenizer

    from deepseek_hf.modeling import DeepseekLLMForCausalLM

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the same weights in every worker
    model = DeepseekLLMForCausalLM._from_config(build_config(args.shape), attn_implementation="sdpa")
    model.to(args.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    return model, tokenizer


def _scorer(kind: str, model, tokenizer, batch_size: int, device: str):
    from lm_eval.models.huggingface import HFLM

    from deepseek_hf.eval.scorer import DeepseekLM

    cls = DeepseekLM if kind == "deepseek" else HFLM
    return cls(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)


def _timed(lm, requests, device) -> tuple[float, list]:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    results = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, results


def run_timing_worker(args) -> dict:
    """Both scorers on one model instance in one process: each once at every batch size, then each at its best
    alternating (deepseek, hf, hf, deepseek, ...) `--repeats` times, medians kept, so background load hits both
    alike."""
    import statistics

    import torch

    model, tokenizer = _setup(args)
    docs, requests = load_requests(args.requests, args.task, model.config.vocab_size)
    sweep, results, best, scorers = {}, {}, {}, {}
    for kind in ("deepseek", "hf"):
        for batch_size in args.batch_sizes:
            lm = _scorer(kind, model, tokenizer, batch_size, args.device)
            lm._loglikelihood_tokens(requests[:1], disable_tqdm=True)  # warm-up (and deepseek's one-off probe)
            sweep[kind, batch_size], results[kind, batch_size] = _timed(lm, requests, args.device)
        best[kind] = min(args.batch_sizes, key=lambda b: sweep[kind, b])
        scorers[kind] = _scorer(kind, model, tokenizer, best[kind], args.device)
        scorers[kind]._loglikelihood_tokens(requests[:1], disable_tqdm=True)
    ours = scorers["deepseek"]
    ours.work.clear()
    times = {"deepseek": [], "hf": []}
    for step in range(args.repeats):
        for kind in sorted(times, reverse=step % 2 == 1):
            times[kind].append(_timed(scorers[kind], requests, args.device)[0])
    expected, ours_results = results["hf", best["hf"]], results["deepseek", best["deepseek"]]
    gaps = [abs(a[0] - b[0]) for a, b in zip(expected, ours_results)]
    work = {key: value // args.repeats for key, value in ours.work.items()}
    # what hf feeds: one row per distinct context + continuation[:-1] (its logits cache), all through the head
    hf_rows = {tuple(ctx + cont[:-1]): len((ctx + cont)[-(ours.max_length + 1) :]) - 1 for _, ctx, cont in requests}
    return {
        "docs": docs,
        "requests": len(requests),
        "seconds": {kind: statistics.median(times[kind]) for kind in times},
        "best_batch_size": best,
        "sweep_seconds": {f"{kind} bs {batch_size}": seconds for (kind, batch_size), seconds in sweep.items()},
        "max_abs_diff": max(gaps),
        "greedy_agree": sum(a[1] == b[1] for a, b in zip(expected, ours_results)) / len(requests),
        "ours_work": work,
        "hf_tokens": sum(hf_rows.values()),  # padding left out
        "threads": torch.get_num_threads(),
    }


def run_memory_worker(args) -> dict:
    """One scorer per fresh process: peak memory of scoring all requests above the baseline after set-up (model
    built, scorer constructed)."""
    import gc

    from _peak_memory import peak_memory  # beside this script (workers run it as a script)

    kind = args.worker.removeprefix("memory-")
    model, tokenizer = _setup(args)
    _, requests = load_requests(args.requests, args.task, model.config.vocab_size)
    lm = _scorer(kind, model, tokenizer, args.worker_batch_size, args.device)
    gc.collect()  # no warm-up call: its freed buffers, kept by the allocator, would hide the peak
    with peak_memory(args.device.startswith("cuda")) as measured:
        lm._loglikelihood_tokens(requests, disable_tqdm=True)
    return measured


# ------------------------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_timing_worker(args) if args.worker == "timing" else run_memory_worker(args)
        print("RESULT " + json.dumps(result))
        return 0

    data = args.data or Path(os.environ.get("DEEPSEEK_HF_EVAL_DATA", REPO_ROOT.parent / "shared" / "data"))
    os.environ["DEEPSEEK_HF_EVAL_DATA"] = str(data)
    forwarded = list(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        from transformers import AutoTokenizer

        tokenizer_dir = args.tokenizer
        if tokenizer_dir is None:
            from deepseek_hf.tokenizer import save_tokenizer, tokenizer_from_gguf

            print(f"rebuilding the tokenizer from {data / GGUF} ...", flush=True)
            tokenizer_dir = Path(tmp) / "tokenizer"
            save_tokenizer(tokenizer_from_gguf(data / GGUF), tokenizer_dir)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        recorded = record_requests(args, tokenizer)
        requests_path = Path(tmp) / "requests.json"
        requests_path.write_text(json.dumps(recorded))

        def worker(name: str, shape: str, task: str, *extra: str) -> dict:
            command = [sys.executable, __file__, *forwarded, "--worker", name, "--requests", str(requests_path)]
            command += ["--tokenizer", str(tokenizer_dir), "--shape", shape, "--task", task, *extra]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if done.returncode != 0:
                raise RuntimeError(f"worker {name} {shape} {task} failed:\n{done.stdout}\n{done.stderr}")
            return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])

        results, ok = {}, True
        for shape in args.shapes:
            config = build_config(shape)
            print(
                f"\nshape {shape!r}: {config.num_hidden_layers} layers, d {config.hidden_size}, vocab "
                f"{config.vocab_size}, {config.num_parameters / 1e6:.1f}M params, output layer "
                f"{100 * head_flops_share(config):.0f}% of the matmul FLOPs; float32, sdpa, {args.device}",
                flush=True,
            )
            print(f"{'':<38}{'deepseek':>12}{'hf':>12}{'ratio':>9}{'target':>10}")
            for task, info in recorded.items():
                timing = worker("timing", shape, task)
                best = timing["best_batch_size"]
                memory = {
                    kind: worker(f"memory-{kind}", shape, task, "--worker-batch-size", str(best[kind]))
                    for kind in ("deepseek", "hf")
                }
                docs = timing["docs"]
                speed = {kind: docs / seconds for kind, seconds in timing["seconds"].items()}
                speed_ratio = speed["deepseek"] / speed["hf"]
                memory_ratio = memory["deepseek"]["peak_memory_mb"] / memory["hf"]["peak_memory_mb"]
                target = TARGETS.get(shape) if task == "cmmlu" else None
                speed_ok = target is None or speed_ratio >= target
                judged = max(m["peak_memory_mb"] for m in memory.values()) >= MEMORY_FLOOR_MB
                memory_ok = memory_ratio <= MEMORY_TARGET or not judged
                ok &= speed_ok and memory_ok
                print(f"{info['task']} ({docs} docs, {timing['requests']} requests)")
                verdict = "" if target is None else f">={target:g}x " + ("ok" if speed_ok else "MISSED")
                batch_label = f"items/s (bs {best['deepseek']} / {best['hf']})"
                print(
                    f"  {batch_label:<36}{speed['deepseek']:>12.2f}{speed['hf']:>12.2f}{speed_ratio:>8.1f}x  {verdict}"
                )
                print(
                    f"  {'peak memory (MiB)':<36}{memory['deepseek']['peak_memory_mb']:>12.0f}"
                    f"{memory['hf']['peak_memory_mb']:>12.0f}{memory_ratio:>8.2f}x  "
                    + (f"<={MEMORY_TARGET:g}x " + ("ok" if memory_ok else "MISSED") if judged else "(both tiny)")
                )
                sweep = ", ".join(f"{name}: {docs / seconds:.2f}" for name, seconds in timing["sweep_seconds"].items())
                print(f"  items/s by batch size: {sweep}")
                work = timing["ours_work"]
                print(
                    f"  max |ll diff| {timing['max_abs_diff']:.1e}, is_greedy agree {100 * timing['greedy_agree']:.0f}%;"
                    f" deepseek: {work.get('unique_requests', 0)} unique requests in {work.get('rows', 0)} rows, "
                    f"{work.get('prefix_clusters', 0)} prefix runs, {work.get('decoder_tokens', 0)} decoder tokens, "
                    f"{work.get('head_positions', 0)} output-head positions; hf: {timing['hf_tokens']} tokens, all "
                    "through the output head",
                    flush=True,
                )
                results[f"{shape}/{task}"] = {"timing": timing, "memory": memory, "items_per_s": speed}
    print(f"\nthreads: {timing['threads']}; {'all targets met' if ok else 'some targets MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
