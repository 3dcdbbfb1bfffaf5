"""The repetition ratio (`deepseek_hf.eval.repetition`): the detector flags endless loops at every scale (tokens,
words, Chinese characters) and passes natural text, long numbered lists and code; a finished response is never
counted; the generation goes through the chat template and stops at the end-of-sentence token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepseek_hf.eval.cli import main as eval_main
from deepseek_hf.eval.repetition import (
    RepetitionRule,
    check_response,
    find_period,
    generate_responses,
    load_prompts,
    repetition_ratio,
)
from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM
from deepseek_hf.tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parents[2]

FRUITS = (
    "apples, rich in fibre; bananas for potassium; cherries in early summer; dates, very sweet; elderberries for "
    "syrup; figs, fresh or dried; grapes for wine; honeydew melons; kiwis with vitamin C; lemons for juice; mangoes "
    "from India; nectarines; oranges in winter; papayas; quinces for jam; raspberries; strawberries with cream; "
    "tangerines; watermelons on hot days; yams, roasted; zucchini, grilled"
).split("; ")
NUMBERED_LIST = "Here is a list of fruits and what they are good for:\n" + "".join(
    f"{number}. {item.capitalize()}.\n" for number, item in enumerate(FRUITS * 2, start=1)
)
STEPS = "\n".join(
    f"{number}. {step}"
    for number, step in enumerate(
        [
            "Preheat the oven to 180 degrees and grease a round cake tin.",
            "Beat the butter and sugar together until pale and fluffy.",
            "Add the eggs one at a time, mixing well after each.",
            "Fold in the flour and a pinch of salt with a metal spoon.",
            "Stir in the milk until the batter drops easily from the spoon.",
            "Pour the batter into the tin and smooth the top.",
            "Bake for 25 minutes, until a skewer comes out clean.",
            "Leave to cool in the tin for ten minutes, then turn out.",
            "Whip the cream with the vanilla until it holds soft peaks.",
            "Spread the cream over the cake and top it with berries.",
            "Cut into eight slices and serve the same day.",
            "Keep any leftovers covered in the fridge for up to two days.",
        ],
        start=1,
    )
)
CODE = (REPO / "deepseek_hf" / "utils.py").read_text(encoding="utf-8")[:4000]
PROSE = (
    "The Great Wall is a series of fortifications built across the historical northern borders of ancient "
    "Chinese states. Several walls were built from as early as the 7th century BC; later they were joined and "
    "made bigger and stronger. The best-known sections were built by the Ming dynasty. Beyond defence, the wall "
    "also served for border controls, duties on goods carried along the Silk Road and the control of migration."
)
CHINESE_PROSE = (
    "长城是中国古代的军事防御工程，东起山海关，西至嘉峪关，全长两万多千米。它由城墙、敌楼、关城和烽火台组成，"
    "历经多个朝代修建。今天，长城是世界文化遗产，每年吸引大量游客前来参观，也是中华民族的象征之一。"
)


# --- the detector ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "period"),
    [
        ([17] * 64, 1),  # one token forever
        ([5, 6, 7, 8] * 40, 4),  # a token-level cycle
        ([3, 9] + [11, 12, 13, 14, 15, 16] * 30, 6),  # after a short prefix
        (("the cat sat on the mat and " * 30).split(), 7),  # word level
        (list("I am a helpful assistant. " * 30), 26),  # the same sentence, character level
        (list("我是一个乐于助人的助手。" * 30), 12),  # Chinese characters
        (list("好" * 50), 1),
        (list(PROSE + " Sure! I can help with that. " * 20), 29),  # an answer that falls into a loop
        (list(CHINESE_PROSE + "请问还有什么可以帮您？" * 20), 11),
    ],
)
def test_flags_endless_repetition(sequence, period):
    assert find_period(sequence) == period


def test_a_loop_with_a_running_counter_still_counts():
    """Up to 10% of the tokens may differ between copies (the rule's min_match 0.9)."""
    lines = "".join(f"Step {number}: add {number} to the total and carry it over.\n" for number in range(10, 60))
    assert find_period(list(lines)) == len("Step 10: add 10 to the total and carry it over.\n")


@pytest.mark.parametrize(
    "text",
    [PROSE, CHINESE_PROSE, NUMBERED_LIST, STEPS, CODE, PROSE + CHINESE_PROSE],
    ids=["prose", "chinese-prose", "numbered-list-twice-42-items", "numbered-steps", "code", "mixed"],
)
def test_passes_normal_text_lists_and_code(text):
    assert find_period(list(text)) is None
    assert find_period(text.split()) is None


def test_short_responses_are_never_judged():
    assert find_period([1, 2] * 7) is None  # 14 tokens < min_tail 16
    assert find_period([1, 2] * 8) == 2


def test_rule_thresholds_are_checked_and_change_the_verdict():
    almost = [1, 2, 3, 4] * 10 + [9, 8, 7, 6, 5, 10, 11, 12] + [1, 2, 3, 4] * 6  # the loop: the last third
    assert find_period(almost) is None
    assert find_period(almost, RepetitionRule(tail_fraction=0.25)) == 4
    for bad in ({"tail_fraction": 0}, {"min_match": 1.5}, {"min_tail": 1}):
        with pytest.raises(ValueError):
            RepetitionRule(**bad)


def test_a_finished_response_is_never_counted():
    loop = [5, 6, 7] * 30
    assert check_response(loop, finished=True).repeated is False
    assert check_response(loop, finished=True).period is None
    unfinished = check_response(loop, finished=False)
    assert unfinished.repeated and unfinished.period == 3 and unfinished.length == 90
    varied = check_response(list(range(100, 190)), finished=False)
    assert not varied.finished and not varied.repeated
    checks = [check_response(loop, True), unfinished, varied, check_response([4, 5], True)]
    assert repetition_ratio(checks) == 0.25
    with pytest.raises(ValueError, match="no responses"):
        repetition_ratio([])


def test_token_level_loops_of_the_real_pipeline(chat_checkpoint):
    """A looping answer tokenized by a trained tokenizer: the period is one sentence's tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_checkpoint)
    unit = tokenizer("I am a helpful assistant.", add_special_tokens=False).input_ids
    ids = tokenizer(" I am a helpful assistant." * 20, add_special_tokens=False).input_ids
    assert find_period(ids) == len(tokenizer(" I am a helpful assistant.", add_special_tokens=False).input_ids)
    assert len(unit) > 1
    assert find_period(tokenizer(PROSE + " " + CHINESE_PROSE, add_special_tokens=False).input_ids) is None


# --- prompts -----------------------------------------------------------------------------------------------------


def test_the_shipped_prompts_are_english_and_chinese():
    prompts = load_prompts("demo")
    assert len(prompts) == 24
    assert all(messages[-1]["role"] == "user" and messages[-1]["content"] for _, messages in prompts)
    records = [json.loads(line) for line in load_prompts.__globals__["demo_prompts_path"]().read_text().splitlines()]
    assert {record["lang"] for record in records} == {"en", "zh"}
    assert (REPO / "deepseek_hf/assets/eval_demo/repetition/SOURCE.md").is_file()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"text": "hi"}', "exactly one of 'prompt' or 'messages'"),
        ('{"prompt": "  "}', "non-empty string"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', "role in"),
        ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}', "end with a user"),
    ],
)
def test_bad_prompt_files_name_the_line(tmp_path, line, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "fine"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        load_prompts(path)
    assert f"{path}:3" in str(error.value)


def test_missing_and_empty_prompt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_prompts(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no prompts"):
        load_prompts(tmp_path / "empty.jsonl")


# --- generation through the chat template ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_checkpoint(tmp_path_factory) -> Path:
    """A random 2-layer model with a 300-token tokenizer trained on English and Chinese text (and the chat template)."""
    root = tmp_path_factory.mktemp("repetition")
    corpus = root / "corpus.txt"
    corpus.write_text((PROSE + "\n" + CHINESE_PROSE + "\n" + STEPS + "\n") * 20, encoding="utf-8")
    tokenizer = train_tokenizer([corpus], vocab_size=300, show_progress=False)
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
    path = root / "ckpt"
    DeepseekLLMForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class Scripted:
    """Replaces the model's next-token choice per batch row: row 0 answers 3 tokens then EOS, row 1 loops over
    3 tokens, row 2 emits ever new tokens; records the prompts generate was given (its first call)."""

    def __init__(self, model, eos: int):
        self.eos, self.calls, self.prompts = eos, 0, None
        model.register_forward_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs, output):
        ids = kwargs["input_ids"]
        if self.calls == 0:
            self.prompts = (ids.clone(), kwargs["attention_mask"].clone())
        step, self.calls = self.calls, self.calls + 1
        script = [[40 + step, self.eos][step >= 3], 50 + step % 3, 60 + step]
        logits = torch.full_like(output.logits[:, -1, :], -1e4)
        for row in range(ids.shape[0]):
            logits[row, script[row % 3]] = 0.0
        output.logits[:, -1, :] = logits
        return output


def test_generation_stops_at_eos_and_renders_the_chat_template(chat_checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_checkpoint)
    model = DeepseekLLMForCausalLM.from_pretrained(chat_checkpoint).eval()
    script = Scripted(model, tokenizer.eos_token_id)
    conversations = [[{"role": "user", "content": text}] for text in ("Hi", "写一首诗。", "List fruits.")]
    (finished, looping, varied) = generate_responses(model, tokenizer, conversations, max_new_tokens=40, batch_size=3)
    assert finished == ([40, 41, 42], True)
    assert looping == ([50, 51, 52] * 13 + [50], False) and varied == (list(range(60, 100)), False)
    checks = [check_response(ids, done) for ids, done in (finished, looping, varied)]
    assert [(c.finished, c.repeated, c.period, c.length) for c in checks] == [
        (True, False, None, 3),
        (False, True, 3, 40),
        (False, False, None, 40),
    ]
    # the prompts are the paper's chat format, BOS once, left-padded to a common length
    ids, mask = script.prompts
    for row, text in enumerate(("Hi", "写一首诗。", "List fruits.")):
        rendered = tokenizer.decode(ids[row][mask[row].bool()])
        assert rendered == f"{tokenizer.bos_token}User: {text}\n\nAssistant:"
    assert mask[:, -1].all() and not mask[:, 0].all()


def test_batched_generation_equals_one_prompt_at_a_time(chat_checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_checkpoint)
    model = DeepseekLLMForCausalLM.from_pretrained(chat_checkpoint).eval()
    conversations = [
        [{"role": "user", "content": text}] for text in ("Hi", "长城在哪里？", "Bake a cake, step by step.")
    ]
    batched = generate_responses(model, tokenizer, conversations, max_new_tokens=12, batch_size=3)
    alone = generate_responses(model, tokenizer, conversations, max_new_tokens=12, batch_size=1)
    assert batched == alone


def test_cli_writes_the_report(chat_checkpoint, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"id": "a", "prompt": "Hi"}\n{"messages": [{"role": "system", "content": "Be brief."}, '
        '{"role": "user", "content": "长城在哪里？"}]}\n',
        encoding="utf-8",
    )
    output = tmp_path / "out" / "repetition.json"
    argv = ["repetition", "--model", str(chat_checkpoint), "--prompts", str(prompts), "--max-new-tokens", "40"]
    assert eval_main([*argv, "--device", "cpu", "--output", str(output)]) == 0
    report = json.loads(output.read_text(encoding="utf-8"))
    assert [entry["id"] for entry in report["responses"]] == ["a", "2"]
    assert report["num_prompts"] == 2 and report["max_new_tokens"] == 40
    assert report["rule"] == {"tail_fraction": 0.5, "min_tail": 16, "min_repeats": 2, "min_match": 0.9}
    for entry in report["responses"]:
        assert set(entry) == {"id", "prompt", "finished", "repeated", "length", "period", "response"}
        assert entry["repeated"] == (not entry["finished"] and entry["period"] is not None)
    expected = sum(entry["repeated"] for entry in report["responses"]) / 2
    assert report["repetition_ratio"] == expected
    assert f"repetition ratio {expected:.3f}" in capsys.readouterr().out
    assert [p.name for p in output.parent.iterdir()] == ["repetition.json"]  # no temporary file left


def test_cli_names_a_missing_checkpoint(tmp_path, capsys):
    assert eval_main(["repetition", "--model", str(tmp_path / "absent"), "--prompts", "demo"]) == 1
    assert "no checkpoint (config.json)" in capsys.readouterr().err
