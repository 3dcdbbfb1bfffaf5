"""The DeepSeek LLM model (installed as `deepseek_hf.modeling`).

The two modules import only `torch`, `transformers` and each other, so `save_pretrained` can copy them into a
checkpoint that loads with `trust_remote_code=True` in a process without `deepseek_hf`.
"""

from .configuration_deepseek_llm import PRESETS, DeepseekLLMConfig, swiglu_intermediate_size
from .modeling_deepseek_llm import (
    DeepseekLLMForCausalLM,
    DeepseekLLMModel,
    DeepseekLLMPreTrainedModel,
    fused_linear_cross_entropy,
    token_log_probs,
)

__all__ = [
    "PRESETS",
    "DeepseekLLMConfig",
    "DeepseekLLMForCausalLM",
    "DeepseekLLMModel",
    "DeepseekLLMPreTrainedModel",
    "fused_linear_cross_entropy",
    "swiglu_intermediate_size",
    "token_log_probs",
]
