"""Model scale of DeepSeek LLM (arXiv 2401.02954, section 3.2, Eq. 2 and Table 3): M, 6N1 and 6N2.

The paper compares three ways of measuring how big a model is, per token of training:

* `6N1 = 72 n_layer d_model^2`: six times the non-embedding parameters (Kaplan et al.);
* `6N2 = 72 n_layer d_model^2 + 6 n_vocab d_model`: six times all parameters (Hoffmann et al.);
* `M = 72 n_layer d_model^2 + 12 n_layer d_model l_seq`: non-embedding FLOPs per token, attention included and the
  vocabulary computation left out. The paper adopts `M`, with the compute budget `C = M D`.

All three assume the paper's block: multi-head attention (four `d x d` projections) and a SwiGLU FFN of exactly
`8/3 d` (three `d x 8/3 d` matrices), i.e. `12 d^2` parameters per layer. A config with grouped-query attention
(the 67B: 8 key/value heads for 64 query heads) or an FFN rounded away from `8/3 d` has fewer or more matmul
FLOPs than `M` says; `M` is still what the paper's laws are written in, so the scaling code uses `M` as defined.
`matmul_flops_per_token(config)` gives the exact count of a config's own tensors for comparison.

```python
>>> from deepseek_hf.scaling import model_scale
>>> s = model_scale(n_layer=8, d_model=512, seq_len=4096, vocab_size=102400)   # Table 3, first row
>>> f"{s.flops_per_token:.3g}", f"{s.six_n1 / s.flops_per_token:.2f}", f"{s.six_n2 / s.flops_per_token:.2f}"
('3.52e+08', '0.43', '1.32')

```
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .hparams import model_flops_per_token

__all__ = ["ModelScale", "model_scale", "model_scale_from_config", "matmul_flops_per_token", "PAPER_TABLE_3"]

# Paper Table 3 (n_vocab = 102400, l_seq = 4096), as printed: n_layers, d_model, N1, N2, M, 6N1/M, 6N2/M.
PAPER_TABLE_3: tuple[tuple[int, int, float, float, float, float, float], ...] = (
    (8, 512, 25.2e6, 77.6e6, 352e6, 0.43, 1.32),
    (12, 768, 84.9e6, 164e6, 963e6, 0.53, 1.02),
    (24, 1024, 302e6, 407e6, 3.02e9, 0.60, 0.81),
    (24, 2048, 1.21e9, 1.42e9, 9.66e9, 0.75, 0.88),
    (32, 4096, 6.44e9, 6.86e9, 45.1e9, 0.85, 0.91),
    (40, 5120, 12.6e9, 13.1e9, 85.6e9, 0.88, 0.92),
    (80, 8192, 64.4e9, 65.3e9, 419e9, 0.92, 0.94),
)


@dataclass(frozen=True)
class ModelScale:
    """The three model-scale measures of one shape (paper Eq. 2); integers, exact."""

    n_layer: int
    d_model: int
    seq_len: int
    vocab_size: int
    flops_per_token: int  # M = 72 n_layer d^2 + 12 n_layer d l_seq
    six_n1: int  # 6 N1 = 72 n_layer d^2
    six_n2: int  # 6 N2 = 72 n_layer d^2 + 6 n_vocab d

    @property
    def n1(self) -> int:
        """Non-embedding parameters N1 = 12 n_layer d^2."""
        return self.six_n1 // 6

    @property
    def n2(self) -> int:
        """All parameters N2 = N1 + n_vocab d (one embedding matrix, as the paper counts)."""
        return self.six_n2 // 6

    @property
    def ratio_6n1(self) -> float:
        """6N1 / M: how far 6N1 underestimates the compute per token (0.43 for the smallest Table 3 model)."""
        return self.six_n1 / self.flops_per_token

    @property
    def ratio_6n2(self) -> float:
        """6N2 / M (1.32 for the smallest Table 3 model: the vocabulary term overestimates it)."""
        return self.six_n2 / self.flops_per_token

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n1": self.n1, "n2": self.n2, "ratio_6n1": self.ratio_6n1, "ratio_6n2": self.ratio_6n2}


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def model_scale(n_layer: int, d_model: int, seq_len: int, vocab_size: int) -> ModelScale:
    """M, 6N1 and 6N2 of a shape (paper Eq. 2), in FLOPs per token; reproduces Table 3 exactly."""
    n_layer, d_model = _positive_int("n_layer", n_layer), _positive_int("d_model", d_model)
    seq_len, vocab_size = _positive_int("seq_len", seq_len), _positive_int("vocab_size", vocab_size)
    six_n1 = 72 * n_layer * d_model**2
    return ModelScale(
        n_layer=n_layer,
        d_model=d_model,
        seq_len=seq_len,
        vocab_size=vocab_size,
        flops_per_token=six_n1 + 12 * n_layer * d_model * seq_len,
        six_n1=six_n1,
        six_n2=six_n1 + 6 * vocab_size * d_model,
    )


def model_scale_from_config(config: Any, seq_len: int | None = None) -> ModelScale:
    """`model_scale` of a `DeepseekLLMConfig` (or any config with Llama's field names).

    `seq_len` is the training sequence length (the `l_seq` of Eq. 2); it defaults to `max_position_embeddings`.
    `M` is the config's own `flops_per_token` (`deepseek_hf.scaling.model_flops_per_token`), which must agree with
    Eq. 2 on the config's depth and width: a config class that counts differently is refused, not mixed in.
    """
    seq_len = seq_len if seq_len is not None else config.max_position_embeddings
    scale = model_scale(config.num_hidden_layers, config.hidden_size, seq_len, config.vocab_size)
    if hasattr(config, "flops_per_token"):
        reported = model_flops_per_token(config, seq_len)
        if reported != scale.flops_per_token:
            raise ValueError(
                f"{type(config).__name__}.flops_per_token at seq_len {seq_len} is {reported:.6g}, but Eq. 2 on its "
                f"shape gives {scale.flops_per_token:.6g}"
            )
    return scale


def matmul_flops_per_token(config: Any, seq_len: int | None = None) -> int:
    """Non-embedding forward+backward FLOPs per token of the config's actual tensors (6 x matmul parameters of the
    blocks + `12 n_layer n_q d_head l_seq` for attention scores and values): differs from `M` for GQA and for an
    FFN that is not exactly `8/3 d`. For comparison only; the laws are in `M`."""
    seq_len = seq_len if seq_len is not None else config.max_position_embeddings
    d = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or d // config.num_attention_heads
    q_width = config.num_attention_heads * head_dim
    kv_width = (getattr(config, "num_key_value_heads", None) or config.num_attention_heads) * head_dim
    per_layer = 2 * d * q_width + 2 * d * kv_width + 3 * d * config.intermediate_size
    return config.num_hidden_layers * (6 * per_layer + 12 * q_width * seq_len)
