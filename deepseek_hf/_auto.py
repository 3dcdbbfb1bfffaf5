"""Registration of the `deepseek_llm` model type with transformers' Auto classes (process-local, idempotent)."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM, DeepseekLLMModel


def register_auto_classes() -> None:
    """Make `Auto*.from_pretrained` resolve `model_type: deepseek_llm` without `trust_remote_code`."""
    AutoConfig.register(DeepseekLLMConfig.model_type, DeepseekLLMConfig, exist_ok=True)
    AutoModel.register(DeepseekLLMConfig, DeepseekLLMModel, exist_ok=True)
    AutoModelForCausalLM.register(DeepseekLLMConfig, DeepseekLLMForCausalLM, exist_ok=True)
