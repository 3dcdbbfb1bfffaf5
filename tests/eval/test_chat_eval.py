"""Chat-format evaluation (`--apply-chat-template`): every request lm-eval builds is the tokenizer's own rendering of
the conversation, 0-shot and few-shot as turns; a system prompt changes nothing but its own text; the faster scorer
gives `hf`'s log-likelihoods on these contexts; `deepseek-hf eval compare` reads the settings back from results.json.

The oracle throughout is `tokenizer.apply_chat_template` on conversations written out here from the task's prompt
format (ARC: "Question: ...\\nAnswer:", option texts), never the task's own context building.
"""

from __future__ import annotations

import json
import shutil

import pytest
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from transformers import AutoModelForCausalLM, AutoTokenizer

from deepseek_hf.eval import task_dir
from deepseek_hf.eval.chat import answer_delimiter
from deepseek_hf.eval.cli import main, resolve_data_dir
from deepseek_hf.eval.report import run_settings
from deepseek_hf.eval.scorer import DeepseekLM

SYSTEM = "You are a careful assistant. Answer with the correct option."
TASKS = "deepseek_arc_easy,deepseek_piqa"


def question(doc: dict) -> str:
    return f"Question: {doc['question']}\nAnswer:"  # deepseek_arc_easy's doc_to_text


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def system(text: str | None) -> list[dict]:
    return [{"role": "system", "content": text}] if text else []


# ----------------------------------------------------------------------------------------------------------------
# the template's answer delimiter
# ----------------------------------------------------------------------------------------------------------------
def test_answer_delimiter_is_read_off_the_template(tokenizer):
    def apply(template):
        def chat_template(history, add_generation_prompt=True):  # lm-eval's LM.apply_chat_template, as HFLM calls it
            return tokenizer.apply_chat_template(
                history,
                chat_template=template,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
            )

        return chat_template

    assert answer_delimiter(apply(tokenizer.chat_template)) == " "  # DeepSeek: "Assistant:" then " " + answer
    newline = (
        "{% for m in messages %}<{{ m['role'] }}>\n{{ m['content'] }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>\n{% endif %}"
    )
    assert answer_delimiter(apply(newline)) == ""  # a prompt ending in a newline: lm-eval's bare option


# ----------------------------------------------------------------------------------------------------------------
# the contexts lm-eval builds (its own construction, called directly), 0-shot and 2-shot, and the scorer on them
# ----------------------------------------------------------------------------------------------------------------
FEWSHOT_TASK = """\
include: {arc}
task: chat_test_arc_2shot
num_fewshot: 2
fewshot_split: test
fewshot_config: {{sampler: first_n}}
"""
SHOTS = {"deepseek_arc_easy": 0, "chat_test_arc_2shot": 2}


@pytest.fixture(scope="module")
def hf_lm(tiny_checkpoint, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype="float32").eval()
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, tokenizer):
    """deepseek_arc_easy as shipped (0-shot) and with 2 shots (the first test documents but the one asked about),
    on the shipped sample."""
    folder = tmp_path_factory.mktemp("fewshot_task")
    arc = f"{task_dir()}/arc/deepseek_arc_easy.yaml"
    (folder / "chat_test_arc_2shot.yaml").write_text(FEWSHOT_TASK.format(arc=arc), encoding="utf-8")
    manager = TaskManager(
        include_path=[task_dir(), str(folder)], include_defaults=False, metadata={"tokenizer": tokenizer}
    )
    with pytest.MonkeyPatch.context() as patch:  # the loader reads the data while the task is built
        patch.setenv("DEEPSEEK_HF_EVAL_DATA", resolve_data_dir("demo"))
        return manager.load(list(SHOTS))["tasks"]


def build(task, lm, *, multiturn: bool, system_text: str | None) -> dict[int, list]:
    """doc_id -> its requests, as lm-eval's evaluator builds them for a chat-format run."""
    task.build_all_requests(
        limit=3,
        apply_chat_template=True,
        fewshot_as_multiturn=multiturn,
        system_instruction=system_text,
        chat_template=lm.apply_chat_template,
        tokenizer_name=lm.tokenizer_name,
    )
    by_doc: dict[int, list] = {}
    for instance in task.instances:
        by_doc.setdefault(instance.doc_id, []).append(instance.arguments)
    assert sorted(by_doc) == [0, 1, 2]
    return by_doc


def gold(doc: dict) -> str:
    return doc["choices"][doc["gold"]]


def conversation(task, doc: dict, multiturn: bool, system_text: str | None) -> list[dict]:
    """The conversation a chat run should show, written out from the prompt format."""
    shots = [other for other in task.test_docs() if other != doc][: SHOTS[task.config.task]]  # first_n
    if multiturn:
        turns = [message for shot in shots for message in (user(question(shot)), assistant(gold(shot)))]
        return [*system(system_text), *turns, user(question(doc))]
    text = "".join(f"{question(shot)} {gold(shot)}\n\n" for shot in shots)  # lm-eval's plain few-shot text
    return [*system(system_text), user(text + question(doc))]


def check_requests(tokenizer, arguments: list, messages: list[dict], options: list[str], system_text: str | None):
    """Conditional requests: the rendered conversation, answered by each option; lm-eval's BOS-only ones; ours after
    the answer prompt as the only user turn."""
    n = len(options)
    assert len(arguments) == 3 * n
    for (context, continuation), option in zip(arguments[:n], options):
        assert context == render(tokenizer, messages, generation_prompt=True)
        assert context + continuation + tokenizer.eos_token == render(tokenizer, [*messages, assistant(option)])
    assert [tuple(pair) for pair in arguments[n : 2 * n]] == [("", f" {option}") for option in options]
    unconditional = render(tokenizer, [*system(system_text), user("Answer:")], generation_prompt=True)
    assert [tuple(pair) for pair in arguments[2 * n :]] == [(unconditional, f" {option}") for option in options]


@pytest.mark.parametrize("system_text", [None, SYSTEM])
@pytest.mark.parametrize(
    "name, multiturn", [("deepseek_arc_easy", False), ("chat_test_arc_2shot", True), ("chat_test_arc_2shot", False)]
)
def test_chat_contexts_are_the_templates_rendering(tasks, hf_lm, tokenizer, name, multiturn, system_text):
    task = tasks[name]
    documents = list(task.test_docs())
    for doc_id, arguments in build(task, hf_lm, multiturn=multiturn, system_text=system_text).items():
        doc = documents[doc_id]
        messages = conversation(task, doc, multiturn, system_text)
        check_requests(tokenizer, arguments, messages, doc["choices"], system_text)


def assert_differ_by_the_system_text(bos: str, without: list, with_system: list) -> None:
    assert len(without) == len(with_system)
    for (context, continuation), (context_s, continuation_s) in zip(without, with_system):
        assert continuation_s == continuation
        if context == "":  # lm-eval's acc_mutual_info context (BOS alone) has no frame to put a system in
            assert context_s == ""
            continue
        assert context.startswith(bos)
        assert context_s == bos + SYSTEM + "\n\n" + context[len(bos) :]


@pytest.mark.parametrize("name, multiturn", [("deepseek_arc_easy", False), ("chat_test_arc_2shot", True)])
def test_system_prompt_changes_only_the_system_text(tasks, hf_lm, tokenizer, name, multiturn):
    without = build(tasks[name], hf_lm, multiturn=multiturn, system_text=None)
    with_system = build(tasks[name], hf_lm, multiturn=multiturn, system_text=SYSTEM)
    for doc_id in without:
        assert_differ_by_the_system_text(tokenizer.bos_token, without[doc_id], with_system[doc_id])


def test_fast_scorer_matches_hf_on_chat_contexts(tasks, hf_lm, tokenizer):
    task = tasks["chat_test_arc_2shot"]
    build(task, hf_lm, multiturn=True, system_text=SYSTEM)
    instances = list(task.instances)
    build(task, hf_lm, multiturn=False, system_text=None)
    instances += task.instances
    ours = DeepseekLM(pretrained=hf_lm.model, tokenizer=tokenizer, batch_size=4, device="cpu")
    expected, actual = hf_lm.loglikelihood(instances), ours.loglikelihood(instances)
    assert len(actual) == len(expected) == len(instances)
    for index, ((ll_hf, greedy_hf), (ll_ours, greedy_ours)) in enumerate(zip(expected, actual)):
        assert ll_ours == pytest.approx(ll_hf, abs=1e-4), f"request {index}"
        assert greedy_ours == greedy_hf, f"request {index}"
    assert ours.work["prefix_clusters"] > 0  # the system prompt and shots were run once per cluster, not per item


def test_chat_run_needs_a_chat_template(tiny_checkpoint, tmp_path, capsys):
    plain = tmp_path / "no_template"
    shutil.copytree(tiny_checkpoint, plain)
    (plain / "chat_template.jinja").unlink()
    assert AutoTokenizer.from_pretrained(plain).chat_template is None
    args = ["run", str(plain), "--tasks", "deepseek_arc_easy", "--data", "demo", "--device", "cpu"]
    assert main([*args, "--fewshot-as-multiturn", "--output-dir", str(tmp_path / "out")]) == 1
    assert "--fewshot-as-multiturn needs --apply-chat-template" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as patch:  # `run --data demo` sets DEEPSEEK_HF_EVAL_DATA: restore it after
        patch.delenv("DEEPSEEK_HF_EVAL_DATA", raising=False)
        assert main([*args, "--apply-chat-template", "--output-dir", str(tmp_path / "out")]) == 1
    assert "has no chat template" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------------------
# real runs of `deepseek-hf eval run` (base, chat, chat + system prompt) and `deepseek-hf eval compare` on them
# ----------------------------------------------------------------------------------------------------------------
RUNS = ["base", "chat", "chat-system"]


@pytest.fixture(scope="module")
def runs(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("chat_runs")
    common = [str(tiny_checkpoint), "--tasks", TASKS, "--data", "demo", "--limit", "2", "--device", "cpu"]
    extra = {
        "base": [],
        "chat": ["--apply-chat-template"],
        "chat-system": ["--apply-chat-template", "--system-instruction", SYSTEM, "--scorer", "hf"],  # both scorers
    }
    with pytest.MonkeyPatch.context() as patch:  # `run --data demo` sets DEEPSEEK_HF_EVAL_DATA: restore it after
        patch.delenv("DEEPSEEK_HF_EVAL_DATA", raising=False)
        for name in RUNS:
            assert main(["run", *common, *extra[name], "--log-samples", "--output-dir", str(root / name)]) == 0
    return root


def samples(run_dir, task: str = "deepseek_arc_easy") -> list[dict]:
    return [json.loads(line) for line in (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


def results_of(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_real_runs_send_the_rendered_conversations(runs, tokenizer):
    base = samples(runs / "base")[0]
    doc, n = base["doc"], len(base["doc"]["choices"])
    assert base["arguments"][0] == [question(doc), f" {doc['choices'][0]}"]  # a base run keeps the plain prompts
    assert base["arguments"][2 * n] == ["Answer:", f" {doc['choices'][0]}"]
    for run, system_text in (("chat", None), ("chat-system", SYSTEM)):
        documents = samples(runs / run)
        assert len(documents) == 2
        for sample in documents:
            messages = [*system(system_text), user(question(sample["doc"]))]
            check_requests(tokenizer, sample["arguments"], messages, sample["doc"]["choices"], system_text)
    for task in TASKS.split(","):
        for plain, prompted in zip(samples(runs / "chat", task), samples(runs / "chat-system", task), strict=True):
            assert plain["doc"] == prompted["doc"]
            assert_differ_by_the_system_text(tokenizer.bos_token, plain["arguments"], prompted["arguments"])


@pytest.mark.slow
def test_results_record_the_settings(runs, tokenizer):
    settings = {name: run_settings(results_of(runs / name)) for name in RUNS}
    assert settings["base"]["chat_template"] is False and settings["base"]["system_instruction"] is None
    assert settings["chat"]["chat_template"] is True and settings["chat"]["system_instruction"] is None
    assert settings["chat-system"]["system_instruction"] == SYSTEM
    assert results_of(runs / "chat")["chat_template"] == tokenizer.chat_template  # lm-eval's key, as its files have


@pytest.mark.slow
def test_compare_table_of_real_runs(runs, capsys):
    assert main(["compare", *(str(runs / name) for name in RUNS)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| benchmark | paper's metric | base | chat | chat+system | DeepSeek 7B Base |")
    for benchmark, task, metric in (
        ("ARC-Easy", "deepseek_arc_easy", "acc_uncond"),
        ("PIQA", "deepseek_piqa", "acc_tokens"),
    ):
        scores = [100 * results_of(runs / name)["results"][task][f"{metric},none"] for name in RUNS]
        row = next(line for line in lines if line.startswith(f"| {benchmark} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:5] == [metric, *(f"{score:.1f}" for score in scores)]
    arc = next(line for line in lines if line.startswith("| ARC-Easy |"))
    assert arc.endswith("| 67.9 | 71.0 | 76.9 | 81.6 |")  # DeepSeek 7B Base / Chat, 67B Base / Chat
    settings = {line.split("|")[1].strip(): line for line in lines if line.startswith(("| base ", "| chat"))}
    assert "| no | – | 0-shot | 4 |" in settings["base"]
    assert "| yes (" in settings["chat"] and "| – | 0-shot | 4 |" in settings["chat"]
    assert f"| {SYSTEM!r} | 0-shot | 4 |" in settings["chat+system"]

    assert main(["compare", str(runs / "chat"), str(runs / "base"), "--labels", "A,B"]) == 0
    assert capsys.readouterr().out.startswith("| benchmark | paper's metric | A | B |")
    assert main(["compare", str(runs / "chat"), "--labels", "A,B"]) == 1
    assert "--labels names 2 columns for 1 runs" in capsys.readouterr().err
    assert main(["compare", str(runs / "nowhere")]) == 1
    assert "no results.json" in capsys.readouterr().err
