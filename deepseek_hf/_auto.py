"""Registration of the `deepseek_llm` model type with transformers' Auto classes (process-local, idempotent).

Two mechanisms, both needed:
- `Auto*.register` lets `AutoConfig` / `AutoModel` / `AutoModelForCausalLM` resolve `model_type: deepseek_llm`
  in any process that imported `deepseek_hf`;
- `register_for_auto_class` makes `save_pretrained` copy the modeling files into the checkpoint and write an
  `auto_map`, so `AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)` works without `deepseek_hf`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from .modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM, DeepseekLLMModel
from .tokenizer.tokenization_deepseek_llm import DeepseekLLMTokenizer


def register_auto_classes() -> None:
    """Make `Auto*.from_pretrained` resolve `model_type: deepseek_llm` without `trust_remote_code`."""
    AutoConfig.register(DeepseekLLMConfig.model_type, DeepseekLLMConfig, exist_ok=True)
    AutoModel.register(DeepseekLLMConfig, DeepseekLLMModel, exist_ok=True)
    AutoModelForCausalLM.register(DeepseekLLMConfig, DeepseekLLMForCausalLM, exist_ok=True)
    # Tokenizers save `tokenizer_class: DeepseekLLMTokenizer`; without this registration (plain transformers)
    # `AutoTokenizer` falls back to `TokenizersBackend`, which loads the same tokenizer.json with identical ids.
    AutoTokenizer.register(DeepseekLLMConfig, tokenizer_class=DeepseekLLMTokenizer, exist_ok=True)
    # Checkpoints written by `save_pretrained` carry the code (auto_map + modeling files).
    DeepseekLLMConfig.register_for_auto_class("AutoConfig")
    DeepseekLLMModel.register_for_auto_class("AutoModel")
    DeepseekLLMForCausalLM.register_for_auto_class("AutoModelForCausalLM")
