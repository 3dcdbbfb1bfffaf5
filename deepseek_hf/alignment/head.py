"""TRL's fused LM head, scoring only the labelled positions on every device.

TRL 1.16's `add_fused_lm_head` projects the last hidden states through `lm_head.weight` tile by tile
(`ChunkedLogProbFunction`), so the `[batch, seq, 102400]` logits never exist. On CUDA/XPU (Triton) it scores only
the positions whose next-token label is not -100; elsewhere it scores *every* position (so that the tile shapes stay
fixed for compiled backends such as Neuron) and zeroes the unlabelled ones afterwards. On CPU that means the prompt
tokens and the padding of SFT and DPO batches pay the full 102400-column projection for nothing, and at this
vocabulary the projection is most of a small model's work.

`add_compact_lm_head` takes `add_fused_lm_head`'s arguments and installs the same head with the same kernel and
outputs, but gathering the labelled positions first on every device (what TRL itself does on Triton devices). The
recipes' trainers build TRL's trainers inside `compact_lm_head_for(trl_module)`, so TRL installs ours at the very
point where it installs its own (before accelerate, DeepSpeed or FSDP wrap the policy and the reference), with the
outputs it asks for. The values are TRL's: `tests/alignment/test_compact_head.py` compares log-probabilities, the
metric fields and every gradient with TRL's head on the same batch. It covers what DeepSeek LLM needs (no logit
soft-capping or scaling, no MoE router loss, no sharded DTensor weights) and refuses a model that needs more.
"""

from __future__ import annotations

import functools
import types
from contextlib import contextmanager, nullcontext

import torch
from trl.kernels import ChunkedLogProbFunction
from trl.trainer.utils import FusedCausalLMOutput

__all__ = ["add_compact_lm_head", "compact_lm_head_for"]

VOCAB_TILE = 32768  # vocabulary columns per tile, as TRL's `_CHUNKED_LOGPROB_CHUNK_SIZE`


def _check_supported(config) -> None:
    unsupported = {
        key: getattr(config, key)
        for key in ("final_logit_softcapping", "logit_scale", "output_router_logits")
        if getattr(config, key, None)
    }
    if unsupported:
        raise ValueError(f"add_compact_lm_head does not support {unsupported}; use TRL's add_fused_lm_head")


def add_compact_lm_head(
    model, temperature: float = 1.0, cast_lm_head_to_fp32: bool = False, outputs: tuple[str, ...] = ("log_probs",)
) -> None:
    """`trl.trainer.utils.add_fused_lm_head` scoring the labelled positions only: `model(..., labels=...,
    fused_lm_head=True)` returns TRL's `FusedCausalLMOutput`; without `fused_lm_head`, the class's own forward runs
    (generation and evaluation unchanged)."""
    _check_supported(model.config.get_text_config())
    original_forward = types.MethodType(type(model).forward, model)

    @functools.wraps(type(model).forward)  # `generate` validates its kwargs against the signature
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:
            extra = {"labels": labels, "shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
            return original_forward(*args, **kwargs, **{k: v for k, v in extra.items() if v is not None})
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state  # looked up per call: PEFT may replace it
        if shift_labels is None:
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        else:
            labels = shift_labels
        lm_head = self.get_output_embeddings()
        hidden, labels = hidden.to(lm_head.weight.device), labels.to(lm_head.weight.device)
        mask = labels != -100
        autocast = nullcontext()
        if cast_lm_head_to_fp32:
            hidden, autocast = hidden.float(), torch.autocast(hidden.device.type, enabled=False)
        with autocast:
            per_token = ChunkedLogProbFunction.apply(
                hidden[mask], lm_head.weight, lm_head.bias, labels[mask], temperature, VOCAB_TILE, None, 1.0, outputs
            )
        # masked_scatter keeps an all-unlabelled micro-batch connected to the graph (a differentiable zero)
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = (
            None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x) for x in per_token
        )
        denominator = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / denominator,
            log_probs=log_probs,
            entropy=entropy,
            log_sum_sq_probs=log_sum_sq_probs,
            mean_logits=mean_logits,
            is_top1=is_top1,
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)


@contextmanager
def compact_lm_head_for(trl_module):
    """While a TRL trainer of `trl_module` (e.g. `trl.trainer.sft_trainer`) is built, the `add_fused_lm_head` it
    calls is `add_compact_lm_head`; restored afterwards."""
    if not callable(getattr(trl_module, "add_fused_lm_head", None)):
        raise RuntimeError(f"{trl_module.__name__} has no add_fused_lm_head: this TRL version is not supported")
    saved = trl_module.add_fused_lm_head
    trl_module.add_fused_lm_head = add_compact_lm_head
    try:
        yield
    finally:
        trl_module.add_fused_lm_head = saved
