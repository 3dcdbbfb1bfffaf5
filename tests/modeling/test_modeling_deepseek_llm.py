"""DeepseekLLMForCausalLM against the reference `LlamaForCausalLM`, packed documents, generation, precision, memory."""

from __future__ import annotations

import pytest
import torch

from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM

ATOL = 1e-5

# (MHA, GQA, MQA with explicit head_dim, another RoPE base, tied embeddings) at widths 32-64.
SHAPES = {
    "mha": {},
    "gqa": dict(
        hidden_size=64,
        num_attention_heads=8,
        num_key_value_heads=2,
        num_hidden_layers=3,
        intermediate_size=96,
        vocab_size=97,
    ),
    "mqa-head_dim": dict(
        hidden_size=48, num_attention_heads=4, num_key_value_heads=1, head_dim=16, intermediate_size=80
    ),
    "rope-theta": dict(rope_theta=500000.0, rms_norm_eps=1e-5),
    "tied": dict(tie_word_embeddings=True),
}


def _batch(vocab_size: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (3, 13), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :4] = 0  # left padding
    attention_mask[2, -3:] = 0  # right padding
    return input_ids, attention_mask


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_logits_match_llama(llama_twin, attn, shape):
    llama, ours = llama_twin(attn, **shape)
    input_ids, attention_mask = _batch(ours.config.vocab_size)
    with torch.no_grad():
        expected = llama(input_ids, attention_mask=attention_mask).logits
        actual = ours(input_ids, attention_mask=attention_mask).logits
    keep = attention_mask.bool()  # padded positions are undefined in both models
    assert expected.abs().max() > 1.0  # a non-trivial signal, so 1e-5 is a strict tolerance
    torch.testing.assert_close(actual[keep], expected[keep], atol=ATOL, rtol=0)


def test_parity_test_detects_a_rope_mismatch(llama_twin):
    """Negative control: the same weights with a different RoPE base are far outside the tolerance."""
    llama, ours = llama_twin("sdpa")
    other = DeepseekLLMForCausalLM(
        DeepseekLLMConfig(**{**ours.config.to_dict(), "rope_parameters": None}, rope_theta=500.0)
    ).eval()
    other.load_state_dict(ours.state_dict())
    input_ids, _ = _batch(ours.config.vocab_size)
    with torch.no_grad():
        assert (other(input_ids).logits - llama(input_ids).logits).abs().max() > 1e-2


@pytest.mark.parametrize("shape", ["mha", "gqa"])
def test_greedy_generation_matches_llama(llama_twin, shape):
    llama, ours = llama_twin("sdpa", **SHAPES[shape])
    prompt = torch.tensor([[1, 17, 42, 9, 33], [1, 5, 6, 7, 8]])
    kwargs = dict(max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0)
    expected = llama.generate(prompt, **kwargs)
    actual = ours.generate(prompt, **kwargs)
    assert actual.shape == (2, 5 + 32)
    assert torch.equal(actual, expected)
    # the KV-cache path equals recomputing the whole prefix
    no_cache = ours.generate(prompt, use_cache=False, **kwargs)
    assert torch.equal(no_cache, actual)


def test_past_key_values_alias_still_accepted(tiny_config):
    model = DeepseekLLMForCausalLM(tiny_config()).eval()
    ids = torch.tensor([[1, 5, 9, 11]])
    with torch.no_grad():
        first = model(ids[:, :3], use_cache=True)
        with pytest.warns(FutureWarning, match="past_key_values"):
            step = model(ids[:, 3:], past_key_values=first.cache, use_cache=True).logits[:, -1]
        full = model(ids).logits[:, -1]
    torch.testing.assert_close(step, full, atol=ATOL, rtol=0)


DOCS = [[1, 11, 12, 13, 14], [1, 21, 22, 23, 24, 25, 26], [1, 31, 32, 33]]


def _packed():
    input_ids = torch.tensor([sum(DOCS, [])])
    position_ids = torch.tensor([[p for doc in DOCS for p in range(len(doc))]])
    return input_ids, position_ids


def _check_packed_equals_separate(model):
    input_ids, position_ids = _packed()
    with torch.no_grad():
        packed = model(input_ids, position_ids=position_ids).logits[0]
        separate = torch.cat([model(torch.tensor([doc])).logits[0] for doc in DOCS])
        unpacked = model(input_ids).logits[0]  # same tokens, one long document
    torch.testing.assert_close(packed, separate, atol=ATOL, rtol=0)
    assert (unpacked - separate).abs().max() > 1e-3  # cross-document attention would be visible


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("shape", ["mha", "gqa"])
def test_packed_documents_attend_only_within_themselves(llama_twin, attn, shape):
    _, ours = llama_twin(attn, **SHAPES[shape])
    _check_packed_equals_separate(ours)


@pytest.mark.parametrize("shape", ["mha", "gqa"])
def test_packed_documents_on_the_flash_attention_code_path(llama_twin, fake_flash, shape):
    """The flash_attention_2 path gets no mask for a packed batch: boundaries travel as `position_ids` kwargs."""
    llama, ours = llama_twin("sdpa", **SHAPES[shape])
    input_ids, _ = _batch(ours.config.vocab_size)
    with torch.no_grad():
        reference = ours(input_ids).logits
    fake_flash(ours)
    _check_packed_equals_separate(ours)
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids).logits, reference, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours(input_ids).logits, llama(input_ids).logits, atol=ATOL, rtol=0)


def test_flash_attention_on_cpu_fails_clearly(tiny_config):
    with pytest.raises((ImportError, ValueError), match="(?i)flash"):
        DeepseekLLMForCausalLM._from_config(tiny_config(), attn_implementation="flash_attention_2")


def test_default_attention_is_sdpa_and_switchable(tiny_config):
    model = DeepseekLLMForCausalLM(tiny_config())
    assert model.config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"


def test_hidden_states_and_attentions_are_recorded(tiny_config):
    model = DeepseekLLMForCausalLM(tiny_config(attn_implementation="eager")).eval()
    out = model(torch.tensor([[1, 4, 5, 6]]), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert len(out.attentions) == model.config.num_hidden_layers and out.attentions[0].shape == (1, 4, 4, 4)


def test_logits_policy(tiny_config):
    """Training with labels returns only the loss; evaluation, metrics, generation and lm-eval get logits."""
    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(tiny_config())
    ids = torch.randint(3, 128, (2, 9))
    model.train()
    trained = model(ids, labels=ids)
    assert trained.logits is None and trained.loss.requires_grad
    assert model(ids).logits.shape == (2, 9, 128)  # no labels: logits (lm-eval's HFLM calls `model(ids).logits`)
    kept = model(ids, labels=ids, skip_logits=False)
    assert kept.logits.shape == (2, 9, 128)
    torch.testing.assert_close(kept.loss, trained.loss, atol=ATOL, rtol=0)
    model.eval()
    evaluated = model(ids, labels=ids)
    assert evaluated.logits.shape == (2, 9, 128)
    torch.testing.assert_close(evaluated.loss, trained.loss, atol=ATOL, rtol=0)
    assert model(ids, labels=ids, skip_logits=True).logits is None
    assert model(ids, logits_to_keep=1).logits.shape == (2, 1, 128)
    with pytest.raises(ValueError, match="skip_logits"):
        model(ids, skip_logits=True)


def test_bf16_forward_and_train_step(llama_twin):
    _, ours = llama_twin("sdpa", **SHAPES["gqa"])
    input_ids, attention_mask = _batch(ours.config.vocab_size)
    with torch.no_grad():
        reference = ours(input_ids, attention_mask=attention_mask).logits
    model = ours.to(torch.bfloat16)
    with torch.no_grad():
        logits = model(input_ids, attention_mask=attention_mask).logits
    assert logits.dtype == torch.bfloat16
    keep = attention_mask.bool()
    error = (logits.float() - reference)[keep].abs().max() / reference[keep].abs().max()
    assert error < 0.05
    model.train()
    loss = model(input_ids, labels=input_ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(
        p.grad is not None and p.grad.dtype == torch.bfloat16 and torch.isfinite(p.grad).all()
        for p in model.parameters()
    )


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config):
    torch.manual_seed(0)
    model = DeepseekLLMForCausalLM(tiny_config(num_hidden_layers=3, initializer_range=0.1)).train()
    ids = torch.randint(3, 128, (2, 12))

    def grads():
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = grads()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert model.model.gradient_checkpointing and model.model.layers[0].gradient_checkpointing
    checkpointed = grads()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_no_split_modules_and_backend_flags():
    assert DeepseekLLMForCausalLM._no_split_modules == ["DeepseekLLMDecoderLayer"]
    assert DeepseekLLMForCausalLM.supports_gradient_checkpointing
    assert DeepseekLLMForCausalLM._supports_sdpa and DeepseekLLMForCausalLM._supports_flash_attn
    assert DeepseekLLMForCausalLM._supports_flex_attn and DeepseekLLMForCausalLM._supports_attention_backend
