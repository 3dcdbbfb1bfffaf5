"""Loss on the assistant tokens only: the labels the SFT trainer builds, token by token against the rendered chat.

The oracle is the DeepSeek chat format written out by hand (as tests/tokenizer/test_tokenizer_chat_template.py does),
with the character span of each answer recorded as it is written: a token carries a label exactly when it overlaps
`' ' + answer + EOS` (what the model must say after the generation prompt `Assistant:`), and the labelled tokens of
each turn decode back to exactly that text.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from deepseek_hf.alignment import DeepseekSFTConfig, DeepseekSFTTrainer, ensure_training_chat_template
from deepseek_hf.alignment.template import LEGACY_CHAT_TEMPLATE
from deepseek_hf.tokenizer import BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN

pytestmark = pytest.mark.filterwarnings("ignore:`gradient_checkpointing.*` is deprecated:FutureWarning")

CONVERSATIONS = {
    "single": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "An assistant."}],
    "multi_turn_with_system": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "写一句诗"},
        {"role": "assistant", "content": "春眠不觉晓，\n处处闻啼鸟。"},
        {"role": "user", "content": "And code?"},
        {"role": "assistant", "content": "def f(x):\n    return x + 1"},
    ],
}


def render_with_spans(messages):
    """The official format, and the (start, end) character span of each `' ' + answer + EOS`."""
    text, spans = BOS_TOKEN, []
    for message in messages:
        if message["role"] == "user":
            text += f"User: {message['content']}\n\n"
        elif message["role"] == "system":
            text += f"{message['content']}\n\n"
        else:
            text += "Assistant:"
            start = len(text)
            text += f" {message['content']}{EOS_TOKEN}"
            spans.append((start, len(text)))
    return text, spans


@pytest.fixture(scope="module")
def trainer(align_checkpoint, tmp_path_factory):
    model = AutoModelForCausalLM.from_pretrained(align_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(align_checkpoint)
    args = DeepseekSFTConfig(
        output_dir=str(tmp_path_factory.mktemp("masking")),
        max_length=512,
        use_cpu=True,
        report_to="none",
        gradient_checkpointing=False,
    )
    dataset = Dataset.from_list([{"messages": m} for m in CONVERSATIONS.values()])
    return DeepseekSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


@pytest.mark.parametrize("index, name", list(enumerate(CONVERSATIONS)))
def test_exactly_the_answers_and_their_eos_carry_labels(trainer, index, name):
    tokenizer, messages = trainer.processing_class, CONVERSATIONS[name]
    text, spans = render_with_spans(messages)
    assert tokenizer.apply_chat_template(messages, tokenize=False) == text

    batch = trainer.data_collator([trainer.train_dataset[index]])  # what a training step receives
    input_ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert input_ids == encoded["input_ids"]

    def in_an_answer(start, end):
        return any(start < span_end and end > span_start for span_start, span_end in spans)

    expected = [t if in_an_answer(*offsets) else -100 for t, offsets in zip(input_ids, encoded["offset_mapping"])]
    assert labels == expected
    # each turn's labelled tokens are exactly its answer and the EOS that ends it
    turns, current = [], []
    for token, label in zip(input_ids, labels):
        if label != -100:
            current.append(token)
            if token == tokenizer.eos_token_id:
                turns.append(current)
                current = []
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert [tokenizer.decode(turn) for turn in turns] == [f" {answer}{EOS_TOKEN}" for answer in answers]
    assert current == [] and labels.count(-100) > 0 and labels[0] == -100  # BOS, user turns: no label


def test_a_tokenizer_saved_with_the_old_template_is_upgraded(align_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(align_checkpoint)
    messages = CONVERSATIONS["multi_turn_with_system"]
    tokenizer.chat_template = LEGACY_CHAT_TEMPLATE
    old = tokenizer.apply_chat_template(messages, tokenize=False)
    assert "{% generation %}" not in LEGACY_CHAT_TEMPLATE
    assert "without generation markers" in ensure_training_chat_template(tokenizer)
    assert tokenizer.chat_template == CHAT_TEMPLATE and tokenizer.apply_chat_template(messages, tokenize=False) == old
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="no {% generation %}"):
        ensure_training_chat_template(tokenizer)


def test_training_never_calls_the_full_logits_head(trainer):
    """The loss comes from TRL's fused head (tiles of the vocabulary): `lm_head.forward` is never called."""
    calls = []
    handle = trainer.model.lm_head.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    try:
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
    finally:
        handle.remove()
    assert torch.isfinite(loss) and calls == []
    assert trainer.model.lm_head.weight.grad is not None and trainer.model.lm_head.weight.grad.abs().sum() > 0
