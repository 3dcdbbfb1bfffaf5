"""The resolved batch size, learning rate and length of a pretraining run, and where each value came from.

A config may state each of the three explicitly, or give a budget and let the scaling laws of the paper
(section 3.1, `deepseek_hf.scaling`) fill in what it leaves out:

* **length**: exactly one of `max_steps`, `max_tokens` (D) and `compute_budget` (C, then D = C / M with M the
  model's non-embedding FLOPs per token at the training sequence length, paper Eq. 2);
* **batch**: `global_batch_size` (sequences) or `batch_size_tokens`, which set `gradient_accumulation_steps`
  = global / (per_device_train_batch_size x world size); else, with a budget, `B_opt = 0.2920 C^0.3271` tokens
  rounded to whole accumulation steps; else the Hugging Face product per_device x world x accumulation;
* **learning rate**: `learning_rate`; else, with a budget, `eta_opt = 0.3118 C^-0.1250`.

Contradictory settings (two batch sizes that disagree, a batch that does not split into whole micro-batches, an
accumulation count that disagrees with the global batch, two run lengths) raise a `ValueError` naming them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from deepseek_hf.scaling import model_flops_per_token, round_batch_sequences, scaling_hyperparameters

__all__ = ["TrainingPlan", "resolve_training_plan"]


@dataclass
class TrainingPlan:
    """What a run will do; written to `<output_dir>/training_plan.json` and logged at the start."""

    seq_length: int
    world_size: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    global_batch_size: int  # sequences per optimizer step
    batch_size_tokens: int  # tokens per optimizer step
    learning_rate: float
    total_tokens: float  # D, the token budget the LR schedule is laid out on
    max_steps: int
    flops_per_token: float | None = None  # M at seq_length
    compute_budget: float | None = None  # C = M * D
    scaling_law: dict[str, float] | None = None  # the laws' values for C, when C is known
    sources: dict[str, str] = field(default_factory=dict)  # how each value was chosen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        lines = [
            f"batch: {self.global_batch_size} sequences x {self.seq_length} tokens = {self.batch_size_tokens:,} tokens "
            f"per step ({self.per_device_train_batch_size} per device x {self.world_size} processes x "
            f"{self.gradient_accumulation_steps} accumulation steps) [{self.sources['batch']}]",
            f"learning rate: {self.learning_rate:.4g} [{self.sources['learning_rate']}]",
            f"length: {self.total_tokens:.4g} tokens, {self.max_steps} steps [{self.sources['length']}]",
        ]
        if self.compute_budget is not None:
            lines.append(
                f"compute: C = M * D = {self.flops_per_token:.4g} x {self.total_tokens:.4g} = {self.compute_budget:.4g} FLOPs"
            )
        if self.scaling_law is not None:
            law = self.scaling_law
            lines.append(
                f"scaling law at this C: B_opt {law['batch_tokens']:.4g} tokens, eta_opt {law['learning_rate']:.4g}, "
                f"M_opt {law['optimal_flops_per_token']:.4g}, D_opt {law['optimal_tokens']:.4g}"
            )
        return "\n".join(lines)


def _batch_from_config(args, seq_length: int) -> tuple[int | None, str | None]:
    """The global batch in sequences that the config states, if any (and checks its two spellings agree)."""
    sequences, source = args.global_batch_size, "global_batch_size"
    if args.batch_size_tokens is not None:
        if args.batch_size_tokens % seq_length:
            raise ValueError(
                f"batch_size_tokens={args.batch_size_tokens} is not a whole number of sequences of "
                f"seq_length={seq_length}"
            )
        from_tokens = args.batch_size_tokens // seq_length
        if sequences is not None and sequences != from_tokens:
            raise ValueError(
                f"contradictory batch settings: global_batch_size={sequences} sequences but batch_size_tokens="
                f"{args.batch_size_tokens} = {from_tokens} sequences of {seq_length}; give one of them"
            )
        sequences, source = from_tokens, "batch_size_tokens"
    return sequences, (source if sequences is not None else None)


def resolve_training_plan(
    args,
    model_config: Any,
    *,
    seq_length: int,
    world_size: int,
    tokens_seen: int = 0,
    steps_done: int = 0,
) -> TrainingPlan:
    """Resolve batch size, learning rate and length of a run from a `PretrainConfig` (see the module docstring).

    `tokens_seen` / `steps_done` describe a checkpoint being resumed: the remaining steps are those that reach
    the token budget at the current batch size.
    """
    micro = args.per_device_train_batch_size
    lengths = {
        "max_steps": args.max_steps if args.max_steps and args.max_steps > 0 else None,
        "max_tokens": args.max_tokens,
        "compute_budget": args.compute_budget,
    }
    given = [name for name, value in lengths.items() if value is not None]
    if len(given) > 1:
        raise ValueError(f"contradictory run lengths: {', '.join(given)} are all set; give exactly one of them")
    if not given:
        raise ValueError("the run has no length: set max_steps, max_tokens (a token budget) or compute_budget (FLOPs)")

    needs_m = args.compute_budget is not None or args.max_tokens is not None or args.learning_rate is None
    flops_per_token = model_flops_per_token(model_config, seq_length) if needs_m else None
    total_tokens = args.max_tokens
    if args.compute_budget is not None:
        total_tokens = args.compute_budget / flops_per_token
    law = None
    if total_tokens is not None:
        law = scaling_hyperparameters(flops_per_token=flops_per_token, tokens=total_tokens)

    # --- batch ---
    sequences, batch_source = _batch_from_config(args, seq_length)
    per_step = micro * world_size
    if sequences is not None:
        if sequences % per_step:
            raise ValueError(
                f"{batch_source} gives {sequences} sequences per step, which does not split into whole steps of "
                f"per_device_train_batch_size={micro} x world size {world_size} = {per_step} sequences"
            )
        accumulation = sequences // per_step
        if args.gradient_accumulation_steps not in (1, accumulation):
            raise ValueError(
                f"contradictory batch settings: {batch_source} implies gradient_accumulation_steps={accumulation} "
                f"with {micro} per device x {world_size} processes, but gradient_accumulation_steps="
                f"{args.gradient_accumulation_steps} is set; give one of them"
            )
        batch_source = f"config ({batch_source})"
    elif law is not None:
        sequences = round_batch_sequences(law.batch_tokens, seq_length, per_step)
        accumulation = sequences // per_step
        batch_source = (
            f"scaling law: B_opt = 0.2920 * C^0.3271 = {law.batch_tokens:.4g} tokens = "
            f"{law.batch_tokens / seq_length:.1f} sequences, rounded to a multiple of {per_step}"
        )
    else:
        accumulation = args.gradient_accumulation_steps
        sequences = per_step * accumulation
        batch_source = "per_device_train_batch_size x world size x gradient_accumulation_steps"
    batch_tokens = sequences * seq_length

    # --- length ---
    if total_tokens is None:  # max_steps
        total_tokens = float(args.max_steps * batch_tokens)
        length_source = "config (max_steps)"
        max_steps = args.max_steps
    else:
        length_source = (
            "config (max_tokens)"
            if args.max_tokens is not None
            else (f"compute_budget / M = {args.compute_budget:.4g} / {flops_per_token:.4g}")
        )
        if tokens_seen > total_tokens:
            raise ValueError(
                f"the checkpoint has seen {tokens_seen:.4g} tokens, more than the budget {total_tokens:.4g}"
            )
        max_steps = steps_done + math.ceil((total_tokens - tokens_seen) / batch_tokens)
    if max_steps <= 0 or total_tokens < batch_tokens:
        raise ValueError(f"the token budget {total_tokens:.4g} is less than one batch of {batch_tokens} tokens")

    # --- learning rate ---
    compute = flops_per_token * total_tokens if flops_per_token is not None else None
    if args.learning_rate is not None:
        learning_rate, lr_source = float(args.learning_rate), "config (learning_rate)"
    else:
        if law is None:  # max_steps with an explicit or HF batch: D is known now
            law = scaling_hyperparameters(flops_per_token=flops_per_token, tokens=total_tokens)
        learning_rate = law.learning_rate
        lr_source = f"scaling law: eta_opt = 0.3118 * C^-0.1250 at C = {law.compute:.4g}"

    return TrainingPlan(
        seq_length=seq_length,
        world_size=world_size,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        global_batch_size=sequences,
        batch_size_tokens=batch_tokens,
        learning_rate=learning_rate,
        total_tokens=float(total_tokens),
        max_steps=int(max_steps),
        flops_per_token=flops_per_token,
        compute_budget=compute,
        scaling_law=law.to_dict() if law is not None else None,
        sources={"batch": batch_source, "learning_rate": lr_source, "length": length_source},
    )
