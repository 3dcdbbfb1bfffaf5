"""A stand-in for recipes/pretrain.py in the sweep tests: same flags, same output files, no training.

It writes what the real recipe writes and the sweep reads (`training_plan.json`, `config.json`, `all_results.json`
with H3's validation keys, `trainer_state.json` with a training loss every `logging_steps` that drops with the LR of
`lr_scheduler_kwargs`' milestones), with a known loss surface L(N, D) = 0.6 + 40 M^-0.3 + 60 D^-0.3 (bits per byte), so
that IsoFLOP curves have interior minima and the fits have something to find. Controls, by environment variable:
FAKE_CALLS (a file: one JSON line per call), FAKE_FAIL (a run-name substring: exit 3), FAKE_KILL_SWEEP (a run-name
substring: leave a half-done run, a checkpoint-* folder only, and SIGKILL the parent, i.e. the sweep), FAKE_NO_EVAL
(a substring: all_results.json without the eval keys), FAKE_HANG_PIDFILE (write the pid there and hang).
"""

import json
import math
import os
import signal
import sys
import time
from pathlib import Path


def loss_surface(m: float, d: float) -> float:
    return 0.6 + 40 * m**-0.3 + 60 * d**-0.3


def main(argv: list[str]) -> int:
    args = {argv[i][2:]: argv[i + 1] for i in range(0, len(argv) - 1, 2) if argv[i].startswith("--")}
    out = Path(args["output_dir"])
    name = out.name
    model = dict(item.split("=") for item in args["config_overrides"].split(","))
    n_layer, d_model, seq = int(model["num_hidden_layers"]), int(model["hidden_size"]), int(args["seq_length"])
    m = 72 * n_layer * d_model**2 + 12 * n_layer * d_model * seq
    budget = float(args["compute_budget"])
    batch_tokens = int(args["global_batch_size"]) * seq
    steps = math.ceil(budget / m / batch_tokens)
    resumed = any(out.glob("checkpoint-*"))
    if os.environ.get("FAKE_CALLS"):
        with open(os.environ["FAKE_CALLS"], "a") as calls:
            call = {"run": name, "resumed": resumed, "env": os.environ.get("FAKE_ENV_PROBE")}
            call.update(dataset=args.get("dataset_path"), schedule=args.get("lr_scheduler_kwargs"))
            calls.write(json.dumps(call) + "\n")
    if os.environ.get("FAKE_HANG_PIDFILE"):  # a run that never ends: its pid, then sleep
        Path(os.environ["FAKE_HANG_PIDFILE"]).write_text(str(os.getpid()))
        time.sleep(120)
    if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in name:
        print("fake failure: CUDA out of memory (simulated)")
        return 3
    out.mkdir(parents=True, exist_ok=True)
    if os.environ.get("FAKE_KILL_SWEEP") and os.environ["FAKE_KILL_SWEEP"] in name and not resumed:
        (out / f"checkpoint-{steps // 2}").mkdir()
        os.kill(os.getppid(), signal.SIGKILL)
        return 9
    plan = {"flops_per_token": m, "batch_size_tokens": batch_tokens, "learning_rate": float(args["learning_rate"]),
            "max_steps": steps}  # fmt: skip
    (out / "training_plan.json").write_text(json.dumps(plan))
    (out / "config.json").write_text(json.dumps({"vocab_size": 2048, "num_hidden_layers": n_layer}))
    tokens = steps * batch_tokens
    metrics = {"train_tokens": tokens, "final_loss": 3.0, "flops_per_token": m, "train_flops": m * tokens}
    if not (os.environ.get("FAKE_NO_EVAL") and os.environ["FAKE_NO_EVAL"] in name):
        bpb = loss_surface(m, tokens)
        metrics.update(eval_loss=bpb * math.log(2) * 3.5, eval_bits_per_byte=bpb)
    (out / "all_results.json").write_text(json.dumps(metrics))
    (out / "trainer_state.json").write_text(json.dumps({"log_history": log_history(args, steps, batch_tokens)}))
    return 0


def log_history(args: dict, steps: int, batch_tokens: int) -> list[dict]:
    """A training loss every `logging_steps`: 5 / sqrt(step), times the LR factor of the multi-step schedule."""
    schedule = json.loads(args.get("lr_scheduler_kwargs", '{"milestones": [0.8, 0.9], "factors": [0.316, 0.1]}'))
    peak, every = float(args["learning_rate"]), int(args.get("logging_steps", 10))
    entries = []
    for step in range(every, steps + 1, every):
        factor = 1.0
        for milestone, drop in zip(schedule["milestones"], schedule["factors"]):
            factor = drop if step / steps >= milestone else factor
        loss = 5 / math.sqrt(step) * (0.9 + 0.1 * factor)
        entries.append(
            {"step": step, "loss": loss, "learning_rate": peak * factor, "tokens_seen": step * batch_tokens}
        )
    return entries


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
