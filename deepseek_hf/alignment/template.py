"""The DeepSeek chat template in training: the `{% generation %}` blocks that label the assistant tokens, and token
lengths for the over-long rule.

Labels come from TRL's `assistant_only_loss`: `apply_chat_template(..., return_assistant_tokens_mask=True)` marks
each token that overlaps a `{% generation %}` block, and `SFTTrainer` sets every other label to -100. Our template's
block holds `' ' + content + eos_token` after `Assistant:` (the generation prompt), so exactly what the model must
produce at inference is labelled: the answer (with its leading space) and the EOS that stops it; the user turns, the
system prompt, BOS and the `Assistant:` prefixes carry no label. `tests/alignment/test_label_masking.py` checks this
token by token against the rendered text, multi-turn included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..tokenizer.special_tokens import CHAT_TEMPLATE

logger = logging.getLogger(__name__)

__all__ = ["LEGACY_CHAT_TEMPLATE", "ensure_training_chat_template", "sft_length", "preference_length"]

_GENERATION_BLOCK = "{{ 'Assistant:' }}{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}"
#: The template of tokenizers saved before the generation markers were added: it renders the same text.
LEGACY_CHAT_TEMPLATE = CHAT_TEMPLATE.replace(_GENERATION_BLOCK, "{{ 'Assistant: ' + message['content'] + eos_token }}")


def ensure_training_chat_template(tokenizer) -> str:
    """Make sure `tokenizer` can label the assistant tokens; returns what was done (for the run's notes).

    A DeepSeek tokenizer saved before the markers existed (same rendered text) or one without any template gets the
    current `CHAT_TEMPLATE`, said in a warning. A foreign template without `{% generation %}` is an error: TRL would
    otherwise patch or refuse it, and the labels would not be the ones tested here.
    """
    template = tokenizer.chat_template
    if isinstance(template, str) and "{% generation %}" in template:
        return "chat template has {% generation %} markers"
    if template is None or template == LEGACY_CHAT_TEMPLATE:
        tokenizer.chat_template = CHAT_TEMPLATE
        what = "had no chat template" if template is None else "had the DeepSeek template without generation markers"
        logger.warning("The tokenizer %s: set to deepseek_hf's CHAT_TEMPLATE (same text, with the markers)", what)
        return f"tokenizer {what}: set to deepseek_hf.tokenizer.CHAT_TEMPLATE"
    raise ValueError(
        "the tokenizer's chat template has no {% generation %} ... {% endgeneration %} blocks, so the assistant "
        "tokens cannot be labelled; use a DeepSeek tokenizer (deepseek_hf.tokenizer.CHAT_TEMPLATE) or set "
        "assistant_only_loss: false"
    )


def _length(tokenizer, messages) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))


def sft_length(tokenizer) -> Callable[[dict], int]:
    """Tokens of a conversation as the trainer will see it (rendered by the chat template, BOS and EOS included)."""
    return lambda record: _length(tokenizer, record["messages"])


def preference_length(tokenizer) -> Callable[[dict], int]:
    """Tokens of the prompt with the longer of the two answers (what DPO's `max_length` applies to)."""
    return lambda record: max(
        _length(tokenizer, record["prompt"] + record["chosen"]),
        _length(tokenizer, record["prompt"] + record["rejected"]),
    )
