"""Chat-format evaluation: the perplexity tasks through a chat model's own template (lm-eval's
`apply_chat_template`, `system_instruction`, `fewshot_as_multiturn`), as the paper scores its chat models (P §5.1,
Table 6: 0-shot; Table 14: with and without a system prompt).

lm-eval renders each context with the tokenizer's chat template, so a 0-shot prompt is
`<bos>[system\\n\\n]User: {question}\\n\\nAssistant:` with DeepSeek's template, and few-shot examples become earlier
user / assistant turns (`fewshot_as_multiturn`) or stay inside the one user turn. Two things lm-eval leaves to the
task, decided here:

- **The continuation.** lm-eval drops the task's target delimiter in chat mode, since most templates end the
  generation prompt with a newline. DeepSeek's ends with `Assistant:` and renders an answer as `Assistant: {answer}`,
  so scoring `Assistant:Paris` would score text the model never saw. The continuation is what the template itself
  puts between its generation prompt and the answer (`answer_delimiter`, `" "` for DeepSeek) followed by the option:
  context + continuation + end-of-sentence is exactly the rendered conversation with that answer.
- **The unconditional context** of `acc_uncond` (ARC, OpenBookQA): the answer prompt alone, in the same frame as the
  question, `<bos>[system\\n\\n]User: Answer:\\n\\nAssistant:` (`unconditional_context`). The system prompt stays,
  since it shapes the answer prior that the normalization divides out; the task description and the shots go, as
  they do from the plain "Answer:" context of a base-model run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["MissingChatTemplateError", "answer_delimiter", "require_chat_template", "unconditional_context"]

logger = logging.getLogger(__name__)

# lm-eval's `LM.apply_chat_template(chat_history, add_generation_prompt=True) -> str`; with
# `add_generation_prompt=False` HFLM continues the final (assistant) message instead of closing it.
ChatTemplate = Callable[..., str]

_PROBE_ANSWER = "Paris is the capital of France."


class MissingChatTemplateError(ValueError):
    """A chat-format run was asked of a tokenizer that has no chat template."""


def require_chat_template(model_args: dict[str, Any]) -> str:
    """The chat template of the tokenizer lm-eval will load (`tokenizer=` or `pretrained=` of `model_args`); an error
    naming the tokenizer when it has none, before any model is loaded."""
    from transformers import AutoTokenizer

    source = model_args.get("tokenizer") or model_args.get("pretrained")
    trust = str(model_args.get("trust_remote_code", False)).lower() == "true"
    kwargs = {"revision": model_args["revision"]} if model_args.get("revision") else {}
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust, **kwargs)
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise MissingChatTemplateError(
            f"--apply-chat-template: the tokenizer of {source} has no chat template (tokenizer_config.json / "
            "chat_template.jinja); evaluate it as a base model, or save a chat model's tokenizer with its template "
            "(deepseek_hf.tokenizer.CHAT_TEMPLATE)"
        )
    return template if isinstance(template, str) else str(template)


def answer_delimiter(chat_template: ChatTemplate) -> str | None:
    """What the template renders between its generation prompt and an assistant answer (`" "` for DeepSeek's
    `Assistant:` prompt), read off a rendered probe conversation; None (with a warning) when the answered turn does
    not extend the generation prompt, so there is no such text."""
    question = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = chat_template(question, add_generation_prompt=True)
    answered = chat_template([*question, {"role": "assistant", "content": _PROBE_ANSWER}], add_generation_prompt=False)
    if answered.startswith(prompt) and answered.endswith(_PROBE_ANSWER):
        return answered[len(prompt) : len(answered) - len(_PROBE_ANSWER)]
    logger.warning(
        "chat template: an answered turn does not extend the generation prompt (%r vs %r); the continuations keep "
        "lm-eval's chat-mode form (the option without a delimiter)",
        answered[-80:],
        prompt[-80:],
    )
    return None


def unconditional_context(
    chat_template: ChatTemplate, answer_prompt: str, system_instruction: str | None, gen_prefix: str | None = None
) -> str:
    """The chat-format context of `acc_uncond`: the answer prompt as the only user turn, after the system prompt if
    any, ending where the question's context ends (the generation prompt, or the task's `gen_prefix` turn)."""
    messages = [{"role": "system", "content": system_instruction}] if system_instruction else []
    messages.append({"role": "user", "content": answer_prompt})
    if gen_prefix:
        messages.append({"role": "assistant", "content": gen_prefix})
    return chat_template(messages, add_generation_prompt=not gen_prefix)
