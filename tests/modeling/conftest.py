"""Fixtures for the model tests: tiny configs, Llama twins with identical weights, a CPU stand-in for flash-attn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_utils import AttentionInterface

from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM

# transformers' CausalLMModelTester scale: a few layers of width 32-64, a small vocabulary.
TINY = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=128,
    bos_token_id=1,
    eos_token_id=2,
)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core box OpenMP's spinning threads turn each
    small op into milliseconds (a 32-token generation took 30 s instead of 0.7 s): one thread per test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_config():
    """`tiny_config(**overrides)` -> a small `DeepseekLLMConfig` (vocab 128, width 32, 2 layers)."""

    def make(**overrides) -> DeepseekLLMConfig:
        return DeepseekLLMConfig(**{**TINY, **overrides})

    return make


@pytest.fixture
def llama_twin():
    """`llama_twin(attn, **shape)` -> (random `LlamaForCausalLM`, our model with its weights), both in eval mode.

    The init std is large (0.2) so that attention is far from uniform and a RoPE, mask or norm mistake shows up
    well above the 1e-5 tolerance.
    """

    def make(attn: str = "sdpa", seed: int = 0, **shape):
        values = {**TINY, "initializer_range": 0.2, **shape}
        torch.manual_seed(seed)
        llama = LlamaForCausalLM(LlamaConfig(**values, attn_implementation=attn)).eval()
        ours = DeepseekLLMForCausalLM(DeepseekLLMConfig(**values, attn_implementation=attn)).eval()
        ours.load_state_dict(llama.state_dict(), strict=True)
        return llama, ours

    return make


def fake_flash_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """A CPU stand-in for flash-attn's varlen kernel: `[b, h, t, d]` in, `[b, t, h, d]` out.

    Like `flash_attn_varlen_func` fed by transformers' `_flash_attention_forward`, it takes no mask: document
    boundaries come from `position_ids` restarting at 0, and each document gets causal attention on its own.
    """
    assert attention_mask is None, "the flash path must not receive a mask for unpadded (packed) batches"
    position_ids = kwargs["position_ids"]
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    out = torch.empty_like(query)
    for row in range(query.shape[0]):
        positions = position_ids[row if position_ids.shape[0] > 1 else 0]
        starts = [*(positions == 0).nonzero().flatten().tolist(), query.shape[2]]
        if starts[0] != 0:  # a continuation (decode step or unpacked input not starting at 0)
            starts.insert(0, 0)
        for begin, end in zip(starts[:-1], starts[1:]):
            out[row, :, begin:end] = F.scaled_dot_product_attention(
                query[row : row + 1, :, begin:end],
                key[row : row + 1, :, begin:end],
                value[row : row + 1, :, begin:end],
                is_causal=True,
                scale=scaling,
            )[0]
    return out.transpose(1, 2).contiguous(), None


@pytest.fixture
def fake_flash():
    """Register `fake_flash_attention` as `flash_attention_2` for one test; `fake_flash(model)` switches a model to it.

    `set_attn_implementation("flash_attention_2")` would re-run the package/device checks and raise on CPU, so the
    config field is set directly (test-only), which sends the model down exactly the code path flash-attn uses.
    """
    original = AttentionInterface._global_mapping["flash_attention_2"]
    AttentionInterface.register("flash_attention_2", fake_flash_attention)

    def use(model):
        model.config._attn_implementation_internal = "flash_attention_2"
        return model

    yield use
    AttentionInterface.register("flash_attention_2", original)
