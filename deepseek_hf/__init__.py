"""deepseek-hf: the DeepSeek LLM recipe (arXiv 2401.02954) as a first-class citizen of the Hugging Face stack.

`import deepseek_hf` registers the `deepseek_llm` model type with transformers' Auto classes, so
`AutoConfig`, `AutoModel`, `AutoModelForCausalLM` and `AutoTokenizer` resolve our checkpoints.
"""

__version__ = "0.1.0.dev0"

from ._auto import register_auto_classes  # noqa: E402
from .modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM, DeepseekLLMModel  # noqa: E402
from .tokenizer import DeepseekLLMTokenizer  # noqa: E402

register_auto_classes()

__all__ = [
    "DeepseekLLMConfig",
    "DeepseekLLMModel",
    "DeepseekLLMForCausalLM",
    "DeepseekLLMTokenizer",
    "register_auto_classes",
    "__version__",
]
