"""The deepseek_* lm-eval tasks: prompts, every normalization checked against an independent computation, lm-eval's
own metrics where they overlap, item counts through the tasks, and lm-eval's `validate` on the task folder.

One lm-eval run (`--model hf`, a tiny checkpoint, 3 documents of every benchmark with data in ../shared/data) is shared
by the module; its logged samples hold every request and response, which the tests recompute independently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from deepseek_hf.eval import task_dir
from deepseek_hf.modeling import DeepseekLLMForCausalLM

pytestmark = pytest.mark.slow

SINGLE_TASKS = {  # task -> items in its test split, as the data's SOURCE.md says
    "deepseek_hellaswag": 1000,
    "deepseek_piqa": 1838,
    "deepseek_winogrande": 1267,
    "deepseek_race_middle": 1436,
    "deepseek_race_high": 3451,
    "deepseek_arc_easy": 2376,
    "deepseek_arc_challenge": 1172,
    "deepseek_openbookqa": 500,
    "deepseek_chid": 202,
    "deepseek_c3": 1825 + 1991,
    "deepseek_ccpm": 2720,
}
SUBJECT_TASKS = ["deepseek_mmlu_anatomy", "deepseek_cmmlu_anatomy", "deepseek_ceval_computer_network"]
ENGLISH = {"deepseek_hellaswag", "deepseek_piqa", "deepseek_winogrande", "deepseek_race_middle", "deepseek_race_high"}
ENGLISH |= {"deepseek_arc_easy", "deepseek_arc_challenge", "deepseek_openbookqa", "deepseek_mmlu_anatomy"}
LIMIT = 3


def evaluate(scorer: str, checkpoint, tasks: list[str], batch_size: int = 4) -> dict:
    """`lm_eval.simple_evaluate` on the tiny checkpoint, LIMIT documents per task, samples logged."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model=scorer,
        model_args=f"pretrained={checkpoint},dtype=float32",
        tasks=tasks,
        task_manager=TaskManager(include_path=task_dir(), metadata={"pretrained": str(checkpoint)}),
        device="cpu",
        batch_size=batch_size,
        limit=LIMIT,
        log_samples=True,
    )


@pytest.fixture(scope="module")
def run(tiny_checkpoint, eval_data):
    return evaluate("hf", tiny_checkpoint, [*SINGLE_TASKS, *SUBJECT_TASKS])


@pytest.fixture(scope="module")
def oracle(tiny_checkpoint):
    """Log-likelihood and token count of a continuation, computed by running the model on the whole text."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = DeepseekLLMForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()
    cache = {}

    def score(context: str, continuation: str) -> tuple[float, int]:
        if (context, continuation) not in cache:
            if context:
                stripped = context.rstrip()  # trailing spaces belong to the continuation (lm-eval's convention)
                continuation = context[len(stripped) :] + continuation
                ids = tokenizer(stripped + continuation).input_ids
                n_context = len(tokenizer(stripped).input_ids)
            else:  # an empty context is the BOS token alone
                ids = [tokenizer.bos_token_id] + tokenizer(continuation, add_special_tokens=False).input_ids
                n_context = 1
            with torch.no_grad():
                log_probs = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
            ll = sum(log_probs[position - 1, ids[position]].item() for position in range(n_context, len(ids)))
            cache[(context, continuation)] = (ll, len(ids) - n_context)
        return cache[(context, continuation)]

    return score


def test_headline_metrics(run):
    """Each task names the paper's metric: unconditional normalization for ARC and OpenBookQA, else length."""
    for task, config in run["configs"].items():
        expected = (
            "acc_uncond"
            if task in ("deepseek_arc_easy", "deepseek_arc_challenge", "deepseek_openbookqa")
            else "acc_tokens"
        )
        assert config["metadata"]["headline_metric"] == expected, task
        assert [metric["metric"] for metric in config["metric_list"]] == [
            "acc",
            "acc_norm",
            "acc_bytes",
            "acc_tokens",
            "acc_uncond",
            "acc_mutual_info",
        ]


def test_prompts_and_shots(run):
    samples = run["samples"]
    arc = samples["deepseek_arc_easy"][0]
    n = len(arc["doc"]["choices"])
    assert arc["arguments"][0][0] == f"Question: {arc['doc']['question']}\nAnswer:"
    assert [cont for _, cont in arc["arguments"][:n]] == [" " + choice for choice in arc["doc"]["choices"]]
    assert [ctx for ctx, _ in arc["arguments"][n : 2 * n]] == [""] * n  # lm-eval's acc_mutual_info: BOS only
    assert [ctx for ctx, _ in arc["arguments"][2 * n :]] == ["Answer:"] * n  # acc_uncond: the answer prompt

    cmmlu = samples["deepseek_cmmlu_anatomy"][0]
    context = cmmlu["arguments"][0][0]
    assert context.startswith("以下是关于解剖学的单项选择题，请直接给出正确答案的选项。\n\n")
    assert context.count("答案：") == 6 and context.endswith("\n答案：")  # 5 shots + the question
    assert [cont for _, cont in cmmlu["arguments"][:4]] == [" A", " B", " C", " D"]
    assert [ctx for ctx, _ in cmmlu["arguments"][8:]] == ["答案："] * 4

    race = samples["deepseek_race_high"][0]
    context = race["arguments"][0][0]
    assert context.count("Article: ") == 6 and race["doc"]["article"] in context
    assert context.count(race["doc"]["article"]) == 1  # the shots never hold the passage being asked about

    c3 = samples["deepseek_c3"][0]
    assert c3["arguments"][0][1] == c3["doc"]["choices"][0]  # no space before a Chinese option


@pytest.mark.parametrize("task", [*SINGLE_TASKS, *SUBJECT_TASKS])
def test_every_normalization_against_an_independent_computation(run, oracle, task):
    for sample in run["samples"][task]:
        arguments, responses = sample["arguments"], [response[0] for response in sample["resps"]]
        n = len(arguments) // 3
        scored = [oracle(context, continuation) for context, continuation in arguments]
        for (ll, _), (expected, _) in zip(responses, scored):
            assert ll == pytest.approx(expected, rel=1e-6, abs=1e-5)  # float32 sums of up to ~100 terms

        lls = np.array([ll for ll, _ in scored[:n]])
        tokens = np.array([count for _, count in scored[:n]])
        bos_only = np.array([ll for ll, _ in scored[n : 2 * n]])
        answer_prompt = np.array([ll for ll, _ in scored[2 * n :]])
        if task == "deepseek_winogrande":  # partial scoring: the options are contexts, the continuation is shared
            gold, options = sample["doc"]["gold"], sample["doc"]["context_options"]
        else:
            gold, options = sample["target"], [continuation.removeprefix(" ") for _, continuation in arguments[:n]]
        characters = np.array([len(option) for option in options])
        utf8 = np.array([len(option.encode("utf-8")) for option in options])
        expected = {
            "acc": np.argmax(lls),
            "acc_norm": np.argmax(lls / characters),
            "acc_bytes": np.argmax(lls / utf8),
            "acc_tokens": np.argmax(lls / tokens),
            "acc_uncond": np.argmax(lls - answer_prompt),
            "acc_mutual_info": np.argmax(lls - bos_only),
        }
        for metric, prediction in expected.items():
            assert sample[metric] == float(prediction == int(gold)), (task, sample["doc_id"], metric)


def test_answer_prompt_language(run):
    for task, config in run["configs"].items():
        assert config["metadata"]["answer_prompt"] == ("Answer:" if task in ENGLISH else "答案："), task


def test_metrics_equal_lm_evals_own_multiple_choice_task(run):
    """Our class delegates acc / acc_norm / acc_bytes / acc_mutual_info to lm-eval: a plain `ConfigurableTask` of
    the same YAML scores the same responses identically."""
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    for task in ("deepseek_arc_easy", "deepseek_hellaswag", "deepseek_cmmlu_anatomy", "deepseek_winogrande"):
        (path,) = Path(task_dir()).rglob(f"{task}.yaml")
        config = load_yaml(path)
        assert config.pop("class").__name__ == "PerplexityMultipleChoiceTask"
        config["metric_list"] = [
            m for m in config["metric_list"] if m["metric"] in ("acc", "acc_norm", "acc_bytes", "acc_mutual_info")
        ]
        plain = ConfigurableTask(config=config)
        for sample in run["samples"][task]:
            responses = [tuple(response[0]) for response in sample["resps"]]
            n = len(responses) // 3
            theirs = plain.process_results(sample["doc"], responses[: 2 * n])
            for metric in ("acc", "acc_norm", "acc_bytes", "acc_mutual_info"):
                assert sample[metric] == theirs[metric], (task, metric)


@pytest.mark.parametrize("task", list(SINGLE_TASKS))
def test_item_counts_through_the_tasks(eval_data, task):
    from lm_eval.tasks import TaskManager

    task_object = TaskManager(include_path=task_dir(), include_defaults=False).load([task])["tasks"][task]
    assert len(task_object.eval_docs) == SINGLE_TASKS[task]


def test_lm_eval_validate_finds_every_task_and_group(tmp_path):
    from lm_eval.tasks import TaskManager

    from deepseek_hf.eval.subjects import SUBJECTS

    manager = TaskManager(include_path=task_dir(), include_defaults=False)
    ours = sorted(name for name in manager.all_tasks if name.startswith("deepseek_"))
    expected_subjects = {f"deepseek_{b}_{s}" for b, subjects in SUBJECTS.items() for s in subjects}
    assert expected_subjects <= set(ours) and set(SINGLE_TASKS) <= set(ours)
    assert {"deepseek_mmlu", "deepseek_cmmlu", "deepseek_ceval", "deepseek_ppl"} <= set(manager.all_groups)
    result = subprocess.run(
        [sys.executable, "-m", "lm_eval", "validate", "--tasks", ",".join(ours), "--include_path", task_dir()],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All tasks found and valid" in result.stdout


def test_acc_tokens_without_a_tokenizer_is_a_clear_error(tiny_checkpoint, eval_data):
    """A model object instead of a path (Python API) and no `tokenizer` in the metadata: say how to name one."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from deepseek_hf.eval.task import MissingTokenizerError

    model = DeepseekLLMForCausalLM.from_pretrained(tiny_checkpoint)
    lm = HFLM(pretrained=model, tokenizer=AutoTokenizer.from_pretrained(tiny_checkpoint), device="cpu")
    with pytest.raises(MissingTokenizerError, match="metadata=\\{'tokenizer'"):
        lm_eval.simple_evaluate(
            model=lm, tasks=["deepseek_piqa"], task_manager=TaskManager(include_path=task_dir()), limit=1
        )
    manager = TaskManager(
        include_path=task_dir(), metadata={"tokenizer": AutoTokenizer.from_pretrained(tiny_checkpoint)}
    )
    results = lm_eval.simple_evaluate(model=lm, tasks=["deepseek_piqa"], task_manager=manager, limit=1)
    assert "acc_tokens,none" in results["results"]["deepseek_piqa"]


@pytest.fixture(scope="module")
def run_deepseek(tiny_checkpoint, eval_data):
    """The same tasks through `--model deepseek`: every task's requests mixed in one scorer call."""
    return evaluate("deepseek", tiny_checkpoint, [*SINGLE_TASKS, *SUBJECT_TASKS])


def _assert_same_scores(ours: list[dict], theirs: list[dict], task: str) -> None:
    assert [sample["doc_id"] for sample in ours] == [sample["doc_id"] for sample in theirs]
    for mine, reference in zip(ours, theirs):
        assert mine["arguments"] == reference["arguments"]
        for (ll, greedy), (ll_hf, greedy_hf) in zip(
            (response[0] for response in mine["resps"]), (response[0] for response in reference["resps"])
        ):
            assert ll == pytest.approx(ll_hf, rel=1e-6, abs=1e-4) and greedy == greedy_hf, task  # float32 sums
        for metric in ("acc", "acc_norm", "acc_bytes", "acc_tokens", "acc_uncond", "acc_mutual_info"):
            assert mine[metric] == reference[metric], (task, mine["doc_id"], metric)


@pytest.mark.parametrize("task", [*SINGLE_TASKS, *SUBJECT_TASKS])
def test_deepseek_scorer_gives_hfs_scores_with_tasks_mixed(run, run_deepseek, task):
    _assert_same_scores(run_deepseek["samples"][task], run["samples"][task], task)


def test_deepseek_scorer_gives_hfs_scores_task_by_task(run, tiny_checkpoint):
    """A letter task (5-shot prefix shared by its items) and an option-text task, each alone in the scorer."""
    for task in ("deepseek_cmmlu_anatomy", "deepseek_arc_challenge"):
        alone = evaluate("deepseek", tiny_checkpoint, [task], batch_size=2)
        _assert_same_scores(alone["samples"][task], run["samples"][task], task)
