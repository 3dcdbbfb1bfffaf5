"""The DeepSeek LLM Chat format: `User: {m0}\\n\\nAssistant: {m1}<｜end▁of▁sentence｜>User: {m2}\\n\\nAssistant:`."""

from __future__ import annotations

import pytest

from deepseek_hf.tokenizer import BOS_TOKEN, EOS_TOKEN

CONVERSATION = [
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "An assistant."},
    {"role": "user", "content": "2+2?"},
]


def official_format(messages, add_generation_prompt: bool) -> str:
    """The format of the DeepSeek-LLM README, written out by hand (oracle for the Jinja template)."""
    text = BOS_TOKEN
    for message in messages:
        if message["role"] == "user":
            text += f"User: {message['content']}\n\n"
        elif message["role"] == "assistant":
            text += f"Assistant: {message['content']}{EOS_TOKEN}"
        else:
            text += f"{message['content']}\n\n"
    return text + ("Assistant:" if add_generation_prompt else "")


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_rendering_matches_the_official_format(trained_tokenizer, add_generation_prompt):
    rendered = trained_tokenizer.apply_chat_template(
        CONVERSATION, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    assert rendered == official_format(CONVERSATION, add_generation_prompt)
    assert rendered == (
        f"{BOS_TOKEN}User: Who are you?\n\nAssistant: An assistant.{EOS_TOKEN}User: 2+2?\n\n"
        + ("Assistant:" if add_generation_prompt else "")
    )


def test_system_prompt_is_plain_text_before_the_turns(trained_tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, *CONVERSATION[:1]]
    rendered = trained_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == official_format(messages, add_generation_prompt=True)


def test_tokenized_chat_has_one_bos_and_special_ids(any_tokenizer):
    ids = any_tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=True, return_dict=False)
    assert ids[0] == any_tokenizer.bos_token_id and ids.count(any_tokenizer.bos_token_id) == 1
    assert ids[-1] == any_tokenizer.eos_token_id  # the assistant turn ends with EOS as one token
    assert any_tokenizer.decode(ids) == official_format(CONVERSATION[:2], add_generation_prompt=False)
