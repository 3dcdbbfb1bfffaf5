"""The chunked linear + cross-entropy equals `CrossEntropyLoss` on full logits: value, gradients, HF's conventions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers.loss.loss_utils import ForCausalLMLoss

from deepseek_hf.modeling import DeepseekLLMForCausalLM, fused_linear_cross_entropy

TOL = dict(atol=1e-5, rtol=1e-5)


def _inputs(batch=3, seq=17, hidden=24, vocab=300, seed=0, ignore_fraction=0.3):
    generator = torch.Generator().manual_seed(seed)
    hidden_states = torch.randn(batch, seq, hidden, generator=generator, requires_grad=True)
    weight = (torch.randn(vocab, hidden, generator=generator) * 0.5).requires_grad_()
    labels = torch.randint(0, vocab, (batch, seq), generator=generator)
    labels[torch.rand(batch, seq, generator=generator) < ignore_fraction] = -100  # padding / prompt tokens
    return hidden_states, weight, labels


def _reference(hidden_states, weight, labels, num_items_in_batch=None):
    """The plain path: full float32 logits, shifted labels, `nn.CrossEntropyLoss` semantics."""
    logits = hidden_states @ weight.t()
    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]
    if num_items_in_batch is None:
        return torch.nn.CrossEntropyLoss(ignore_index=-100)(logits.reshape(-1, logits.shape[-1]), shifted.reshape(-1))
    summed = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), shifted.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return summed / num_items_in_batch


def _value_and_grads(loss_fn, hidden_states, weight, labels, **kwargs):
    hidden_states.grad = weight.grad = None
    loss = loss_fn(hidden_states, weight, labels, **kwargs)
    loss.backward()
    return loss.detach(), hidden_states.grad.clone(), weight.grad.clone()


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 4096])  # one row, uneven chunks, exact split, a single chunk
def test_value_and_gradients_equal_cross_entropy_on_full_logits(chunk_size):
    hidden_states, weight, labels = _inputs()
    expected = _value_and_grads(_reference, hidden_states, weight, labels)
    actual = _value_and_grads(fused_linear_cross_entropy, hidden_states, weight, labels, chunk_size=chunk_size)
    for got, want in zip(actual, expected):
        torch.testing.assert_close(got, want, **TOL)
    assert (labels == -100).any() and expected[1].abs().max() > 0


def test_equals_transformers_for_causal_lm_loss():
    hidden_states, weight, labels = _inputs(seed=3)
    with torch.no_grad():
        expected = ForCausalLMLoss(hidden_states @ weight.t(), labels, vocab_size=weight.shape[0])
        actual = fused_linear_cross_entropy(hidden_states, weight, labels, chunk_size=5)
    torch.testing.assert_close(actual, expected, **TOL)


def test_num_items_in_batch_makes_gradient_accumulation_exact():
    """Two micro-batches, each divided by the token count of the whole batch, sum to the full-batch loss/grads."""
    hidden_states, weight, labels = _inputs(batch=4, seed=1)
    num_items = int((labels[:, 1:] != -100).sum())
    expected = _value_and_grads(_reference, hidden_states, weight, labels)

    hidden_states.grad = weight.grad = None
    total = 0.0
    for rows in (slice(0, 1), slice(1, 4)):  # unequal micro-batches: a plain mean of means would be wrong
        loss = fused_linear_cross_entropy(
            hidden_states[rows], weight, labels[rows], num_items_in_batch=torch.tensor(num_items), chunk_size=8
        )
        loss.backward()
        total += loss.item()
    assert total == pytest.approx(expected[0].item(), rel=1e-5)
    torch.testing.assert_close(hidden_states.grad, expected[1], **TOL)
    torch.testing.assert_close(weight.grad, expected[2], **TOL)
    with torch.no_grad():
        reference = _reference(hidden_states, weight, labels, num_items_in_batch=num_items)
        torch.testing.assert_close(
            fused_linear_cross_entropy(hidden_states, weight, labels, num_items_in_batch=num_items), reference, **TOL
        )


def test_pre_shifted_labels():
    hidden_states, weight, labels = _inputs(seed=2)
    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]
    with torch.no_grad():
        torch.testing.assert_close(
            fused_linear_cross_entropy(hidden_states, weight, shift_labels=shifted),
            _reference(hidden_states, weight, labels),
            **TOL,
        )
    with pytest.raises(ValueError, match="labels"):
        fused_linear_cross_entropy(hidden_states, weight)


def test_frozen_head_and_all_ignored_labels():
    hidden_states, weight, labels = _inputs()
    weight.requires_grad_(False)  # e.g. LoRA: no gradient for the head, only for the hidden states
    fused_linear_cross_entropy(hidden_states, weight, labels, chunk_size=8).backward()
    assert weight.grad is None and hidden_states.grad is not None
    nothing = torch.full_like(labels, -100)
    with torch.no_grad():  # as torch's mean over zero targets: nan, not a silent 0
        assert torch.isnan(fused_linear_cross_entropy(hidden_states, weight, nothing))
        assert torch.isnan(_reference(hidden_states, weight, nothing))


def test_no_gradient_work_without_autograd():
    """Under `torch.no_grad()` (evaluation) only the logits products run: no gradient products per chunk."""
    from torch.profiler import ProfilerActivity, profile

    hidden_states, weight, labels = _inputs(batch=2, seq=16)  # inputs require grad, grad mode is off
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fused_linear_cross_entropy(hidden_states, weight, labels, chunk_size=4)
    counts = {event.key: event.count for event in prof.key_averages()}
    n_chunks = -(-int((labels[:, 1:] != -100).sum()) // 4)
    assert counts.get("aten::mm", 0) == n_chunks and "aten::addmm_" not in counts, counts


def test_autocast_bf16_keeps_parameter_dtypes_and_is_close():
    hidden_states, weight, labels = _inputs(hidden=64, vocab=512)
    expected = _value_and_grads(_reference, hidden_states, weight, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual = _value_and_grads(fused_linear_cross_entropy, hidden_states, weight, labels, chunk_size=16)
    assert actual[1].dtype == actual[2].dtype == torch.float32
    for got, want in zip(actual, expected):
        assert (got - want).abs().max() <= 0.02 * want.abs().max()


def test_model_training_loss_and_gradients_equal_the_plain_path(tiny_config):
    """`model.train()` with labels (fused, no logits) == the same model with full logits, incl. every gradient."""
    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(tiny_config(initializer_range=0.1, loss_chunk_size=5)).train()
    ids = torch.randint(3, 128, (2, 11))
    labels = ids.clone()
    labels[0, :4] = -100

    def run(skip_logits):
        model.zero_grad()
        out = model(ids, labels=labels, skip_logits=skip_logits)
        out.loss.backward()
        return out, {name: p.grad.clone() for name, p in model.named_parameters()}

    fused, fused_grads = run(None)
    plain, plain_grads = run(False)
    assert fused.logits is None and plain.logits is not None
    torch.testing.assert_close(fused.loss, plain.loss, **TOL)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, **TOL, msg=name)


def test_model_loss_never_materializes_full_float32_logits(tiny_config):
    """With vocab 102400 no single allocation of the training step comes near `batch × seq × vocab` floats."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    config = tiny_config(vocab_size=102400, loss_chunk_size=16, bos_token_id=100000, eos_token_id=100001)
    model = DeepseekLLMForCausalLM(config).train()
    ids = torch.randint(0, 102400, (2, 64))
    full_logits_bytes = ids.numel() * 102400 * 4

    def largest_allocation(**kwargs):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(ids, labels=ids, **kwargs).loss.backward()
        return max(event.self_cpu_memory_usage for event in prof.events())

    fused, plain = largest_allocation(), largest_allocation(skip_logits=False)
    assert plain >= full_logits_bytes  # the plain path allocates the full logits (several times)
    assert fused <= full_logits_bytes / 4  # one [16, vocab] chunk, or the [vocab, hidden] weight gradient
