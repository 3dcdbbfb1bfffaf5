"""DeepSeek LLM configuration (arXiv 2401.02954, §2.2 and Table 2), in the transformers-5 dataclass style.

Field names are Llama's, so a released DeepSeek LLM `config.json` (model_type `llama`) maps onto it field by field.
The defaults are the official 7B values, except `initializer_range`: it is the paper's pre-training init std 0.006
(§2.3), whereas the released HF `config.json` says 0.02 (transformers' generic default, never used to train them).

Besides the architecture, the config reports the paper's scale quantities (§3.2, Eq. 2), which the scaling-law
code builds on: `non_embedding_params` (N1), `total_params` (N2) and `flops_per_token` (M).

Example:

```python
>>> from deepseek_hf.modeling import DeepseekLLMConfig
>>> cfg = DeepseekLLMConfig.from_preset("deepseek-llm-7b")
>>> round(cfg.num_parameters / 1e9, 2), f"{cfg.flops_per_token:.3e}"
(6.91, '4.228e+10')
>>> small = DeepseekLLMConfig.from_scale(num_hidden_layers=8, hidden_size=512)   # a Table 3 row
>>> small.num_attention_heads, small.intermediate_size
(4, 1536)

```
"""

import math

from huggingface_hub.dataclasses import strict
from transformers.activations import ACT2FN
from transformers.configuration_utils import PreTrainedConfig
from transformers.modeling_rope_utils import RopeParameters

# Official shapes (paper Table 2; released HF configs). `rope_theta` 10000, eps 1e-6, vocab 102400, untied.
PRESETS: dict[str, dict] = {
    "deepseek-llm-7b": {
        "num_hidden_layers": 30,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,  # multi-head attention: num_key_value_heads defaults to the head count
        "max_position_embeddings": 4096,
    },
    "deepseek-llm-67b": {
        "num_hidden_layers": 95,
        "hidden_size": 8192,
        "intermediate_size": 22016,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "max_position_embeddings": 4096,
    },
    # A family member small enough for CPU demos and tests; it keeps the real 102400 vocab and bos/eos ids, so it
    # runs with the real tokenizer. The FFN follows the 8/3·d rule (rounded up to a multiple of 256).
    "deepseek-llm-tiny": {
        "num_hidden_layers": 4,
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_attention_heads": 4,
        "max_position_embeddings": 1024,
    },
}


def swiglu_intermediate_size(hidden_size: int, multiple_of: int = 256) -> int:
    """FFN width of the family: 8/3·d (§2.2) rounded *up* to `multiple_of`; gives 11008 for d=4096, 22016 for 8192."""
    return multiple_of * math.ceil(8 * hidden_size / (3 * multiple_of))


@strict
class DeepseekLLMConfig(PreTrainedConfig):
    r"""
    Configuration of a DeepSeek LLM decoder (pre-norm RMSNorm, SwiGLU, RoPE, MHA or GQA, untied embeddings).

    Args:
        vocab_size (`int`, defaults to 102400): embedding rows; 100015 tokenizer tokens padded to 102400 (§2.1).
        hidden_size (`int`, defaults to 4096): model width d_model.
        intermediate_size (`int`, defaults to 11008): SwiGLU width, ≈ 8/3·d_model (§2.2).
        num_hidden_layers (`int`, defaults to 30): decoder layers.
        num_attention_heads (`int`, defaults to 32): query heads.
        num_key_value_heads (`int`, *optional*): key/value heads; `None` = multi-head attention (7B), fewer = GQA
            (67B uses 8).
        head_dim (`int`, *optional*): per-head width; defaults to `hidden_size // num_attention_heads`.
        hidden_act (`str`, defaults to `"silu"`): gate activation of the SwiGLU.
        max_position_embeddings (`int`, defaults to 4096): training context length (the `l_seq` of Eq. 2).
        initializer_range (`float`, defaults to 0.006): std of the normal init of every linear and embedding
            weight (§2.3; the released HF config says 0.02, which was not used for training).
        rms_norm_eps (`float`, defaults to 1e-6): RMSNorm epsilon.
        use_cache (`bool`, defaults to `True`): return a KV cache for generation.
        pad_token_id / bos_token_id / eos_token_id: special ids (bos 100000, eos 100001 as in the release).
        tie_word_embeddings (`bool`, defaults to `False`): DeepSeek LLM keeps input and output embeddings separate.
        rope_parameters (`dict`, *optional*): RoPE settings, defaults to `{"rope_type": "default", "rope_theta":
            10000.0}`; a legacy `rope_theta=` / `rope_scaling=` keyword is converted.
        attention_bias / mlp_bias (`bool`, defaults to `False`): no biases anywhere.
        attention_dropout (`float`, defaults to 0.0): dropout on attention probabilities.
        loss_chunk_size (`int`, defaults to 512): tokens per chunk of the fused linear + cross-entropy used for
            the training loss; the loss then holds `loss_chunk_size × vocab_size` float32 logits at a time instead
            of `batch × seq × vocab_size`.
    """

    model_type = "deepseek_llm"
    keys_to_ignore_at_inference = ["cache"]
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }
    base_model_pp_plan = {
        "embed_tokens": (["input_ids"], ["inputs_embeds"]),
        "layers": (["hidden_states", "attention_mask"], ["hidden_states"]),
        "norm": (["hidden_states"], ["hidden_states"]),
    }

    vocab_size: int = 102400
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 30
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    initializer_range: float = 0.006
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 100000
    eos_token_id: int | list[int] | None = 100001
    tie_word_embeddings: bool = False
    rope_parameters: RopeParameters | dict | None = None
    attention_bias: bool = False
    attention_dropout: int | float = 0.0
    mlp_bias: bool = False
    loss_chunk_size: int = 512

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        # Validate before deriving head_dim, so that e.g. zero heads is a ValueError and not a ZeroDivisionError.
        # (`@strict` validates again after __init__, but wraps errors in its own exception type; raising here keeps
        # a plain ValueError for the user.)
        self.validate_architecture()
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Raise a `ValueError` naming the offending field for any inconsistent shape or hyperparameter."""
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
            "loss_chunk_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads != 0:
                raise ValueError(
                    f"`num_attention_heads` ({self.num_attention_heads}) must divide `hidden_size` "
                    f"({self.hidden_size}), or set `head_dim` explicitly."
                )
            head_dim = self.hidden_size // self.num_attention_heads
        else:
            head_dim = self.head_dim
        if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2:
            raise ValueError(f"`head_dim` must be a positive even integer (RoPE rotates pairs), got {head_dim!r}.")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_key_value_heads` ({self.num_key_value_heads}) must divide `num_attention_heads` "
                f"({self.num_attention_heads}) for grouped-query attention."
            )
        if not self.rms_norm_eps > 0:
            raise ValueError(f"`rms_norm_eps` must be > 0, got {self.rms_norm_eps!r}.")
        if not self.initializer_range > 0:
            raise ValueError(f"`initializer_range` must be > 0, got {self.initializer_range!r}.")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"`attention_dropout` must be in [0, 1), got {self.attention_dropout!r}.")
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"`hidden_act` {self.hidden_act!r} is not a known activation (e.g. 'silu').")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            for token_id in value if isinstance(value, list) else [value]:
                if token_id is not None and not 0 <= token_id < self.vocab_size:
                    raise ValueError(
                        f"`{name}` ({token_id}) is outside the vocabulary (`vocab_size` = {self.vocab_size}); "
                        f"pass the tokenizer's special-token ids together with its vocabulary size."
                    )

    def check_vocab_covers(self, tokenizer_or_size) -> None:
        """Raise a `ValueError` unless every id of a tokenizer (or a token count) has an embedding row.

        The tokenizer's length counts its added/special tokens (100015 for DeepSeek's); the model's `vocab_size`
        may be larger (padded to 102400, §2.1) but never smaller, or those ids would index past the embedding.
        """
        size = tokenizer_or_size if isinstance(tokenizer_or_size, int) else len(tokenizer_or_size)
        if size > self.vocab_size:
            raise ValueError(
                f"`vocab_size` ({self.vocab_size}) is smaller than the tokenizer's {size} tokens; "
                f"build the model with vocab_size >= {size}, e.g. `deepseek_hf.tokenizer.padded_vocab_size({size})`."
            )

    # ----------------------------------------------------------------------------------------------------------
    # Presets and family members
    # ----------------------------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "DeepseekLLMConfig":
        """The exact official config (`deepseek-llm-7b`, `deepseek-llm-67b`) or the tiny demo member, plus overrides."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}.")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_scale(
        cls,
        num_hidden_layers: int,
        hidden_size: int,
        head_dim: int = 128,
        num_key_value_heads: int | None = None,
        ffn_multiple_of: int = 256,
        **kwargs,
    ) -> "DeepseekLLMConfig":
        """A member of the family at a given depth and width, as used for the scaling-law sweeps (§3).

        Heads are `hidden_size / head_dim` (128 in both released models), the FFN is 8/3·d rounded up to
        `ffn_multiple_of` (this reproduces 11008 and 22016 exactly); everything else comes from the defaults or
        `kwargs`.
        """
        if head_dim <= 0 or hidden_size % head_dim != 0:
            raise ValueError(f"`head_dim` ({head_dim}) must be positive and divide `hidden_size` ({hidden_size}).")
        kwargs.setdefault("intermediate_size", swiglu_intermediate_size(hidden_size, ffn_multiple_of))
        return cls(
            num_hidden_layers=num_hidden_layers,
            hidden_size=hidden_size,
            num_attention_heads=hidden_size // head_dim,
            num_key_value_heads=num_key_value_heads,
            **kwargs,
        )

    # ----------------------------------------------------------------------------------------------------------
    # Scale quantities of the paper (§3.2, Eq. 2). The paper's formulas count MHA blocks with an FFN of 8/3·d;
    # `num_parameters` is the exact count of this config's tensors instead.
    # ----------------------------------------------------------------------------------------------------------
    @property
    def non_embedding_params(self) -> int:
        """N1 = 12·n_layer·d² (the paper writes 6·N1 = 72·n_layer·d²)."""
        return 12 * self.num_hidden_layers * self.hidden_size**2

    @property
    def total_params(self) -> int:
        """N2 = N1 + n_vocab·d (the paper writes 6·N2 = 72·n_layer·d² + 6·n_vocab·d)."""
        return self.non_embedding_params + self.vocab_size * self.hidden_size

    @property
    def flops_per_token(self) -> int:
        """M = 72·n_layer·d² + 12·n_layer·d·l_seq, non-embedding FLOPs per token with l_seq = the context (Eq. 2)."""
        return self.flops_per_token_at(self.max_position_embeddings)

    def flops_per_token_at(self, seq_len: int) -> int:
        """M at another sequence length (the attention term grows with the context)."""
        return (
            72 * self.num_hidden_layers * self.hidden_size**2
            + 12 * self.num_hidden_layers * self.hidden_size * seq_len
        )

    @property
    def num_parameters(self) -> int:
        """Exact number of parameters of `DeepseekLLMForCausalLM(config)` (untied embeddings counted twice)."""
        d, n_q, n_kv = (
            self.hidden_size,
            self.num_attention_heads * self.head_dim,
            self.num_key_value_heads * self.head_dim,
        )
        attention = d * n_q + 2 * d * n_kv + n_q * d + (n_q + 2 * n_kv + d) * self.attention_bias
        mlp = 3 * d * self.intermediate_size + (2 * self.intermediate_size + d) * self.mlp_bias
        per_layer = attention + mlp + 2 * d  # + input and post-attention RMSNorm weights
        embeddings = self.vocab_size * d * (1 if self.tie_word_embeddings else 2)
        return self.num_hidden_layers * per_layer + d + embeddings  # + final norm


__all__ = ["DeepseekLLMConfig", "PRESETS", "swiglu_intermediate_size"]
