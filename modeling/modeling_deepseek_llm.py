"""DeepSeek LLM (arXiv 2401.02954) as a transformers model.

Architecture, with the paper's section numbers:

- Decoder-only transformer that "largely follows LLaMA" (§2.2); parameter names are Llama's, so released
  checkpoints (which are `LlamaForCausalLM`) load without renaming.
- Pre-norm residual blocks with RMSNorm (eps 1e-6), and a final RMSNorm before the output head (§2.2).
- SwiGLU feed-forward, width ≈ 8/3·d_model: 11008 for the 7B, 22016 for the 67B (§2.2, Table 2).
- Rotary position embeddings on queries and keys, theta 10000, 4096-token context (§2.2, Table 2).
- Multi-head attention for the 7B (32 heads), grouped-query attention for the 67B (64 query / 8 KV heads, §2.2);
  no biases in any linear layer.
- The 67B grows by depth (95 layers) rather than FFN width; 30 and 95 layers suit pipeline partitioning (§2.2).
- Untied input and output embeddings, vocabulary 102400 (100015 tokenizer ids padded "for computational
  efficiency", §2.1).
- Normal init with std 0.006 for all weights (§2.3).
- Training loss: cross-entropy computed in float32 on chunks of the output projection, "in place" as the paper's
  HAI-LLM does (§2.4), so the full `[batch, seq, 102400]` float32 logits are never materialized.
- FlashAttention in training (§2.4): every transformers attention backend is supported (eager, sdpa,
  flash_attention_2/3, flex); packed documents whose `position_ids` restart at 0 attend only within themselves.

`logits` policy: with labels in training mode (`model.train()`) the loss comes from the fused chunked
linear + cross-entropy and `logits` is `None` (Liger-Kernel's `skip_logits` convention); in eval mode, or with
`skip_logits=False`, full logits are returned together with the standard loss. Without labels (`generate`,
lm-eval's `model(ids).logits`) logits are always returned.

Example:

```python
>>> import torch
>>> from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
>>> model = DeepseekLLMForCausalLM(DeepseekLLMConfig.from_preset("deepseek-llm-tiny"))
>>> ids = torch.tensor([[100000, 42, 7]])
>>> model(ids).logits.shape
torch.Size([1, 3, 102400])
>>> _ = model.train()
>>> out = model(ids, labels=ids)   # training with labels: the fused loss only
>>> out.logits is None, out.loss.shape
(True, torch.Size([]))

```
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.integrations import use_kernel_forward_from_hub, use_kernelized_func
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple, logging
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_deepseek_llm import DeepseekLLMConfig

logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks (numerically identical to transformers' Llama blocks)
# ----------------------------------------------------------------------------------------------------------------
@use_kernel_forward_from_hub("RMSNorm")
class DeepseekLLMRMSNorm(nn.Module):
    """RMSNorm, normalizing in float32 and casting back before the learned scale."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class DeepseekLLMRotaryEmbedding(nn.Module):
    """Rotary embedding tables (cos, sin) for the given positions; packed documents simply restart at 0."""

    inv_freq: torch.Tensor

    def __init__(self, config: DeepseekLLMConfig):
        super().__init__()
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.config = config

        self.rope_type = self.config.rope_parameters["rope_type"]
        rope_init_fn: Callable = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(self.config)

        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: DeepseekLLMConfig, **kwargs) -> tuple[torch.Tensor, float]:
        """Inverse frequencies theta^(-2i/head_dim) of the original RoPE; no attention scaling."""
        base = config.rope_parameters["rope_theta"]
        dim = config.head_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        return inv_freq, 1.0

    @dynamic_rope_update  # only acts for the dynamic RoPE variants
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Rotates half the hidden dims of the input (the Llama/NeoX RoPE layout)."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Applies the rotary embedding to query and key states `[batch, heads, seq, head_dim]`."""
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


class DeepseekLLMMLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: DeepseekLLMConfig):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=config.mlp_bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """`[batch, kv_heads, seq, dim]` -> `[batch, kv_heads * n_rep, seq, dim]` (GQA key/value sharing)."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
):
    """Reference attention (softmax in float32); the other backends come from `ALL_ATTENTION_FUNCTIONS`."""
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)

    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask

    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


@use_kernelized_func(apply_rotary_pos_emb)
class DeepseekLLMAttention(nn.Module):
    """Multi-head (7B) or grouped-query (67B) causal self-attention with RoPE, dispatched to the configured backend."""

    def __init__(self, config: DeepseekLLMConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True

        self.q_proj = nn.Linear(
            config.hidden_size, config.num_attention_heads * self.head_dim, bias=config.attention_bias
        )
        self.k_proj = nn.Linear(
            config.hidden_size, config.num_key_value_heads * self.head_dim, bias=config.attention_bias
        )
        self.v_proj = nn.Linear(
            config.hidden_size, config.num_key_value_heads * self.head_dim, bias=config.attention_bias
        )
        self.o_proj = nn.Linear(
            config.num_attention_heads * self.head_dim, config.hidden_size, bias=config.attention_bias
        )

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)

        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)

        if cache is not None:
            key_states, value_states = cache.update(key_states, value_states, self.layer_idx, kwargs=kwargs)

        # `kwargs` carries `position_ids` (and flash-attn varlen arguments) through to the kernel: that is how
        # flash_attention_2 finds document boundaries in a packed batch without a mask.
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )

        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        attn_output = self.o_proj(attn_output)
        return attn_output, attn_weights


class DeepseekLLMDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: DeepseekLLMConfig, layer_idx: int):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.self_attn = DeepseekLLMAttention(config=config, layer_idx=layer_idx)
        self.mlp = DeepseekLLMMLP(config)
        self.input_layernorm = DeepseekLLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DeepseekLLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, _ = self.self_attn(
            hidden_states=hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = residual + hidden_states

        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states


# ----------------------------------------------------------------------------------------------------------------
# Chunked linear + cross-entropy (the training loss)
# ----------------------------------------------------------------------------------------------------------------
class _LinearCrossEntropy(torch.autograd.Function):
    """`sum_i CE(hidden_i @ weight.T, target_i) / denominator`, with the gradients computed chunk by chunk *during
    the forward* (the scheme of Liger-Kernel's `FusedLinearCrossEntropy`, in plain PyTorch).

    Per chunk of `chunk_size` rows, one `[chunk_size, vocab]` float32 buffer holds the logits; it is turned in place
    into exp(logits - max), whose row sums give the log-sum-exp (so the loss), then into
    `(softmax - one_hot) / denominator` = dL/dlogits, which is multiplied into the chunk's dL/dhidden and accumulated
    into dL/dweight (float32 accumulator). The backward only rescales the stored gradients: no recomputation.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, denominator, chunk_size: int, grads: bool):
        device_type = hidden.device.type
        if torch.is_autocast_enabled(device_type):  # mixed precision: the projection runs in the autocast dtype
            compute_dtype = torch.get_autocast_dtype(device_type)
        else:
            compute_dtype = weight.dtype
        # (`needs_input_grad` is also True under `torch.no_grad()`, hence the `grads` flag from the caller)
        need_grad_hidden, need_grad_weight = grads and ctx.needs_input_grad[0], grads and ctx.needs_input_grad[1]
        inv_denominator = 1.0 / denominator

        with torch.autocast(device_type, enabled=False):
            w = weight.to(compute_dtype)
            loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_hidden = torch.empty_like(hidden) if need_grad_hidden else None
            grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_grad_weight else None
            for start in range(0, hidden.shape[0], chunk_size):
                h = hidden[start : start + chunk_size].to(compute_dtype)
                t = targets[start : start + chunk_size, None]
                logits = (h @ w.t()).float()
                target_logits = logits.gather(1, t)
                row_max = logits.amax(dim=1, keepdim=True)
                exp = logits.sub_(row_max).exp_()  # in place: no second [chunk, vocab] buffer
                row_sum = exp.sum(dim=1, keepdim=True)
                loss += (row_sum.log() + row_max - target_logits).sum()
                if not (need_grad_hidden or need_grad_weight):
                    continue
                grad_logits = exp.mul_(inv_denominator / row_sum)  # softmax / denominator
                grad_logits.scatter_add_(1, t, (-inv_denominator).expand(t.shape))  # - one_hot / denominator
                grad_logits = grad_logits.to(compute_dtype)
                if need_grad_hidden:
                    grad_hidden[start : start + chunk_size] = grad_logits @ w
                if need_grad_weight:
                    if compute_dtype == torch.float32:
                        grad_weight.addmm_(grad_logits.t(), h)
                    else:
                        grad_weight += grad_logits.t() @ h
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return loss * inv_denominator

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_loss.ne(1.0).item():  # `loss.backward()` gives 1: hand the stored gradients over without a copy
            grad_hidden = None if grad_hidden is None else grad_hidden * grad_loss.to(grad_hidden.dtype)
            grad_weight = None if grad_weight is None else grad_weight * grad_loss.to(grad_weight.dtype)
        return grad_hidden, grad_weight, None, None, None, None


def fused_linear_cross_entropy(
    hidden_states: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    shift_labels: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    chunk_size: int = 512,
) -> torch.Tensor:
    """Causal-LM loss of `hidden_states @ weight.T` without materializing the logits; same value and gradients as
    HF's `ForCausalLMLoss` (labels shifted left by one, `ignore_index` dropped, mean over the kept tokens, or sum /
    `num_items_in_batch` when given so gradient accumulation is exact). Pass `shift_labels` instead of `labels`
    when they are already aligned with the positions (context parallelism).
    """
    if shift_labels is None:
        if labels is None:
            raise ValueError("fused_linear_cross_entropy needs `labels` or `shift_labels`.")
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    hidden = hidden_states.reshape(-1, hidden_states.shape[-1])
    targets = shift_labels.reshape(-1).to(hidden.device)
    if targets.shape[0] != hidden.shape[0]:
        raise ValueError(f"labels cover {targets.shape[0]} positions but the hidden states {hidden.shape[0]}.")
    # Only positions with a target are projected (prompt tokens masked with -100 in SFT cost nothing).
    keep = (targets != ignore_index).nonzero().squeeze(1)
    denominator = keep.shape[0] if num_items_in_batch is None else num_items_in_batch  # 0 -> nan, like torch's mean
    denominator = torch.as_tensor(denominator, dtype=torch.float32, device=hidden.device)
    grads = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _LinearCrossEntropy.apply(
        hidden.index_select(0, keep), weight, targets[keep], denominator, chunk_size, grads
    )


@torch.no_grad()
def token_log_probs(
    hidden_states: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 1024,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token `log_softmax(hidden @ weight.T + bias)[target]` and whether the target is the argmax, for scoring
    (lm-eval log-likelihoods) where the fused loss's single scalar is not enough.

    `hidden_states` is `[N, d]`, `targets` `[N]` or `[N, K]` (K targets read from the same row, e.g. the answer
    letters that all follow one context). Only `chunk_size` rows of float32 logits exist at a time, so scoring the
    few positions that predict a continuation costs `[chunk, vocab]`, never `[batch, seq, vocab]`. The projection
    runs in the weight's dtype, the log-softmax in float32. The argmax is `torch.argmax`'s (first maximum on ties),
    as lm-eval's `is_greedy` uses it. Returns `(log_probs float32, is_argmax bool)`, both shaped like `targets`.
    """
    squeeze = targets.dim() == 1
    targets = targets.reshape(targets.shape[0], -1).to(hidden_states.device)
    log_probs = torch.empty(targets.shape, dtype=torch.float32, device=hidden_states.device)
    is_argmax = torch.empty(targets.shape, dtype=torch.bool, device=hidden_states.device)
    for start in range(0, hidden_states.shape[0], chunk_size):
        h = hidden_states[start : start + chunk_size].to(weight.dtype)
        t = targets[start : start + chunk_size]
        logits = F.linear(h, weight, bias).float()
        log_probs[start : start + chunk_size] = logits.gather(1, t) - torch.logsumexp(logits, dim=1, keepdim=True)
        is_argmax[start : start + chunk_size] = logits.argmax(dim=1, keepdim=True) == t
    if squeeze:
        return log_probs.squeeze(1), is_argmax.squeeze(1)
    return log_probs, is_argmax


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------
class DeepseekLLMPreTrainedModel(PreTrainedModel):
    """Common base: config class, init (normal std `initializer_range` = 0.006), and the backends it supports."""

    config: DeepseekLLMConfig
    config_class = DeepseekLLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DeepseekLLMDecoderLayer"]
    _skip_keys_device_placement = ["cache"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _can_compile_fullgraph = True
    _supports_attention_backend = True
    _can_record_outputs = {
        "hidden_states": DeepseekLLMDecoderLayer,
        "attentions": DeepseekLLMAttention,
    }

    def save_pretrained(self, save_directory, *args, **kwargs):
        """A checkpoint that carries its code also maps `AutoModel` (the backbone): transformers writes only the
        saved class's own Auto entry, so `AutoModel.from_pretrained(ckpt, trust_remote_code=True)` would fail where
        `deepseek_hf` is not installed."""
        if self._auto_class is not None:
            backbone = f"{DeepseekLLMModel.__module__.rsplit('.', 1)[-1]}.{DeepseekLLMModel.__name__}"
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), "AutoModel": backbone}
        return super().save_pretrained(save_directory, *args, **kwargs)


class DeepseekLLMModel(DeepseekLLMPreTrainedModel):
    """The decoder stack (embeddings, layers, final norm); returns `last_hidden_state` and the KV cache."""

    def __init__(self, config: DeepseekLLMConfig):
        super().__init__(config)
        config.validate_architecture()  # catches fields edited after construction (e.g. `update_from_string`)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size

        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [DeepseekLLMDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = DeepseekLLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = DeepseekLLMRotaryEmbedding(config=config)
        self.gradient_checkpointing = False

        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, seq)`): token ids (or pass `inputs_embeds`).
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens, 0 for padding.
        position_ids (`torch.LongTensor` of shape `(batch, seq)`, *optional*): positions; in a packed batch they
            restart at 0 at each document, and attention is then confined to each document.
        cache (`Cache`, *optional*): KV cache from a previous step (`past_key_values` is accepted until 5.40).
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)

        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        if position_ids is None:
            past_seen_tokens = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.unsqueeze(0)

        # A 4-D additive/boolean mask for eager and sdpa (block-diagonal when position_ids mark packed documents),
        # `None` or the 2-D padding mask for flash attention (which reads the boundaries from `position_ids`).
        # `create_causal_mask` looks for packed documents only when no cache is given; the empty DynamicCache that
        # `use_cache=True` (the config default, also in training) creates holds nothing, so it is left out there.
        # (Llama passes it, and then attends across the documents of a packed batch unless use_cache=False.)
        empty_cache = type(cache) is DynamicCache and cache.get_seq_length() == 0
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=None if empty_cache else cache,
            position_ids=position_ids,
        )

        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)

        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )

        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache)


class DeepseekLLMForCausalLM(DeepseekLLMPreTrainedModel, GenerationMixin):
    """DeepSeek LLM with its (untied) output head; the training loss is the chunked linear + cross-entropy."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}
    _fsdp_plan = {"lm_head": "keep_full_weight"}

    def __init__(self, config: DeepseekLLMConfig):
        super().__init__(config)
        self.model = DeepseekLLMModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        skip_logits: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch, seq)`, *optional*): targets, unshifted (the model shifts them);
            -100 marks positions without loss. `shift_labels=` (already aligned) and `num_items_in_batch=` (the
            token count of the whole accumulated batch) are accepted as keyword arguments, as in HF's loss.
        logits_to_keep (`int` or `torch.Tensor`, defaults to 0): compute logits only for the last `n` positions
            (0 = all), or for the given indices; `generate` uses 1.
        skip_logits (`bool`, *optional*): `True` computes the loss with the fused chunked linear + cross-entropy and
            returns `logits=None`; `False` computes full logits and the standard loss. Default: skip when training
            with labels (the loss is all the Trainer needs), keep otherwise (evaluation, metrics, generation).

        Example:

        ```python
        model.train()
        out = model(input_ids, labels=input_ids)  # out.loss from the fused loss, out.logits is None
        out = model(input_ids, labels=input_ids, skip_logits=False)  # out.loss and out.logits
        ```
        """
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state

        shift_labels = kwargs.pop("shift_labels", None)
        has_labels = labels is not None or shift_labels is not None
        fused_head = type(self.lm_head) is nn.Linear and self.lm_head.bias is None  # e.g. not a PEFT-wrapped head
        if skip_logits is None:
            skip_logits = self.training and has_labels and fused_head
        elif skip_logits and not (has_labels and fused_head):
            raise ValueError("`skip_logits=True` needs `labels` (or `shift_labels`) and a plain linear `lm_head`.")

        logits = loss = None
        if skip_logits:
            loss = fused_linear_cross_entropy(
                hidden_states,
                self.lm_head.weight,
                labels,
                shift_labels=shift_labels,
                num_items_in_batch=kwargs.get("num_items_in_batch"),
                chunk_size=self.config.loss_chunk_size,
            )
        else:
            logits = self.lm_head(slice_logits_to_keep(hidden_states, logits_to_keep))
            if has_labels:
                loss = self.loss_function(
                    logits=logits,
                    labels=labels,
                    vocab_size=self.config.vocab_size,
                    shift_labels=shift_labels,
                    **kwargs,
                )

        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "DeepseekLLMForCausalLM",
    "DeepseekLLMModel",
    "DeepseekLLMPreTrainedModel",
    "fused_linear_cross_entropy",
    "token_log_probs",
]
