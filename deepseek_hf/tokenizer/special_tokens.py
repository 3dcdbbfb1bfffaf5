"""The 15 tokens that follow the regular vocabulary, and the chat template of DeepSeek LLM Chat.

Layout of the real tokenizer (llama.cpp `models/ggml-vocab-deepseek-llm.gguf`): ids 0-99999 are regular byte-level BPE
tokens, then

| id              | token                        | kind                                              |
|-----------------|------------------------------|---------------------------------------------------|
| 100000          | `<｜begin▁of▁sentence｜>`    | control (special), BOS                            |
| 100001          | `<｜end▁of▁sentence｜>`      | control (special), EOS (also used as padding)     |
| 100002 - 100014 | `ø ö ú ÿ õ ÷ û ý À ù Á þ ü`  | user-defined added tokens, matched on raw text    |

The bars are U+FF5C (fullwidth vertical line) and the word separators U+2581 (lower one eighth block). The 13 added
tokens are the byte-level symbols of the bytes that never occur in UTF-8 (see `pre_tokenizer.UNUSED_BYTE_SYMBOLS`);
because they are matched before BPE, the *characters* ø ö ú ... ü of the input each become one of these tokens
("Führer" -> [37, 100014, 71, 6245]). Trained tokenizers use the same 15 tokens right after their regular tokens,
so a `vocab_size=100000` training has exactly the real layout.
"""

from __future__ import annotations

from .pre_tokenizer import UNUSED_BYTE_SYMBOLS

BOS_TOKEN = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS_TOKEN = "<\uff5cend\u2581of\u2581sentence\uff5c>"
CONTROL_TOKENS: tuple[str, ...] = (BOS_TOKEN, EOS_TOKEN)
ADDED_TOKENS: tuple[str, ...] = UNUSED_BYTE_SYMBOLS
#: In id order after the regular tokens: BOS, EOS, then the 13 added single-character tokens.
SPECIAL_TOKENS: tuple[str, ...] = CONTROL_TOKENS + ADDED_TOKENS
NUM_SPECIAL_TOKENS = len(SPECIAL_TOKENS)  # 15 (paper §2.1: "15 special tokens", 100000 + 15 = 100015)

#: DeepSeek LLM Chat format (R: `User: {m0}\n\nAssistant: {m1}<｜end▁of▁sentence｜>User: {m2}\n\nAssistant:`); BOS
#: comes from the template, so chat prompts are tokenized without adding another one. The `{% generation %}` block
#: (no output of its own) marks what an assistant turn says after the generation prompt `Assistant:` (the space, the
#: answer and the EOS that ends it): `return_assistant_tokens_mask=True` / TRL's `assistant_only_loss` label exactly
#: the tokens the model must produce at inference, stopping included.
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant:' }}"
    "{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
