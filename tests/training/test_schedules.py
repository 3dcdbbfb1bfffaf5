"""The multi-step LR schedule of DeepSeek LLM (section 2.3): exact values at every boundary, milestones in tokens.

Anchored like OLMo-core's `scheduler_test.py`: exact LR at step 0, at the end of warm-up, at each milestone +-1
step and at the last step, through a real optimizer, plus the token-based milestones under a batch-size change.
"""

import math
import pickle

import pytest
import torch

from deepseek_hf.training.schedules import (
    TokenBasedLR,
    cosine_lr_factor,
    get_token_scheduler,
    multi_step_lr_factor,
    schedule_phase,
)

PEAK = 4.2e-4


def make_optimizer(lr=PEAK):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr, betas=(0.9, 0.95), weight_decay=0.1)


def run(scheduler, optimizer, steps):
    """The LR used by each of `steps` optimizer steps (read before the step, as the Trainer logs it)."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        assert scheduler.get_last_lr()[0] == optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
    return lrs


def test_paper_schedule_exact_values():
    """2000 warm-up steps, then x0.316 from 80% of the tokens, x0.1 from 90%: 10000 steps of 4096 x 2304 tokens."""
    steps, batch = 10_000, 4096 * 2304
    optimizer = make_optimizer()
    scheduler = get_token_scheduler(
        "multi_step", optimizer, warmup_steps=2000, total_tokens=steps * batch, tokens_per_step=batch
    )
    lrs = run(scheduler, optimizer, steps)
    assert lrs[0] == 0.0
    assert lrs[1] == PEAK * 1 / 2000
    assert lrs[1999] == PEAK * 1999 / 2000
    assert lrs[2000] == PEAK  # end of warm-up
    assert lrs[7999] == PEAK  # the 8000th step: 79.99% of the tokens were seen before it
    assert lrs[8000] == PEAK * 0.316  # 80% seen
    assert lrs[8001] == PEAK * 0.316
    assert lrs[8999] == PEAK * 0.316
    assert lrs[9000] == PEAK * 0.1  # 90% seen
    assert lrs[9001] == PEAK * 0.1
    assert lrs[-1] == PEAK * 0.1  # last step
    assert scheduler.tokens_seen == steps * batch


@pytest.mark.parametrize("steps", [7, 10, 13, 101, 1237])
def test_milestones_land_on_the_first_step_past_the_fraction(steps):
    """For any length, the drop comes at the first step taken after >= 80% (90%) of the tokens."""
    optimizer = make_optimizer(1.0)
    scheduler = get_token_scheduler(
        "multi_step", optimizer, warmup_steps=0, total_tokens=steps * 10, tokens_per_step=10
    )
    lrs = run(scheduler, optimizer, steps)
    first_80, first_90 = math.ceil(0.8 * steps), math.ceil(0.9 * steps)
    assert all(lr == 1.0 for lr in lrs[:first_80])
    assert all(lr == 0.316 for lr in lrs[first_80:first_90])
    assert all(lr == 0.1 for lr in lrs[first_90:])


def test_milestones_follow_tokens_when_the_batch_size_changes():
    """Budget 1000 tokens; 50 steps of 10 tokens then batches of 40: 80% = 800 tokens is reached after
    50 + 8 = 58 steps (not at 80% of any step count); 90% = 900 tokens after 60 steps."""
    optimizer = make_optimizer(1.0)
    scheduler = get_token_scheduler("multi_step", optimizer, warmup_steps=0, total_tokens=1000, tokens_per_step=10)
    lrs = run(scheduler, optimizer, 50)
    scheduler.tokens_per_step = 40
    lrs += run(scheduler, optimizer, 13)
    assert scheduler.tokens_seen == 500 + 13 * 40
    assert lrs[57] == 1.0 and lrs[58] == 0.316  # 50*10 + 8*40 = 820 >= 800 before step 58
    assert lrs[59] == 0.316 and lrs[60] == 0.1  # 500 + 10*40 = 900 before step 60


def test_batch_size_change_across_a_resume():
    """The same through `state_dict` into a new scheduler built with the new batch (as after a resume)."""
    optimizer = make_optimizer(1.0)
    scheduler = get_token_scheduler("multi_step", optimizer, warmup_steps=0, total_tokens=1000, tokens_per_step=10)
    run(scheduler, optimizer, 50)
    state = pickle.loads(pickle.dumps(scheduler.state_dict()))
    optimizer2 = make_optimizer(1.0)
    resumed = get_token_scheduler("multi_step", optimizer2, warmup_steps=0, total_tokens=1000, tokens_per_step=40)
    resumed.load_state_dict(state)
    assert resumed.tokens_seen == 500 and resumed.last_epoch == 50 and resumed.tokens_per_step == 40
    lrs = run(resumed, optimizer2, 11)
    assert lrs[7] == 1.0 and lrs[8] == 0.316 and lrs[10] == 0.1


def test_resume_with_a_larger_budget_follows_the_new_budget():
    """Stage-1 checkpoint of a 100-step run (80 steps done) continued with a 200-step budget: LR back at the peak
    (the old schedule's drop is not carried over), then drops at 160 and 180 steps."""
    optimizer = make_optimizer(1.0)
    scheduler = get_token_scheduler("multi_step", optimizer, warmup_steps=5, total_tokens=100, tokens_per_step=1)
    run(scheduler, optimizer, 80)
    assert scheduler.get_last_lr()[0] == 0.316  # the short run's next step would drop
    optimizer2 = make_optimizer(1.0)
    optimizer2.load_state_dict(optimizer.state_dict())  # carries lr=0.316 in its param groups
    longer = get_token_scheduler("multi_step", optimizer2, warmup_steps=5, total_tokens=200, tokens_per_step=1)
    longer.load_state_dict(scheduler.state_dict())
    assert optimizer2.param_groups[0]["lr"] == 1.0  # recomputed for the new budget on load
    lrs = run(longer, optimizer2, 120)
    assert lrs[0] == 1.0 and lrs[79] == 1.0 and lrs[80] == 0.316 and lrs[100] == 0.1 and lrs[-1] == 0.1


def test_state_dict_holds_progress_only():
    optimizer = make_optimizer()
    scheduler = get_token_scheduler("multi_step", optimizer, warmup_steps=2, total_tokens=100, tokens_per_step=10)
    run(scheduler, optimizer, 3)
    state = scheduler.state_dict()
    assert state["last_epoch"] == 3 and state["tokens_seen"] == 30
    assert "lr_lambda" not in state and "base_lrs" not in state  # the schedule's shape comes from the config
    torch.save(state, "/dev/null")  # plain data: saved by the Trainer in scheduler.pt


def test_pure_functions():
    kwargs = dict(warmup_steps=2000, total_tokens=1e6)
    assert multi_step_lr_factor(0, 0, **kwargs) == 0.0
    assert multi_step_lr_factor(1000, 0, **kwargs) == 0.5
    assert multi_step_lr_factor(2000, 799_999, **kwargs) == 1.0
    assert multi_step_lr_factor(2000, 800_000, **kwargs) == 0.316
    assert multi_step_lr_factor(2000, 900_000, **kwargs) == 0.1
    assert (
        multi_step_lr_factor(2000, 5e5, warmup_steps=2000, total_tokens=1e6, milestones=(0.5,), factors=(0.2,)) == 0.2
    )
    assert multi_step_lr_factor(0, 0, warmup_steps=0, total_tokens=1) == 1.0  # no warm-up
    assert [schedule_phase(s, t, **kwargs) for s, t in [(0, 0), (2000, 0), (3000, 8e5), (3000, 9e5)]] == [0, 1, 2, 3]


def test_cosine_is_selectable_and_exact():
    optimizer = make_optimizer(1.0)
    scheduler = get_token_scheduler(
        "cosine", optimizer, warmup_steps=10, total_tokens=110, tokens_per_step=1, min_lr_ratio=0.1
    )
    lrs = run(scheduler, optimizer, 111)
    assert lrs[0] == 0.0 and lrs[5] == 0.5 and lrs[10] == 1.0  # warm-up, then the peak
    assert lrs[60] == pytest.approx(0.55)  # halfway through the decay: (1 + 0.1) / 2
    assert lrs[110] == pytest.approx(0.1)  # the floor at the budget
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert cosine_lr_factor(50, 1e9, warmup_steps=10, total_tokens=100, min_lr_ratio=0.0) == 0.0  # past the budget


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("linear_decay", {}, "unknown token-based schedule"),
        ("multi_step", {"milestone": [0.8]}, "unknown options"),
        ("multi_step", {"min_lr_ratio": 0.1}, "unknown options"),
        ("multi_step", {"milestones": [0.9, 0.8], "factors": [0.316, 0.1]}, "increasing"),
        ("multi_step", {"milestones": [0.8, 1.5], "factors": [0.316, 0.1]}, "increasing"),
        ("multi_step", {"milestones": [0.8], "factors": [0.316, 0.1]}, "same length"),
        ("multi_step", {"factors": [0.316, -0.1]}, "positive"),
        ("cosine", {"min_lr_ratio": 2.0}, "min_lr_ratio"),
    ],
)
def test_bad_schedule_options(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_token_scheduler(name, make_optimizer(), warmup_steps=1, total_tokens=100, tokens_per_step=1, **kwargs)


def test_scheduler_rejects_epoch_and_bad_batch():
    optimizer = make_optimizer()
    with pytest.raises(ValueError, match="tokens_per_step"):
        TokenBasedLR(optimizer, lambda step, tokens: 1.0, tokens_per_step=0)
    scheduler = get_token_scheduler("multi_step", optimizer, warmup_steps=1, total_tokens=100, tokens_per_step=1)
    with pytest.raises(ValueError, match="without `epoch`"):
        scheduler.step(3)
