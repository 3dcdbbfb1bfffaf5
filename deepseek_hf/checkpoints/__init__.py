"""Checkpoints of the DeepSeek LLM architecture: `deepseek-hf model ...` and the Llama-format conversion.

Not the architecture itself (that is `deepseek_hf.modeling`): what a user does with a checkpoint folder, i.e.
inspect its config, convert it from / to the Llama format of the official release (`llama_format`), generate
with it (`cli`, the `deepseek-hf model` group).

```python
from deepseek_hf.checkpoints import convert_checkpoint, load_llama_checkpoint, save_as_llama
```
"""

from .llama_format import config_from_llama, config_to_llama, convert_checkpoint, load_llama_checkpoint, save_as_llama

__all__ = ["config_from_llama", "config_to_llama", "convert_checkpoint", "load_llama_checkpoint", "save_as_llama"]
