"""Data annealed into pretraining (`anneal_sources`): no added token before the entry step, the configured share
after it (exactly, to one row per step), exact resumes on both sides of the entry step, a larger budget that moves
the entry point without repeating or skipping rows, the mixture seen per LR stage, and strict configs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler, SequentialSampler

from deepseek_hf.alignment.data import convert_dataset, resolve_data_path
from deepseek_hf.training import (
    AnnealedDataset,
    PretrainConfig,
    PretrainDataArguments,
    PretrainTrainer,
    build_model,
    build_pretraining_datasets,
    parse_anneal_sources,
    plan_anneal,
    render_conversation,
)
from deepseek_hf.training.annealing import AnnealSource, _added_counts, build_anneal_datasets
from deepseek_hf.training.schedules import schedule_phase

TINY = "num_hidden_layers=2,hidden_size=64,intermediate_size=128,num_attention_heads=4,num_key_value_heads=4"
SEQ, BATCH, STEPS = 32, 4, 10
MILESTONES = {"milestones": [0.5, 0.7], "factors": [0.316, 0.1]}  # the last stage starts at step 7 of 10
SFT_GENERAL = "package://align_demo/sft_general.jsonl"


def plan(steps, batch=BATCH, total_steps=None):
    """The parts of a `TrainingPlan` the layout reads."""
    total_steps = steps if total_steps is None else total_steps
    return SimpleNamespace(
        max_steps=steps,
        global_batch_size=batch,
        batch_size_tokens=batch * SEQ,
        total_tokens=float(total_steps * batch * SEQ),
    )


MILESTONES_ONLY = {"milestones": MILESTONES["milestones"]}
MULTI_STEP = SimpleNamespace(lr_scheduler_type="multi_step", lr_scheduler_kwargs=MILESTONES)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenized")


@pytest.fixture(scope="module")
def datasets(cache, tokenizer, corpus_slice):
    """The demo corpus slice annealed with the shipped general instruction data (share 0.5)."""
    train, _ = build_pretraining_datasets(
        corpus_slice,
        tokenizer,
        SEQ,
        cache,
        anneal_sources=[{"path": SFT_GENERAL, "format": "alpaca", "share": 0.5}],
        anneal_seed=0,
    )
    return train


def annealed(datasets, *sources, seed=0):
    """Another AnnealedDataset over the same packed corpora (sources: AnnealSource, PackedDataset pairs)."""
    sources = sources or ((datasets.sources[0], datasets.datasets[0]),)
    return AnnealedDataset(datasets.main, [s for s, _ in sources], [d for _, d in sources], seed=seed)


def row_key(input_ids) -> bytes:
    return torch.as_tensor(input_ids, dtype=torch.int64).numpy().tobytes()


@pytest.fixture(scope="module")
def row_sets(datasets):
    """The token rows of the main corpus and of the added source: disjoint, so a row's tokens name its corpus."""
    main = {row_key(datasets.main[i]["input_ids"]) for i in range(len(datasets.main))}
    added = {row_key(datasets.datasets[0][i]["input_ids"]) for i in range(len(datasets.datasets[0]))}
    assert main and added and not main & added
    return main, added


# ----------------------------------------------------------------------------------------------------------------
# The layout
# ----------------------------------------------------------------------------------------------------------------
def test_instruction_records_become_chat_format_documents():
    records, _ = convert_dataset(SFT_GENERAL, "alpaca")
    first = json.loads(resolve_data_path(SFT_GENERAL).read_text().splitlines()[0])
    expected = f"User: {first['instruction']}\n\n{first['input']}\n\nAssistant: {first['output']}"
    assert render_conversation(records[0]["messages"]) == expected
    turns = [
        {"role": r, "content": c} for r, c in [("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")]
    ]
    assert render_conversation(turns) == "User: a\n\nAssistant: b\n\nUser: c\n\nAssistant: d"


@pytest.mark.parametrize("shares", [(0.3,), (0.2, 0.1), (0.0, 0.25), (0.45, 0.05, 0.3)])
def test_interleave_gives_each_source_its_share(shares):
    """Exactly one corpus gains a row at every position; each source holds floor-exact counts (within one row)."""
    previous = [0] * len(shares)
    for n in range(1, 2000):
        counts = _added_counts(n, shares)
        growth = [b - a for a, b in zip(previous, counts)]
        assert all(g in (0, 1) for g in growth) and sum(growth) == math.floor(n * sum(shares)) - sum(previous)
        assert all(abs(c - n * s) <= len(shares) for c, s in zip(counts, shares)), (n, counts)
        previous = counts


def test_no_added_row_before_the_entry_step_and_the_share_after_it(datasets, row_sets):
    """Checked on the tokens of every row, not on indices: all main before step 7, half of each batch after."""
    datasets.lay_out(plan(STEPS), MULTI_STEP)
    (source_plan,) = datasets.source_plans
    assert (source_plan.start_step, source_plan.start_row, source_plan.start_fraction) == (7, 28, 0.7)
    assert source_plan.start_fraction_from == "the multi-step schedule's last milestone"
    main, added = row_sets
    for step in range(STEPS):
        keys = [row_key(datasets[i]["input_ids"]) for i in range(step * BATCH, (step + 1) * BATCH)]
        assert all(k in main or k in added for k in keys)
        assert sum(k in added for k in keys) == (0 if step < 7 else 2), step


def test_the_entry_step_is_where_the_lr_schedule_enters_its_last_stage(datasets):
    for steps, batch in [(10, 4), (37, 4), (1000, 8), (1172, 8)]:
        run = plan(steps, batch)
        (source_plan,) = plan_anneal(datasets.sources, run, MULTI_STEP)
        phases = [
            schedule_phase(s, s * batch * SEQ, warmup_steps=0, total_tokens=run.total_tokens, **MILESTONES_ONLY)
            for s in range(steps)
        ]
        assert phases.index(3) == source_plan.start_step, (steps, batch)


def test_share_within_sampling_error_over_a_longer_run(datasets):
    """1000 steps of 8 rows, two sources entering at 0.6 and at 0.7 (default): their shares of the rows after entry
    are exact to one row, far inside a binomial draw's error (the layout is an interleave, not a draw)."""
    small = AnnealSource(path=SFT_GENERAL, format="alpaca", share=0.1, start_fraction=0.6, name="early")
    data = annealed(datasets, (datasets.sources[0], datasets.datasets[0]), (small, datasets.datasets[0]))
    data.lay_out(plan(1000, 8), MULTI_STEP)
    late, early = (p.start_row for p in data.source_plans)
    assert (early, late) == (600 * 8, 700 * 8)
    for start, stop, expected in [
        (0, early, (1.0, 0, 0)),
        (early, late, (0.9, 0, 0.1)),
        (late, 8000, (0.4, 0.5, 0.1)),
    ]:
        counts = data.counts(stop, start)
        n = stop - start
        for count, share in zip(counts, expected):
            assert abs(count - share * n) <= 1, (start, counts)
            assert abs(count - share * n) <= 3 * math.sqrt(n * share * (1 - share)) + 1
    for step in range(700, 1000):  # each batch: its share to within one row
        main, first, second = data.counts((step + 1) * 8, step * 8)
        assert abs(first - 4) <= 1 and second in (0, 1, 2) and main + first + second == 8


def test_a_stream_reads_every_row_once_per_pass_then_recycles(datasets):
    source = datasets.datasets[0]
    data = annealed(datasets)
    data.lay_out(plan(3000, 8), MULTI_STEP)  # 900 steps x 4 added rows: almost 3 passes over the source's rows
    rows = [data.locate(i) for i in range(len(data))]
    added = [data._row(1, ordinal) for stream, ordinal in rows if stream == 1]
    assert len(added) == 3600 > 2 * len(source)
    for start in range(0, len(added) - len(source) + 1, len(source)):  # each full pass: every row exactly once
        assert sorted(added[start : start + len(source)]) == list(range(len(source)))
    assert added[: len(source)] != added[len(source) : 2 * len(source)]  # a fresh order each pass
    assert data.passes(len(data))["sft_general"] == math.ceil(3600 / len(source)) == 3


def test_main_rows_before_the_entry_do_not_depend_on_the_budget(datasets):
    short, long = annealed(datasets), annealed(datasets)
    short.lay_out(plan(10), MULTI_STEP)
    long.lay_out(plan(40), MULTI_STEP)
    for i in range(28):  # short's entry row
        assert torch.equal(short[i]["input_ids"], long[i]["input_ids"])


def test_a_larger_budget_mid_anneal_repeats_and_skips_nothing(datasets):
    """Resumed at step 8 (after the entry at 7) with twice the budget: the rows before step 8 are the old layout's,
    the new entry point (step 14) governs after it, and each stream's ordinals run 0, 1, 2, ... without a gap."""
    old = annealed(datasets)
    old.lay_out(plan(10), MULTI_STEP)
    resumed = annealed(datasets)
    resumed.lay_out(plan(20), MULTI_STEP, resume_step=8, previous=old.layout_state())
    assert [r["start"] for r in resumed.layout_state()] == [0, 28, 32, 56]
    assert [old.locate(i) for i in range(32)] == [resumed.locate(i) for i in range(32)]
    located = [resumed.locate(i) for i in range(len(resumed))]
    for stream in (0, 1):
        assert [o for s, o in located if s == stream] == list(range(sum(s == stream for s, _ in located)))
    assert all(s == 0 for s, _ in located[32:56]) and resumed.counts(80, 56) == [12, 12]
    with pytest.raises(ValueError, match="trained with 1 anneal sources, this run has 2"):
        two = annealed(datasets, *[(datasets.sources[0], datasets.datasets[0])] * 2)
        two.lay_out(plan(20), MULTI_STEP, resume_step=8, previous=old.layout_state())


def test_steps_are_consecutive_positions_for_any_number_of_processes(datasets):
    """accelerate hands micro-batch b to process b % world: optimizer step t reads positions [t*G, (t+1)*G)."""
    data = annealed(datasets)
    data.lay_out(plan(10, 8), MULTI_STEP)
    for world, per_device in [(1, 4), (2, 4), (4, 2), (2, 2)]:
        accumulation = 8 // (world * per_device)
        shards = [
            list(BatchSamplerShard(BatchSampler(SequentialSampler(data), per_device, False), world, rank))
            for rank in range(world)
        ]
        for step in range(10):
            seen = {
                i
                for rank in range(world)
                for micro in range(accumulation)
                for i in shards[rank][step * accumulation + micro]
            }
            assert seen == set(range(step * 8, (step + 1) * 8)), (world, per_device, step)


# ----------------------------------------------------------------------------------------------------------------
# Training: what the model sees, exact resumes, the mixture report
# ----------------------------------------------------------------------------------------------------------------
def make_trainer(output_dir, dataset, tokenizer, **kwargs):
    args = PretrainConfig(
        **{
            **dict(
                output_dir=str(output_dir),
                use_cpu=True,
                report_to="none",
                seed=0,
                per_device_train_batch_size=2,
                global_batch_size=BATCH,  # 2 accumulation steps
                learning_rate=1e-3,
                warmup_steps=2,
                max_tokens=STEPS * SEQ * BATCH,
                lr_scheduler_kwargs=MILESTONES,
                logging_steps=1,
                save_steps=3,
                disable_tqdm=True,
                dataloader_num_workers=0,
                plot_loss_curve=False,
            ),
            **kwargs,
        }
    )
    torch.manual_seed(0)
    model = build_model(tokenizer, preset="deepseek-llm-tiny", overrides=TINY)
    trainer = PretrainTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.seen = []  # the input_ids of every training forward pass, in order

    def record(module, args, kwargs):
        if module.training:
            trainer.seen.extend(row_key(row) for row in kwargs["input_ids"])

    model.register_forward_pre_hook(record, with_kwargs=True)
    return trainer


def logged(trainer):
    return {e["step"]: e for e in trainer.state.log_history if "loss" in e}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, datasets, tokenizer):
    """10 uninterrupted steps; checkpoints at 3, 6 (before the entry at step 7) and 9 (after it)."""
    output_dir = tmp_path_factory.mktemp("reference")
    trainer = make_trainer(output_dir, datasets, tokenizer)
    trainer.train()
    return output_dir, trainer


def test_the_model_sees_no_added_token_before_the_last_stage(reference, row_sets):
    output_dir, trainer = reference
    main, added = row_sets
    steps = [trainer.seen[s * BATCH : (s + 1) * BATCH] for s in range(STEPS)]
    assert len(trainer.seen) == STEPS * BATCH
    phases = {step: entry["lr_phase"] for step, entry in logged(trainer).items()}
    for index, rows in enumerate(steps):
        assert all(k in main or k in added for k in rows)
        assert sum(k in added for k in rows) == (2 if phases[index + 1] == 3 else 0), index
    assert [phases[s] for s in (7, 8)] == [2, 3]  # the added data enters with the LR's last stage
    mixture = json.loads((output_dir / "data_mixture.json").read_text())
    assert mixture == trainer.data_mixture
    tokens = mixture["tokens_by_stage"]
    assert tokens["stage 3 (LR x 0.1)"] == {"main": 3 * 2 * SEQ, "sft_general": 3 * 2 * SEQ}
    assert sum(t["sft_general"] for t in tokens.values()) == 6 * SEQ == SEQ * sum(k in added for k in trainer.seen)
    assert sum(sum(t.values()) for t in tokens.values()) == STEPS * BATCH * SEQ
    assert mixture["share_by_stage"]["stage 1 (peak LR)"]["sft_general"] == 0.0
    assert mixture["sources"][1]["start_step"] == 7 and mixture["passes"]["main"] == 1


@pytest.mark.parametrize("checkpoint", [6, 9], ids=["before-entry", "after-entry"])
def test_a_resume_on_either_side_of_the_entry_is_exact(reference, checkpoint, tmp_path, datasets, tokenizer):
    output_dir, uninterrupted = reference
    fresh = annealed(datasets)  # as a new process would build it
    trainer = make_trainer(tmp_path, fresh, tokenizer)
    trainer.train(resume_from_checkpoint=str(output_dir / f"checkpoint-{checkpoint}"))
    assert trainer.seen == uninterrupted.seen[checkpoint * BATCH :]  # the same rows, in the same order
    expected, got = logged(uninterrupted), logged(trainer)
    for step in range(checkpoint + 1, STEPS + 1):
        assert got[step]["loss"] == expected[step]["loss"], step
    assert trainer.data_mixture["tokens_by_stage"] == uninterrupted.data_mixture["tokens_by_stage"]


def test_stage1_checkpoint_continues_with_a_larger_budget(reference, tmp_path, datasets, tokenizer, row_sets):
    """From stage1-checkpoint-5 of the 10-step run to a 20-step budget: the added data enters at the new budget's
    last stage (step 14), and the steps before it see no added token."""
    output_dir, _ = reference
    trainer = make_trainer(tmp_path, annealed(datasets), tokenizer, max_tokens=20 * SEQ * BATCH)
    trainer.train(resume_from_checkpoint=str(output_dir / "stage1-checkpoint-5"))
    _, added = row_sets
    flags = [k in added for k in trainer.seen]
    assert len(flags) == 15 * BATCH and not any(flags[: 9 * BATCH]) and sum(flags) == 6 * 2
    assert trainer.data_mixture["sources"][1]["start_step"] == 14


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entry, error, message",
    [
        (
            {"path": SFT_GENERAL, "shares": 0.2},
            ValueError,
            "unknown anneal_sources key 'shares'; did you mean 'share'",
        ),
        ({"path": SFT_GENERAL}, ValueError, "has no 'share'"),
        ({"path": SFT_GENERAL, "share": 0.0}, ValueError, r"share must be a number in \(0, 1\), got 0.0"),
        ({"path": SFT_GENERAL, "share": 1}, ValueError, r"share must be a number in \(0, 1\), got 1"),
        ({"path": SFT_GENERAL, "share": "0.2"}, ValueError, "share must be a number"),
        (
            {"path": SFT_GENERAL, "share": 0.2, "start_fraction": 1.0},
            ValueError,
            r"start_fraction must be in \(0, 1\)",
        ),
        (
            {"path": SFT_GENERAL, "share": 0.2, "format": "csv"},
            ValueError,
            "unknown format 'csv'; one of text, alpaca",
        ),
        ({"path": "/nonexistent/x.jsonl", "share": 0.2}, FileNotFoundError, "'/nonexistent/x.jsonl' does not exist"),
        ({"path": SFT_GENERAL, "share": 0.2, "name": "main"}, ValueError, "the main corpus's"),
        ("{path: x}", ValueError, "not a JSON object"),
        ([SFT_GENERAL], ValueError, "must be a mapping with path and share"),
    ],
)
def test_bad_entries_are_clear_errors(entry, error, message):
    with pytest.raises(error, match=message):
        PretrainDataArguments(anneal_sources=[entry])


def test_shares_must_leave_the_main_corpus_a_share_and_names_are_distinct():
    with pytest.raises(ValueError, match=r"shares sum to 1: they must leave the main corpus a share \(< 1\)"):
        parse_anneal_sources([{"path": SFT_GENERAL, "share": 0.6}, {"path": SFT_GENERAL, "share": 0.4, "name": "b"}])
    with pytest.raises(ValueError, match=r"named twice: \['sft_general'\]"):
        parse_anneal_sources([{"path": SFT_GENERAL, "share": 0.1}] * 2)
    cli = parse_anneal_sources([json.dumps({"path": SFT_GENERAL, "share": 0.1, "format": "alpaca"})])
    assert cli == [AnnealSource(path=SFT_GENERAL, share=0.1, format="alpaca", name="sft_general")]


def test_a_source_that_would_never_enter_is_an_error(datasets):
    late = parse_anneal_sources([{"path": SFT_GENERAL, "share": 0.1, "start_fraction": 0.95}])
    with pytest.raises(ValueError, match="would enter at step 10 of a 10-step run .* never be trained on"):
        plan_anneal(late, plan(10), MULTI_STEP)
    cosine = SimpleNamespace(lr_scheduler_type="cosine", lr_scheduler_kwargs=None)
    (entry,) = plan_anneal(parse_anneal_sources([{"path": SFT_GENERAL, "share": 0.1}]), plan(10), cosine)
    assert entry.start_step == 9 and "paper's last 10%" in entry.start_fraction_from


def test_a_text_source_is_read_as_documents(tmp_path, tokenizer, write_jsonl, cache):
    path = write_jsonl(tmp_path / "notes.jsonl", [{"body": f"note number {i} " * 20} for i in range(20)])
    (source,) = parse_anneal_sources([{"path": str(path), "share": 0.2, "text_field": "body"}])
    (packed,) = build_anneal_datasets([source], tokenizer, SEQ, cache)
    assert source.name == "notes" and tokenizer.decode(packed[0]["input_ids"]).count("note number") >= 2
    with pytest.raises(ValueError, match="has no 'text' field"):
        build_anneal_datasets([AnnealSource(path=str(path), share=0.2)], tokenizer, SEQ, tmp_path / "other")


# ----------------------------------------------------------------------------------------------------------------
# The shipped tiny config, end to end (recipes/pretrain.py in subprocesses)
# ----------------------------------------------------------------------------------------------------------------
RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PRETRAIN_RECIPE, ANNEAL_CONFIG = RECIPES / "pretrain.py", RECIPES / "tiny" / "pretrain" / "config_anneal.yaml"


def run_anneal_recipe(output_dir, tokenizer_dir, cwd, *launcher, tokens="1.2e5", extra=()):
    command = [*launcher] if launcher else [sys.executable]
    result = subprocess.run(
        [
            *command,
            str(PRETRAIN_RECIPE),
            *("--config", str(ANNEAL_CONFIG), "--output_dir", str(output_dir)),
            *("--tokenizer_name_or_path", str(tokenizer_dir), "--max_tokens", tokens, "--disable_tqdm", "true"),
            *("--logging_steps", "1", "--save_steps", "1000", "--plot_loss_curve", "false"),
            *extra,
        ],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "true"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def step_losses(output_dir) -> dict[int, float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


@pytest.mark.slow
def test_the_tiny_anneal_config_end_to_end(tokenizer_dir, tmp_path):
    """The shipped config at 118 steps (1.2e5 tokens): no instruction token before the last LR stage (from step 106),
    30% after it, in data_mixture.json and all_results.json."""
    log = run_anneal_recipe(tmp_path / "out", tokenizer_dir, tmp_path)
    assert "sft_general: 15.0% of the rows from step 106" in log
    metrics = json.loads((tmp_path / "out" / "all_results.json").read_text())
    mixture = json.loads((tmp_path / "out" / "data_mixture.json").read_text())
    assert metrics["data_mixture"] == mixture and mixture["steps_trained"] == 118
    added = ("sft_general", "sft_math", "sft_code", "sft_dialogue_identity")
    for stage, tokens in mixture["tokens_by_stage"].items():
        if stage != "stage 3 (LR x 0.1)":
            assert all(tokens[name] == 0 for name in added), stage
    last = mixture["tokens_by_stage"]["stage 3 (LR x 0.1)"]
    rows = sum(last.values()) // 128
    assert rows == 12 * 8
    for name, share in zip(added, (0.15, 0.05, 0.05, 0.05)):
        assert abs(last[name] / 128 - share * rows) <= 2, (name, last)


@pytest.mark.slow
def test_two_processes_read_the_rows_of_one(tokenizer_dir, tmp_path):
    """30 steps, the instruction data from step 15 (start_fraction 0.5 on the command line): two DDP processes of 4
    rows each train on the rows one process of 8 does (the same loss at every step, the same mixture)."""
    source = {
        "path": "package://align_demo/sft_general.jsonl",
        "format": "alpaca",
        "share": 0.3,
        "start_fraction": 0.5,
    }
    extra = ("--anneal_sources", json.dumps(source))
    run_anneal_recipe(tmp_path / "one", tokenizer_dir, tmp_path, tokens="30720", extra=extra)
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2")
    launcher += ("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    extra += ("--per_device_train_batch_size", "4")
    run_anneal_recipe(tmp_path / "two", tokenizer_dir, tmp_path, *launcher, tokens="30720", extra=extra)
    one, two = (json.loads((tmp_path / run / "data_mixture.json").read_text()) for run in ("one", "two"))
    assert one["tokens_by_stage"] == two["tokens_by_stage"] and one["sources"][1]["start_step"] == 15
    assert one["tokens_by_stage"]["stage 3 (LR x 0.1)"]["sft_general"] > 0
    one, two = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 31))
    assert all(two[s] == pytest.approx(one[s], abs=1e-4) for s in one), (one, two)
