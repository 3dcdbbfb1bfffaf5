"""The repetition ratio of a chat model (arXiv 2401.02954, section 4, Table 12): the share of responses that never
end and repeat endlessly under greedy decoding.

The paper measures it on 3868 English and Chinese prompts at temperature 0 and reports it after each SFT stage
(7B: 0.020 after stage 1, 0.014 after stage 2), since long math and code fine-tuning makes a small model loop. It
gives no detector; ours is below (`find_period`), with its rule and thresholds in `RepetitionRule`.

Each prompt goes through the chat template (`apply_chat_template(..., add_generation_prompt=True)`), is answered by
`generate` greedily up to `max_new_tokens`, and the response is

- *finished* when it emits the end-of-sentence token within the limit: it is never counted, whatever it contains;
- *repeated* when it is unfinished and its tail is a loop (`find_period` finds a period);

and the repetition ratio is (unfinished and repeated) / prompts. An unfinished response that does not loop (a long
but varied answer) is reported as unfinished, not as a repetition.

    deepseek-hf eval repetition --model outputs/demo/sft-stage1 --prompts demo --max-new-tokens 256

`--prompts demo` is the shipped sample (`deepseek_hf/assets/eval_demo/repetition/prompts.jsonl`, 16 English + 8
Chinese prompts, its SOURCE.md names the origin); any JSONL file with one `{"prompt": "..."}` or
`{"messages": [{"role": ..., "content": ...}, ...]}` object a line (an optional `"id"`) works too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..utils import write_json_atomic

logger = logging.getLogger(__name__)

DEMO_PROMPTS = "demo"
ROLES = ("system", "user", "assistant")


@dataclasses.dataclass(frozen=True)
class RepetitionRule:
    """When an unfinished response counts as an endless repetition (the thresholds of `find_period`).

    The rule: take the last `tail_fraction` of the response (at least `min_tail` tokens; a shorter response is never
    judged a loop). The response repeats with period `p` when at least `min_match` of the tail's tokens equal the
    token `p` positions earlier, for some `1 <= p <= len(tail) / min_repeats`. So the tail is (almost) `min_repeats`
    copies of one block and the copy before it continues the loop: with the defaults, the last half of the answer is
    made of at least two copies of a block, 90% of its tokens exact, and one more copy precedes it.

    Why this shape: greedy decoding loops exactly (the same block, token for token), at any scale of unit (one token,
    a word, a sentence, a line of code). Natural text, long numbered lists and code do not: list items and code
    lines share their scaffolding (numbers, indentation, punctuation) but not their words, which keeps the share of
    tokens equal to those one period back far below 90% (see tests/alignment/test_repetition.py). Up to 10% of the
    tokens may differ, so a loop with a running counter ("step 1 ... step 2 ...") in a long block still counts.
    """

    tail_fraction: float = 0.5
    min_tail: int = 16
    min_repeats: int = 2
    min_match: float = 0.9

    def __post_init__(self):
        if not 0 < self.tail_fraction <= 1:
            raise ValueError(f"tail_fraction must be in (0, 1], got {self.tail_fraction}")
        if self.min_tail < 2 or self.min_repeats < 1:
            raise ValueError(f"min_tail must be >= 2 and min_repeats >= 1, got {self.min_tail}, {self.min_repeats}")
        if not 0 < self.min_match <= 1:
            raise ValueError(f"min_match must be in (0, 1], got {self.min_match}")


DEFAULT_RULE = RepetitionRule()


def find_period(sequence: Sequence[Any], rule: RepetitionRule = DEFAULT_RULE) -> int | None:
    """The smallest period `p` that `rule` calls an endless loop in `sequence`, or None.

    `sequence` is anything comparable item by item: token ids (what the repetition ratio uses), characters of a
    text, words. The period is in those items.

    >>> find_period([5, 6, 7] * 20)
    3
    >>> find_period(list("我很好。" * 20))
    4
    >>> find_period("The sun rose over the hills, and the village woke slowly to the smell of bread.") is None
    True
    """
    n = len(sequence)
    tail = max(rule.min_tail, math.ceil(rule.tail_fraction * n))
    if n < rule.min_tail or tail > n:
        return None
    start = n - tail
    for period in range(1, tail // rule.min_repeats + 1):
        first = max(start, period)  # positions compared with the item `period` earlier
        compared = n - first
        if compared < rule.min_tail // 2:
            break
        matches = sum(1 for index in range(first, n) if sequence[index] == sequence[index - period])
        if matches >= rule.min_match * compared:
            return period
    return None


@dataclasses.dataclass
class ResponseCheck:
    """The verdict on one response (what the report lists per prompt)."""

    finished: bool  # ended with the end-of-sentence token within the limit
    repeated: bool  # unfinished and looping (never True for a finished response)
    length: int  # generated tokens, the end-of-sentence token excluded
    period: int | None  # the loop's period in tokens (None: no loop, or finished)


def check_response(token_ids: Sequence[int], finished: bool, rule: RepetitionRule = DEFAULT_RULE) -> ResponseCheck:
    """Judge one generated response: a finished one is never a repetition; an unfinished one is if it loops."""
    period = None if finished else find_period(list(token_ids), rule)
    return ResponseCheck(finished=finished, repeated=period is not None, length=len(token_ids), period=period)


def repetition_ratio(checks: Sequence[ResponseCheck]) -> float:
    """Share of responses that never finish and repeat (the paper's repetition ratio)."""
    if not checks:
        raise ValueError("no responses to compute a repetition ratio of")
    return sum(check.repeated and not check.finished for check in checks) / len(checks)


# ----------------------------------------------------------------------------------------------------------------
# prompts
# ----------------------------------------------------------------------------------------------------------------


def demo_prompts_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("deepseek_hf").joinpath("assets/eval_demo/repetition/prompts.jsonl")))


def load_prompts(path: str | os.PathLike) -> list[tuple[str, list[dict[str, str]]]]:
    """(id, chat messages) for each line of a JSONL prompts file (`demo`: the shipped sample).

    A line holds `{"prompt": "text"}` (one user turn) or `{"messages": [{"role", "content"}, ...]}` (a conversation
    to continue, ending with a user turn), with an optional `"id"` (default: the line number). Blank lines are
    skipped; anything else that is not such an object is an error naming the file and line.
    """
    path = demo_prompts_path() if str(path) == DEMO_PROMPTS else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--prompts {path}: no such file (a JSONL file of prompts, or 'demo')")
    prompts = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            prompts.append((str(record.get("id", number)), _messages(record, where)))
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


def _messages(record: dict, where: str) -> list[dict[str, str]]:
    if ("prompt" in record) == ("messages" in record):
        raise ValueError(f"{where}: expected exactly one of 'prompt' or 'messages', got keys {sorted(record)}")
    if "prompt" in record:
        if not isinstance(record["prompt"], str) or not record["prompt"].strip():
            raise ValueError(f"{where}: 'prompt' must be a non-empty string")
        return [{"role": "user", "content": record["prompt"]}]
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list")
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise ValueError(f"{where}: each message needs a role in {ROLES} and a string content, got {message!r}")
    if messages[-1]["role"] != "user":
        raise ValueError(f"{where}: the conversation must end with a user message (the model answers it)")
    return [{"role": message["role"], "content": message["content"]} for message in messages]


# ----------------------------------------------------------------------------------------------------------------
# generation and the report
# ----------------------------------------------------------------------------------------------------------------


def generate_responses(
    model, tokenizer, conversations: Sequence[list[dict[str, str]]], *, max_new_tokens: int, batch_size: int = 8
) -> list[tuple[list[int], bool]]:
    """Greedy answers through the chat template: (token ids before the first end-of-sentence, finished?) each.

    Batches are left-padded (the prompt ends where generation starts). The generation settings are given in full,
    so a checkpoint's `generation_config` (sampling, a repetition penalty) cannot change the measurement.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    from ..utils import batched

    if tokenizer.chat_template is None:
        raise ValueError("the tokenizer has no chat template (tokenizer_config.json 'chat_template')")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    config = GenerationConfig(
        do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad, bos_token_id=None
    )
    device = next(model.parameters()).device
    results: list[tuple[list[int], bool]] = []
    batches = list(batched(conversations, batch_size))
    for batch in tqdm(batches, desc="generating", unit="batch", disable=len(batches) < 2):
        texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in batch]
        # the template writes BOS itself
        inputs = tokenizer(texts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
        inputs = {key: value.to(device) for key, value in inputs.items()}
        with torch.no_grad():
            output = model.generate(**inputs, generation_config=config)
        for row in output[:, inputs["input_ids"].shape[1] :].tolist():
            finished = eos in row
            results.append((row[: row.index(eos)] if finished else row, finished))
    return results


def evaluate_repetition(
    model_path: str | os.PathLike,
    prompts: str | os.PathLike = DEMO_PROMPTS,
    *,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str = "auto",
    rule: RepetitionRule = DEFAULT_RULE,
    output: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Load a checkpoint, answer every prompt greedily and return (and write to `output`, atomically) the report:
    the repetition ratio, the unfinished share, the rule and, per prompt, finished / repeated / length / period and
    the response text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import deepseek_hf  # noqa: F401  (registers the Auto classes)

    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, {batch_size}")
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model {path}: no checkpoint (config.json) there")
    items = load_prompts(prompts)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(dtype)).to(device).eval()
    logger.info("Answering %d prompts greedily, up to %d new tokens each", len(items), max_new_tokens)
    generated = generate_responses(
        model, tokenizer, [messages for _, messages in items], max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    checks = [check_response(ids, finished, rule) for ids, finished in generated]
    report = {
        "model": str(path),
        "prompts": str(prompts),
        "max_new_tokens": max_new_tokens,
        "rule": dataclasses.asdict(rule),
        "num_prompts": len(checks),
        "num_unfinished": sum(not check.finished for check in checks),
        "num_repeated": sum(check.repeated for check in checks),
        "repetition_ratio": repetition_ratio(checks),
        "unfinished_ratio": sum(not check.finished for check in checks) / len(checks),
        "responses": [
            {
                "id": prompt_id,
                "prompt": messages[-1]["content"],
                **dataclasses.asdict(check),
                "response": tokenizer.decode(ids, skip_special_tokens=True),
            }
            for (prompt_id, messages), check, (ids, _) in zip(items, checks, generated)
        ],
    }
    if output is not None:
        write_json_atomic(output, report)
    return report


def _dtype(name: str):
    import torch

    if name == "auto":
        return "auto"
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"--dtype {name!r}: expected auto, float32, bfloat16 or float16")
    return getattr(torch, name)


def summary(report: dict[str, Any]) -> str:
    """The lines `deepseek-hf eval repetition` prints."""
    lines = [
        f"{entry['id']}: {'finished' if entry['finished'] else 'UNFINISHED'}, {entry['length']} tokens"
        + (f", repeats with period {entry['period']}" if entry["repeated"] else "")
        for entry in report["responses"]
    ]
    lines.append(
        f"repetition ratio {report['repetition_ratio']:.3f} ({report['num_repeated']} of {report['num_prompts']} "
        f"responses never end and repeat; {report['num_unfinished']} unfinished within {report['max_new_tokens']} "
        "tokens)"
    )
    return "\n".join(lines)
