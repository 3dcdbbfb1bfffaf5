"""Real flash-attn on a CUDA GPU (skipped, with the reason, elsewhere; the CPU tests drive the same code path
through a registered stand-in kernel, see `fake_flash` in conftest.py)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from deepseek_hf.modeling import DeepseekLLMForCausalLM

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(
        importlib.util.find_spec("flash_attn") is None, reason="needs flash-attn (pip install '.[flash]')"
    ),
]

DOCS = [[1, 11, 12, 13, 14], [1, 21, 22, 23, 24, 25, 26], [1, 31, 32, 33]]
GQA = dict(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, intermediate_size=256, vocab_size=97)


def _to_flash(model):
    model.to("cuda", torch.bfloat16)
    model.set_attn_implementation("flash_attention_2")
    return model


def test_flash_logits_match_llama_flash_and_sdpa(llama_twin):
    llama, ours = llama_twin("sdpa", **GQA)
    ids = torch.randint(3, 97, (2, 64), device="cuda")
    with torch.no_grad():
        reference = ours.to("cuda", torch.bfloat16)(ids).logits.float()
        llama_flash = _to_flash(llama)(ids).logits.float()
        ours_flash = _to_flash(ours)(ids).logits.float()
    torch.testing.assert_close(ours_flash, llama_flash, atol=0, rtol=0)  # same kernels, same weights
    assert (ours_flash - reference).abs().max() < 0.05 * reference.abs().max()


def test_flash_varlen_packed_documents_equal_separate_documents(llama_twin):
    _, ours = llama_twin("sdpa", **GQA)
    model = _to_flash(ours)
    input_ids = torch.tensor([sum(DOCS, [])], device="cuda")
    position_ids = torch.tensor([[p for doc in DOCS for p in range(len(doc))]], device="cuda")
    with torch.no_grad():
        packed = model(input_ids, position_ids=position_ids).logits[0].float()
        separate = torch.cat([model(torch.tensor([doc], device="cuda")).logits[0].float() for doc in DOCS])
    assert (packed - separate).abs().max() < 2e-2 * separate.abs().max()


def test_flash_training_step_and_generation(tiny_config):
    model = _to_flash(DeepseekLLMForCausalLM(tiny_config(hidden_size=128, num_attention_heads=4)))
    ids = torch.randint(3, 128, (2, 32), device="cuda")
    model.train()
    loss = model(ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    out = model.generate(ids[:, :8], max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert out.shape == (2, 16)
