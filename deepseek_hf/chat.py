"""`deepseek-hf chat`: talk to a chat checkpoint in the terminal, answers streamed as they are generated.

    deepseek-hf chat outputs/demo/dpo                              # interactive: /reset clears, /exit or Ctrl-D ends
    deepseek-hf chat outputs/demo/dpo --prompt "Who are you?"      # one answer, then exit
    deepseek-hf chat CKPT --prompt "Hi" --prompt "And in Chinese?"  # successive turns of one conversation
    deepseek-hf chat CKPT --system "Answer briefly." --temperature 0.7 --top-p 0.95

Every turn renders the whole conversation with the tokenizer's chat template (`apply_chat_template(...,
add_generation_prompt=True)`: DeepSeek LLM Chat's `User: ...\\n\\nAssistant: ...<｜end▁of▁sentence｜>` format) and
calls `generate` with a `TextStreamer`, so what the model sees is exactly what the template makes of the history,
as in training; the answer joins the history as the template's assistant content (stripped of the space the model
writes after `Assistant:`). Decoding is greedy unless `--temperature` > 0; an answer cut by `--max-new-tokens` is
said so and kept in the history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from .utils import ArgumentParser, bounded_number

COMMANDS_HELP = "/reset clears the history, /exit (or Ctrl-D) ends"


def _streamer(tokenizer, file: TextIO):
    """`transformers.TextStreamer` (it prints whole words as they complete) writing to `file` instead of stdout,
    without the space the model writes first (after `Assistant:`)."""
    from transformers import TextStreamer

    class FileStreamer(TextStreamer):
        started = False

        def on_finalized_text(self, text: str, stream_end: bool = False):
            if not self.started:
                text = text.lstrip()
                self.started = bool(text)
            file.write(text + ("\n" if stream_end else ""))
            file.flush()

    return FileStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


class ChatSession:
    """A conversation with a model: the message history, rendered by the chat template at every turn."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        system: str | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        output: TextIO | None = None,
    ):
        if tokenizer.chat_template is None:
            raise ValueError("the tokenizer has no chat template (tokenizer_config.json 'chat_template')")
        self.model, self.tokenizer, self.system = model, tokenizer, system
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.output = output
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def prompt_ids(self):
        """The token ids of the history plus the generation prompt (`Assistant:`), as `generate` receives them."""
        return self.tokenizer.apply_chat_template(
            self.messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )

    def reply(self, text: str) -> str:
        """Add a user turn, stream the answer to `output`, add it to the history and return it."""
        import torch
        from transformers import GenerationConfig

        output = self.output or sys.stdout
        self.messages.append({"role": "user", "content": text})
        inputs = {key: value.to(self.model.device) for key, value in self.prompt_ids().items()}
        sampling = self.temperature > 0
        eos = self.tokenizer.eos_token_id
        config = GenerationConfig(  # in full, so the checkpoint's generation_config cannot change the decoding
            max_new_tokens=self.max_new_tokens,
            do_sample=sampling,
            temperature=self.temperature if sampling else None,
            top_p=self.top_p if sampling else None,
            top_k=None,
            eos_token_id=eos,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos,
        )
        with torch.no_grad():
            generated = self.model.generate(
                **inputs, generation_config=config, streamer=_streamer(self.tokenizer, output)
            )
        new = generated[0, inputs["input_ids"].shape[1] :].tolist()
        finished = eos in new
        answer = self.tokenizer.decode(new[: new.index(eos)] if finished else new, skip_special_tokens=True).strip()
        if not finished:
            output.write(f"[the answer was cut at --max-new-tokens {self.max_new_tokens}]\n")
        self.messages.append({"role": "assistant", "content": answer})
        return answer


def interactive(session: ChatSession, lines: TextIO, output: TextIO) -> int:
    """Read user turns from `lines` until `/exit` or end of input; `/reset` starts a new conversation."""
    output.write(f"Chat ({COMMANDS_HELP}).\n")
    while True:
        output.write("User: ")
        output.flush()
        line = _read_line(lines)
        if not line:  # end of input (Ctrl-D)
            output.write("\n")
            return 0
        text = line.strip()
        if text == "/exit":
            return 0
        if text == "/reset":
            session.reset()
            output.write("[history cleared]\n")
            continue
        if not text:
            continue
        output.write("Assistant: ")
        session.reply(text)


def _read_line(lines: TextIO) -> str:
    """The next line with its newline ("" at the end of input); `input()` on a terminal, for line editing."""
    if lines is sys.stdin and lines.isatty():
        try:
            return input() + "\n"
        except EOFError:
            return ""
    return lines.readline()


def load(checkpoint: str, device: str | None = None):
    """Model (eval mode, on `device`) and tokenizer of a checkpoint folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import deepseek_hf  # noqa: F401  (registers the Auto classes)

    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no checkpoint (config.json) at {path}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if device == "cpu" else "auto"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return model, tokenizer


def build_parser(prog: str = "deepseek-hf chat") -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint folder of a chat model (with its tokenizer and chat template)")
    parser.add_argument(
        "--prompt", action="append", help="answer this and exit (repeat: successive turns of one conversation)"
    )
    parser.add_argument("--system", help="a system message that opens the conversation (kept by /reset)")
    parser.add_argument(
        "--max-new-tokens",
        type=bounded_number(int, lambda n: n >= 1, ">= 1"),
        default=512,
        help="per answer (default 512)",
    )
    parser.add_argument(
        "--temperature",
        type=bounded_number(float, lambda t: t >= 0, ">= 0 (0 = greedy)"),
        default=0.0,
        help="sampling temperature; 0 (the default) decodes greedily",
    )
    parser.add_argument(
        "--top-p", type=bounded_number(float, lambda p: 0 < p <= 1, "in (0, 1]"), default=1.0, help="nucleus sampling"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (for sampling)")
    parser.add_argument("--device", help="cuda, cpu ... (default: cuda if available, else cpu)")
    return parser


def main(argv: list[str] | None = None, prog: str = "deepseek-hf chat") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.temperature == 0 and args.top_p != 1.0:
        parser.error("--top-p only applies when sampling: add --temperature > 0 (0 means greedy)")
    import torch

    model, tokenizer = load(args.checkpoint, args.device)
    torch.manual_seed(args.seed)
    session = ChatSession(
        model,
        tokenizer,
        system=args.system,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        output=sys.stdout,
    )
    if args.prompt:
        for text in args.prompt:
            session.reply(text)
        return 0
    return interactive(session, sys.stdin, sys.stdout)
