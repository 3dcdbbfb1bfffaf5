"""`deepseek-hf chat`: one answer with --prompt, the interactive loop on stdin (/reset, /exit, end of input), and
every turn's prompt is the paper's chat format of the whole history (`User: ...\\n\\nAssistant: ...<eos>`)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

import deepseek_hf.chat as chat
from deepseek_hf.cli import main
from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
from deepseek_hf.tokenizer import train_tokenizer

TEXT = "Hello there, how are you today? I am fine, thank you.\n你好，今天天气很好。\n" * 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random 2-layer model and a 300-token tokenizer (with the DeepSeek chat template) saved together."""
    root = tmp_path_factory.mktemp("chat")
    (root / "corpus.txt").write_text(TEXT, encoding="utf-8")
    tokenizer = train_tokenizer([root / "corpus.txt"], vocab_size=300, show_progress=False)
    torch.manual_seed(0)
    config = DeepseekLLMConfig.from_preset(
        "deepseek-llm-tiny",
        num_hidden_layers=2,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=2,
        **tokenizer.model_config_kwargs(),
    )
    DeepseekLLMForCausalLM(config).save_pretrained(root / "ckpt")
    tokenizer.save_pretrained(root / "ckpt")
    return root / "ckpt"


class ScriptedAnswers:
    """A forward hook that makes the model answer each turn with `answer` then EOS; records each turn's prompt."""

    def __init__(self, model, tokenizer, answer: str):
        self.script = tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        self.prompts: list[list[int]] = []
        self.step = 0
        model.register_forward_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs, output):
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:  # the prefill of a new turn: its prompt
            self.prompts.append(ids[0].tolist())
            self.step = 0
        output.logits[:, -1, :] = -1e4
        output.logits[:, -1, self.script[min(self.step, len(self.script) - 1)]] = 0.0
        self.step += 1
        return output


def paper_format(tokenizer, turns: list[tuple[str, str | None]], system: str | None = None) -> list[int]:
    """The DeepSeek LLM Chat format written out by hand (the oracle): BOS, then per turn
    `User: {q}\\n\\nAssistant: {a}<eos>`, the last turn ending at `Assistant:`."""
    text = tokenizer.bos_token + (system + "\n\n" if system else "")
    for question, answer in turns:
        text += f"User: {question}\n\nAssistant:" + (f" {answer}{tokenizer.eos_token}" if answer is not None else "")
    return tokenizer(text, add_special_tokens=False).input_ids


@pytest.fixture
def scripted(checkpoint, monkeypatch):
    """`deepseek-hf chat` on the checkpoint with the scripted model; yields the hook."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = DeepseekLLMForCausalLM.from_pretrained(checkpoint).eval()
    hook = ScriptedAnswers(model, tokenizer, " I am fine, thank you.")
    monkeypatch.setattr(chat, "load", lambda path, device=None: (model, tokenizer))
    hook.tokenizer = tokenizer
    return hook


def test_one_answer_greedy_equals_generate_on_the_template(checkpoint, capsys):
    """The real random model, no script: the streamed answer is transformers' greedy continuation of the prompt."""
    assert main(["chat", str(checkpoint), "--prompt", "Hello there", "--max-new-tokens", "12"]) == 0
    out = capsys.readouterr().out
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = DeepseekLLMForCausalLM.from_pretrained(checkpoint).eval()
    prompt = torch.tensor([paper_format(tokenizer, [("Hello there", None)])])
    expected = model.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    answer = tokenizer.decode(expected[0, prompt.shape[1] :], skip_special_tokens=True)
    assert out.startswith(answer.lstrip()) and answer.strip()
    if tokenizer.eos_token_id not in expected[0, prompt.shape[1] :].tolist():
        assert "[the answer was cut at --max-new-tokens 12]" in out


def test_prompts_are_successive_turns_in_the_paper_format(scripted, capsys):
    argv = ["chat", "ckpt", "--prompt", "Hello there", "--prompt", "你好", "--system", "Be kind."]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out == "I am fine, thank you.\n" * 2  # streamed, special tokens skipped
    answer = "I am fine, thank you."
    assert scripted.prompts == [
        paper_format(scripted.tokenizer, [("Hello there", None)], system="Be kind."),
        paper_format(scripted.tokenizer, [("Hello there", answer), ("你好", None)], system="Be kind."),
    ]


def test_interactive_loop_reads_stdin_until_exit(scripted, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello there\nHow are you?\n/reset\n\n你好\n/exit\nnever read\n"))
    assert main(["chat", "ckpt"]) == 0
    answer = "I am fine, thank you."
    assert scripted.prompts == [
        paper_format(scripted.tokenizer, [("Hello there", None)]),
        paper_format(scripted.tokenizer, [("Hello there", answer), ("How are you?", None)]),
        paper_format(scripted.tokenizer, [("你好", None)]),  # /reset cleared the history; the blank line is skipped
    ]
    out = capsys.readouterr().out
    assert out.count(f"Assistant: {answer}\n") == 3 and "[history cleared]" in out
    assert out.startswith("Chat (/reset clears the history, /exit (or Ctrl-D) ends).")


def test_end_of_input_ends_the_chat(scripted, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello there\n"))
    assert main(["chat", "ckpt", "--max-new-tokens", "3"]) == 0
    assert len(scripted.prompts) == 1
    assert "[the answer was cut at --max-new-tokens 3]" in capsys.readouterr().out  # 3 of the scripted 8 tokens


def test_history_is_what_the_template_renders(checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = DeepseekLLMForCausalLM.from_pretrained(checkpoint).eval()
    ScriptedAnswers(model, tokenizer, " I am fine, thank you.")
    session = chat.ChatSession(model, tokenizer, system="Be kind.", output=io.StringIO())
    session.reply("Hello there")
    session.reply("你好")
    assert session.messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "I am fine, thank you."},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "I am fine, thank you."},
    ]
    rendered = tokenizer.apply_chat_template(session.messages, tokenize=False)
    answer = "I am fine, thank you."
    expected = tokenizer.decode(
        paper_format(tokenizer, [("Hello there", answer), ("你好", answer)], system="Be kind.")
    )
    assert rendered == expected
    session.reset()
    assert session.messages == [{"role": "system", "content": "Be kind."}]


def test_bad_arguments(tmp_path, capsys):
    assert main(["chat", str(tmp_path), "--prompt", "x"]) == 1
    assert "no checkpoint (config.json)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["chat", str(tmp_path), "--top-p", "0.5"])
    assert "--top-p only applies when sampling" in capsys.readouterr().err
