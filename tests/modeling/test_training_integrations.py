"""The model inside the stack's trainers and evaluators: transformers `Trainer`, TRL SFT / DPO, lm-eval's HFLM.

A throwaway byte-level BPE is trained in-process (hermetic, as nanochat's tokenizer tests do); the tiny model is
built for its vocabulary and special ids.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Trainer, TrainingArguments

from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`gradient_checkpointing.*` is deprecated:FutureWarning"),  # TRL 1.16's defaults
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

CORPUS = [
    "the cat sat on the mat and looked at the dog",
    "a dog ran in the park with 3 balls and 12 sticks",
    "deep models learn from many tokens of text",
    "scaling laws relate compute, data and model size",
    "the quick brown fox jumps over the lazy dog",
    "we pack short documents into long training sequences",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    config = DeepseekLLMConfig(
        vocab_size=8 * math.ceil(len(tokenizer) / 8),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        loss_chunk_size=16,
    )
    config.check_vocab_covers(tokenizer)
    return DeepseekLLMForCausalLM(config)


COMMON = dict(
    max_steps=4,
    per_device_train_batch_size=2,
    learning_rate=5e-3,
    logging_steps=1,
    report_to="none",
    save_strategy="no",
    use_cpu=True,
    disable_tqdm=True,
)


def _losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def _assert_trained(trainer, before):
    losses = _losses(trainer)
    assert len(losses) == COMMON["max_steps"] and all(math.isfinite(loss) for loss in losses), losses
    assert losses[-1] != losses[0]
    after = dict(trainer.model.named_parameters())
    changed = [name for name, p in before.items() if not torch.equal(p, after[name].detach())]
    assert len(changed) == len(before), set(before) - set(changed)


def test_transformers_trainer_with_gradient_accumulation(model, tokenizer, tmp_path):
    """Trainer passes `num_items_in_batch` to the fused loss (model.train(), logits skipped)."""
    encoded = tokenizer(CORPUS[:12], padding="max_length", max_length=16, truncation=True)
    labels = [
        [t if m else -100 for t, m in zip(ids, mask)]
        for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])
    ]
    dataset = Dataset.from_dict({**encoded, "labels": labels})
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=2, **COMMON),
        train_dataset=dataset,
    )
    assert trainer.model_accepts_loss_kwargs
    trainer.train()
    _assert_trained(trainer, before)
    metrics = trainer.evaluate(dataset.select(range(4)))  # eval mode: logits + standard loss
    assert math.isfinite(metrics["eval_loss"])


def test_trl_sft_with_packing_and_gradient_checkpointing(model, tokenizer, tmp_path):
    from trl import SFTConfig, SFTTrainer

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = SFTConfig(output_dir=str(tmp_path), max_length=48, packing=True, gradient_checkpointing=True, **COMMON)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": CORPUS}), processing_class=tokenizer
    )
    trainer.train()
    _assert_trained(trainer, before)


def test_trl_dpo_with_an_explicit_reference_model(model, tokenizer, tmp_path):
    from trl import DPOConfig, DPOTrainer

    pairs = {
        "prompt": ["the cat sat on", "a dog ran in", "deep models learn", "the quick brown"] * 2,
        "chosen": [" the mat", " the park", " from text", " fox jumps"] * 2,
        "rejected": [" 12 sticks", " lazy", " the dog", " compute"] * 2,
    }
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = DPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),  # a model built in memory has no path to reload a reference from
        args=DPOConfig(output_dir=str(tmp_path), max_length=32, **COMMON),
        train_dataset=Dataset.from_dict(pairs),
        processing_class=tokenizer,
    )
    trainer.train()
    losses = _losses(trainer)
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at step 0
    _assert_trained(trainer, before)


def test_lm_eval_hflm_scores_with_the_model(model, tokenizer):
    """lm-eval calls `model(ids).logits` (no labels, no mask): its log-likelihoods equal our own computation."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=2, device="cpu", add_bos_token=False)
    pairs = [("the cat sat on", " the mat"), ("a dog ran", " in the park with 3 balls")]
    requests = [Instance("loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)]
    results = lm.loglikelihood(requests, disable_tqdm=True)
    model.eval()
    for (context, continuation), (loglikelihood, _) in zip(pairs, results):
        whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
        n_context = len(tokenizer(context, add_special_tokens=False).input_ids)
        with torch.no_grad():
            log_probs = model(torch.tensor([whole])).logits[0].log_softmax(-1)
        expected = sum(log_probs[t - 1, whole[t]].item() for t in range(n_context, len(whole)))
        assert loglikelihood == pytest.approx(expected, abs=1e-4)
