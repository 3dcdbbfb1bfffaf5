"""`--model deepseek` (`DeepseekLM`) against lm-eval's `hf` (`HFLM`) on the same model instance, request by request.

A throwaway byte-level BPE (BOS prepended, as DeepSeek's tokenizer does) is trained in-process; a tiny
`DeepseekLLMForCausalLM` (sdpa and eager) and a tiny `LlamaForCausalLM` are built for its vocabulary. The request
sets look like real tasks: 5-shot letter questions, option texts, unconditional requests, a mix of two few-shot
tasks, left truncation, and token-level edges.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.modeling_utils import AttentionInterface

from deepseek_hf.eval import scorer
from deepseek_hf.eval.scorer import DeepseekLM, cluster_by_prefix
from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM, token_log_probs

SUBJECTS = ["cat", "dog", "mat", "park", "fox", "ball", "stick", "model"]
CORPUS = [
    "the cat sat on the mat and looked at the dog",
    "a dog ran in the park with 3 balls and 12 sticks",
    "Question: which animal sat on the mat?\nA. cat\nB. dog\nC. fox\nD. ball\nAnswer: A",
    "the quick brown fox jumps over the lazy dog",
    "The following are multiple choice questions about animals.",
] * 4 + ["Answer: A B C D"] * 30  # so that " A".." D" are one token each, as in DeepSeek's vocabulary


@pytest.fixture(scope="module")
def tokenizer():
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS, trainer)
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


SHAPE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=2,
    initializer_range=0.2,  # far from uniform attention, so a mask or position mistake shows
)


def build_model(kind: str, tokenizer, attn: str = "sdpa", seed: int = 0):
    torch.manual_seed(seed)
    vocab = 8 * math.ceil(len(tokenizer) / 8)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **SHAPE, attn_implementation=attn)).eval()
    return DeepseekLLMForCausalLM(DeepseekLLMConfig(vocab_size=vocab, **SHAPE, attn_implementation=attn)).eval()


@pytest.fixture(scope="module", params=["deepseek-sdpa", "deepseek-eager", "llama-sdpa"])
def model(request, tokenizer):
    kind, attn = request.param.split("-")
    return build_model(kind, tokenizer, attn)


# ----------------------------------------------------------------------------------------------------------------
# request sets
# ----------------------------------------------------------------------------------------------------------------
def letter_task(header: str, n_items: int, seed: int) -> list[tuple[str, str]]:
    """5-shot letter questions (CMMLU style): one few-shot prefix, per-item question, continuations " A".." D"."""
    rng = random.Random(seed)

    def question(i: int) -> str:
        a, b, c, d = rng.sample(SUBJECTS, 4)
        return f"Question: which {rng.choice(SUBJECTS)} {i} sat on the mat?\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"

    shots = "\n\n".join(f"{question(i)} {'ABCD'[rng.randrange(4)]}" for i in range(5))
    prefix = f"{header}\n\n{shots}\n\n"
    items = [prefix + question(100 + i) for i in range(n_items)]
    return [(context, f" {letter}") for context in items for letter in "ABCD"]


def option_task(n_items: int, seed: int) -> list[tuple[str, str]]:
    """ARC/HellaSwag style: per-item context, multi-token option texts of different lengths."""
    rng = random.Random(seed)
    requests = []
    for i in range(n_items):
        context = f"Question {i}: where did the {rng.choice(SUBJECTS)} go?\nAnswer:"
        for n_words in (1, 3, 6, 2):
            requests.append((context, " " + " ".join(rng.choice(SUBJECTS) for _ in range(n_words))))
    return requests


def unconditional(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """lm-eval's acc_mutual_info requests: `("", continuation)`, scored after BOS, repeated across documents."""
    return [("", continuation) for _, continuation in requests]


LETTERS = letter_task("The following are multiple choice questions about animals.", 6, seed=1)
OPTIONS = option_task(5, seed=2)
REQUEST_SETS = {
    "letters_5shot": LETTERS,
    "option_text": OPTIONS,
    "unconditional": unconditional(OPTIONS + LETTERS[:8]),
    "mixed": None,  # built below: (a) + (b) + (c) + a second few-shot task, shuffled
}
MIXED = (
    LETTERS
    + OPTIONS
    + unconditional(OPTIONS + LETTERS[:8])
    + letter_task("Questions about parks and balls.", 4, seed=3)
)
random.Random(4).shuffle(MIXED)
REQUEST_SETS["mixed"] = MIXED


def instances(pairs):
    return [Instance("loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)]


def scorers(model, tokenizer, batch_size: int, **kwargs):
    hf = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu", **kwargs)
    ours = DeepseekLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu", **kwargs)
    return hf, ours


def assert_same(expected, actual, atol=1e-4):
    assert len(expected) == len(actual)
    for i, ((ll_hf, greedy_hf), (ll_ours, greedy_ours)) in enumerate(zip(expected, actual)):
        assert ll_ours == pytest.approx(ll_hf, abs=atol), f"request {i}"
        assert greedy_ours == greedy_hf, f"request {i}"


# ----------------------------------------------------------------------------------------------------------------
# the modeling helper
# ----------------------------------------------------------------------------------------------------------------
def test_token_log_probs_matches_full_log_softmax():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=generator)
    weight = torch.randn(50, 16, generator=generator)
    bias = torch.randn(50, generator=generator)
    weight[7] = weight[3]  # a tie: torch.argmax (and lm-eval's is_greedy) picks the first maximum
    bias[7] = bias[3]
    hidden[0] = 10 * weight[3]  # row 0: ids 3 and 7 tie for the maximum
    targets = torch.randint(0, 50, (37, 3), generator=generator)
    targets[:, 2] = (hidden @ weight.T + bias).argmax(-1)  # some targets are the argmax
    targets[0] = torch.tensor([3, 7, 3])
    full = (hidden @ weight.T + bias).log_softmax(-1)
    log_probs, is_argmax = token_log_probs(hidden, weight, targets, chunk_size=5, bias=bias)
    torch.testing.assert_close(log_probs, full.gather(1, targets), atol=1e-5, rtol=0)
    assert torch.equal(is_argmax, full.argmax(-1, keepdim=True) == targets)
    assert is_argmax[1:, 2].all() and is_argmax[0].tolist() == [True, False, True]
    one, one_argmax = token_log_probs(hidden, weight, targets[:, 0], chunk_size=64, bias=bias)
    assert one.shape == (37,) and one.dtype == torch.float32
    torch.testing.assert_close(one, log_probs[:, 0], atol=1e-6, rtol=0)
    assert torch.equal(one_argmax, is_argmax[:, 0])


def test_token_log_probs_on_a_llama_head(tokenizer):
    """The helper needs only `hidden` and the head weight, so it serves a plain LlamaForCausalLM as well."""
    llama = build_model("llama", tokenizer)
    ids = torch.tensor([tokenizer("the cat sat on the mat").input_ids])
    with torch.no_grad():
        out = llama(ids, output_hidden_states=True)
    hidden = llama.model(ids).last_hidden_state[0]
    targets = ids[0, 1:]
    log_probs, is_argmax = token_log_probs(hidden[:-1], llama.lm_head.weight, targets, chunk_size=2)
    full = out.logits[0, :-1].log_softmax(-1)
    torch.testing.assert_close(log_probs, full.gather(1, targets[:, None])[:, 0], atol=1e-5, rtol=0)
    assert torch.equal(is_argmax, full.argmax(-1) == targets)


# ----------------------------------------------------------------------------------------------------------------
# equality with hf
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("name", list(REQUEST_SETS))
def test_same_log_likelihoods_as_hf(model, tokenizer, name, batch_size):
    hf, ours = scorers(model, tokenizer, batch_size)
    requests = instances(REQUEST_SETS[name])
    assert_same(hf.loglikelihood(requests, disable_tqdm=True), ours.loglikelihood(requests, disable_tqdm=True))
    assert ours._path == "tree"
    if name == "mixed":
        assert ours.work["prefix_clusters"] == 2  # the two few-shot tasks, each run once
        assert ours.work["unique_requests"] < len(requests)  # unconditional requests repeat across documents


@pytest.mark.parametrize("batch_size", [1, 4])
def test_left_truncation(model, tokenizer, batch_size):
    """Contexts longer than max_length: both scorers drop the same leading tokens (continuations of different
    lengths then truncate one context differently)."""
    hf, ours = scorers(model, tokenizer, batch_size, max_length=40)
    requests = instances(LETTERS[:8] + OPTIONS[:8])
    assert all(len(tokenizer(context + cont).input_ids) > 41 for context, cont in LETTERS[:8])
    assert_same(hf.loglikelihood(requests, disable_tqdm=True), ours.loglikelihood(requests, disable_tqdm=True))


def greedy_continuation(model, context: list[int], n: int) -> list[int]:
    ids = list(context)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(context) :]


def test_token_level_edges(model, tokenizer):
    """Single-token stems ([BOS]), greedy continuations (is_greedy True), branches sharing a first token, and
    continuations that are prefixes of each other; batch sizes 1 and 5."""
    bos = tokenizer.bos_token_id
    stem = tokenizer("Question: which dog sat on the mat?\nAnswer:").input_ids
    greedy = greedy_continuation(model, stem, 4)
    greedy_bos = greedy_continuation(model, [bos], 3)
    token_requests = [
        ([bos], greedy_bos),
        ([bos], greedy_bos[:1]),
        ([bos], [5, 6, 7]),
        (stem, greedy),
        (stem, greedy[:2]),
        (stem, greedy[:1] + [9]),
        (stem, [9]),
        (stem + greedy[:1], greedy[1:3]),  # a stem that extends another stem
        (stem, greedy),  # a duplicate
    ]
    requests = [(("<tokens>", str(i)), ctx, cont) for i, (ctx, cont) in enumerate(token_requests)]
    for batch_size in (1, 5):
        hf, ours = scorers(model, tokenizer, batch_size)
        expected = hf._loglikelihood_tokens(requests, disable_tqdm=True)
        assert_same(expected, ours._loglikelihood_tokens(requests, disable_tqdm=True))
        assert all(expected[i][1] for i in (0, 1, 3, 4, 7))


def test_same_tokens_split_differently(tokenizer):
    """`(ctx, cont)` and `(ctx + cont[:2], cont[2:])` feed the model the same tokens. hf (lm-eval 0.4.13) serves
    both from one forward, and for the shorter continuation gathers the log-probs of the *first* positions of the
    representative's slice (only its greedy check takes the trailing slice), so it is compared with the oracle."""
    model = build_model("deepseek", tokenizer)
    stem = tokenizer("Question: which dog sat on the mat?\nAnswer:").input_ids
    tail = greedy_continuation(model, stem, 4)
    requests = [(("a", "b"), stem, tail), (("a", "c"), stem + tail[:2], tail[2:])]
    ours = DeepseekLM(pretrained=model, tokenizer=tokenizer, batch_size=2, device="cpu")
    results = ours._loglikelihood_tokens(requests, disable_tqdm=True)
    with torch.no_grad():
        log_probs = model(torch.tensor([stem + tail[:-1]])).logits[0].log_softmax(-1)
    per_token = [log_probs[len(stem) - 1 + i, token].item() for i, token in enumerate(tail)]
    assert results[0] == (pytest.approx(sum(per_token), abs=1e-4), True)
    assert results[1] == (pytest.approx(sum(per_token[2:]), abs=1e-4), True)


def test_rolling_and_auto_batch_size(tokenizer):
    """`loglikelihood_rolling` (inherited; its windows come back through `_loglikelihood_tokens` with
    `override_bs`) and `batch_size="auto"` (hf's detection, run once) give hf's numbers."""
    model = build_model("deepseek", tokenizer)
    texts = [CORPUS[1] + " " + CORPUS[3], CORPUS[2]]
    rolling = [Instance("loglikelihood_rolling", doc={}, arguments=(text,), idx=i) for i, text in enumerate(texts)]
    hf, ours = scorers(model, tokenizer, "auto", max_length=24, max_batch_size=4)
    expected = hf.loglikelihood_rolling(rolling, disable_tqdm=True)
    assert ours.loglikelihood_rolling(rolling, disable_tqdm=True) == pytest.approx(expected, abs=1e-4)
    requests = instances(OPTIONS[:8])
    assert_same(hf.loglikelihood(requests, disable_tqdm=True), ours.loglikelihood(requests, disable_tqdm=True))
    assert ours._auto_rows == 4


def test_empty_continuation_scores_zero(tokenizer):
    """hf asserts on an empty continuation (e.g. an empty option); log P(empty) = 0 and it is trivially greedy."""
    model = build_model("deepseek", tokenizer)
    hf, ours = scorers(model, tokenizer, 2)
    requests = [(("a", ""), [0, 5, 6], []), (("a", " b"), [0, 5, 6], [7])]
    with pytest.raises(AssertionError):
        hf._loglikelihood_tokens(requests[:1], disable_tqdm=True)
    results = ours._loglikelihood_tokens(requests, disable_tqdm=True)
    assert results[0] == (0.0, True)
    assert_same(hf._loglikelihood_tokens(requests[1:], disable_tqdm=True), results[1:])


def test_independent_oracle(tokenizer):
    """A few requests against the model run on the whole token sequence, log_softmax summed by hand."""
    model = build_model("deepseek", tokenizer, seed=1)
    ours = DeepseekLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
    pairs = [LETTERS[0], LETTERS[3], OPTIONS[2], OPTIONS[5], ("", " the cat")]
    results = ours.loglikelihood(instances(pairs), disable_tqdm=True)
    for (context, continuation), (loglikelihood, _) in zip(pairs, results):
        if context:
            whole = tokenizer(context + continuation).input_ids
            n_context = len(tokenizer(context).input_ids)
        else:
            whole = [tokenizer.bos_token_id] + tokenizer(continuation, add_special_tokens=False).input_ids
            n_context = 1
        with torch.no_grad():
            log_probs = F.log_softmax(model(torch.tensor([whole])).logits[0].double(), dim=-1)
        expected = sum(log_probs[t - 1, whole[t]].item() for t in range(n_context, len(whole)))
        assert loglikelihood == pytest.approx(expected, abs=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# work saved, clustering, fallbacks, registration
# ----------------------------------------------------------------------------------------------------------------
def test_far_less_work_than_hf_on_5shot_letters(tokenizer, monkeypatch):
    """Decoder tokens (embedding lookups) and output-head positions, counted the same way for both scorers."""
    model = build_model("deepseek", tokenizer)
    requests = instances(letter_task("The following are multiple choice questions about animals.", 12, seed=5))
    counts = {"decoder": 0, "head": 0}

    def count(name, per_row):
        def hook(module, inputs, output):
            counts[name] += inputs[0].numel() // (inputs[0].shape[-1] if per_row else 1)

        return hook

    model.model.embed_tokens.register_forward_hook(count("decoder", per_row=False))  # token ids in
    hook = model.lm_head.register_forward_hook(count("head", per_row=True))  # hidden rows in
    hf, ours = scorers(model, tokenizer, 4)
    expected = hf.loglikelihood(requests, disable_tqdm=True)
    hf_counts = dict(counts)
    hook.remove()

    original = scorer.token_log_probs

    def counting(hidden, *args, **kwargs):
        counts["head"] += hidden.shape[0]
        return original(hidden, *args, **kwargs)

    monkeypatch.setattr(scorer, "token_log_probs", counting)
    ours._choose_path()  # the one-off probe is not part of the comparison
    counts.update(decoder=0, head=0)
    assert_same(expected, ours.loglikelihood(requests, disable_tqdm=True))
    # hf: one forward per item (its logits cache groups the four letters), a ~290-token context each
    assert hf_counts["decoder"] > 12 * 250
    assert (
        counts["decoder"] < 0.25 * hf_counts["decoder"]
    )  # the 5-shot prefix once, then ~40 per item (measured: 676 vs 3492)
    assert counts["head"] == 12  # one position per item (the four letters read the same row)
    assert hf_counts["head"] == hf_counts["decoder"]  # every position through lm_head
    assert ours.work["prefix_clusters"] == 1 and ours.work["head_positions"] == 12


def test_cluster_by_prefix_rule():
    preamble = tuple(range(100, 120))  # 20 tokens shared by both tasks
    task_a = preamble + tuple(range(200, 300))  # +100 tokens of task A's shots
    task_b = preamble + tuple(range(300, 400))
    a_items = [task_a + (1, i) for i in range(3)] + [task_a]  # a stem equal to the shared part
    b_items = [task_b + (i, 2, 3) for i in range(2)]
    lone = [preamble[:10] + (7,), (5, 6)]
    clusters = cluster_by_prefix(a_items + b_items + lone + [a_items[0]])  # a duplicate stem
    by_first = {members[0]: (prefix, members) for prefix, members in clusters}
    prefix_a, members_a = by_first[min(a_items)]
    assert sorted(members_a) == sorted(a_items)
    assert prefix_a == len(task_a) - 1  # one token of the shortest stem stays outside the prefix
    prefix_b, members_b = by_first[min(b_items)]
    assert sorted(members_b) == sorted(b_items) and prefix_b == len(task_b)
    assert all(prefix == 0 and len(members) == 1 for prefix, members in clusters if members[0] in lone)
    # a stem sharing only the 20-token preamble would cut task A's prefix to < 3/4: it starts its own cluster
    assert len(clusters) == 4
    # the rule on a plain chain: each join keeps >= 3/4 of the running common prefix and >= 16 tokens
    chain = [tuple(range(40)) + (1,), tuple(range(40)) + (2,), tuple(range(32)) + (9, 9)]
    assert cluster_by_prefix(chain) == [(32, sorted(chain))]
    split = cluster_by_prefix(chain[:2] + [tuple(range(29)) + (99,)])  # sorts last; 29 < 0.75 * 40
    assert split == [(40, sorted(chain[:2])), (0, [tuple(range(29)) + (99,)])]
    assert cluster_by_prefix([tuple(range(15)) + (1,), tuple(range(15)) + (2,)]) == [
        (0, [tuple(range(15)) + (1,)]),
        (0, [tuple(range(15)) + (2,)]),
    ]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", ["deepseek", "llama"])
def test_create_causal_mask_passes_a_custom_4d_mask_through(tokenizer, kind, attn):
    """The tree path relies on transformers 5.24 handing a prepared 4-D mask to the attention unchanged (our
    model and Llama both build their masks with `create_causal_mask`), with or without a prefix cache."""
    from transformers import DynamicCache
    from transformers.masking_utils import create_causal_mask

    config = build_model(kind, tokenizer, attn).config
    cache = DynamicCache()
    cache.update(torch.zeros(2, 2, 4, 8), torch.zeros(2, 2, 4, 8), layer_idx=0)
    mask = torch.rand(2, 1, 5, 9) > 0.5
    for past in (None, cache):
        out = create_causal_mask(
            config=config,
            inputs_embeds=torch.zeros(2, 5, 32),
            attention_mask=mask,
            cache=past,
            position_ids=torch.arange(4, 9).expand(2, -1),
        )
        assert out is mask


def fake_flash_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """A CPU stand-in for flash-attn: takes no mask, attends causally (the mask-free path must not need one)."""
    assert attention_mask is None
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def test_flash_attention_falls_back_to_the_mask_free_path(tokenizer, caplog):
    original = AttentionInterface._global_mapping["flash_attention_2"]
    AttentionInterface.register("flash_attention_2", fake_flash_attention)
    try:
        model = build_model("deepseek", tokenizer)
        model.config._attn_implementation_internal = "flash_attention_2"  # the code path flash-attn takes
        hf, ours = scorers(model, tokenizer, 3)
        requests = instances(MIXED[:60])
        with caplog.at_level("INFO", logger=scorer.__name__):
            assert_same(hf.loglikelihood(requests, disable_tqdm=True), ours.loglikelihood(requests, disable_tqdm=True))
        assert ours._path == "plain" and "mask-free path" in caplog.text
        assert ours.work["prefix_clusters"] == 0
    finally:
        AttentionInterface.register("flash_attention_2", original)


def test_probe_falls_back_to_hf_when_the_head_is_not_plain(tokenizer):
    """A model whose logits are not `hidden @ lm_head.weight.T` (here: scaled by a hook, like Gemma's softcap or
    Cohere's logit_scale) fails the probe, and hf's own code scores it."""
    model = build_model("deepseek", tokenizer)
    model.lm_head.register_forward_hook(lambda module, inputs, output: output * 0.5)
    hf, ours = scorers(model, tokenizer, 4)
    requests = instances(OPTIONS[:8])
    assert_same(hf.loglikelihood(requests, disable_tqdm=True), ours.loglikelihood(requests, disable_tqdm=True))
    assert ours._path == "hf"


def test_registered_as_deepseek():
    from lm_eval.api.registry import get_model

    assert get_model("deepseek") is DeepseekLM
