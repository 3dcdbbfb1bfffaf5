"""The LM head the recipes train through (`deepseek_hf.alignment.head`) against its oracle, TRL's own fused head.

Both heads run TRL's `ChunkedLogProbFunction` kernel; ours gives it only the labelled positions on every device. The
per-token outputs, the loss and every gradient must be TRL's; the kernel must see exactly the labelled rows.
"""

from __future__ import annotations

import copy

import pytest
import torch
import trl.trainer.sft_trainer
from trl.trainer.utils import add_fused_lm_head

from deepseek_hf.alignment import head
from deepseek_hf.alignment.head import add_compact_lm_head
from deepseek_hf.modeling import DeepseekLLMConfig, DeepseekLLMForCausalLM

pytestmark = pytest.mark.filterwarnings("ignore:`gradient_checkpointing.*` is deprecated:FutureWarning")

ALL_OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")
VOCAB = 40000  # more than one 32768-column tile


def _models(**head_options):
    torch.manual_seed(0)
    config = DeepseekLLMConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    reference = DeepseekLLMForCausalLM(config).float()
    ours = copy.deepcopy(reference)
    add_fused_lm_head(reference, outputs=ALL_OUTPUTS, **head_options)
    add_compact_lm_head(ours, outputs=ALL_OUTPUTS, **head_options)
    return reference, ours


@pytest.fixture(scope="module")
def models():
    return _models()


def _batch():
    """Two rows, right-padded, with an unlabelled prompt: labels where SFT's collator would put them."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, VOCAB, (2, 14), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0
    labels = input_ids.clone()
    labels[:, :5] = -100  # prompt
    labels[1, 9:] = -100  # padding
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _run(model, batch, **kwargs):
    model.zero_grad(set_to_none=True)
    out = model(**batch, fused_lm_head=True, **kwargs)
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize(
    "num_items_in_batch, head_options",
    [(None, {}), (7, {}), (None, {"temperature": 0.7, "cast_lm_head_to_fp32": True})],
)
def test_outputs_loss_and_gradients_equal_trls_head(num_items_in_batch, head_options):
    reference, ours = _models(**head_options)
    batch = _batch()
    expected, expected_grads = _run(reference, batch, num_items_in_batch=num_items_in_batch)
    got, grads = _run(ours, batch, num_items_in_batch=num_items_in_batch)
    for name in ALL_OUTPUTS:
        want, have = getattr(expected, name), getattr(got, name)
        assert have.shape == want.shape == (2, 13), name
        torch.testing.assert_close(have.float(), want.float(), rtol=1e-5, atol=1e-5, msg=name)
    assert torch.equal(got.label_mask, expected.label_mask)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == expected_grads.keys() and "lm_head.weight" in grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_kernel_sees_only_the_labelled_positions(models, monkeypatch):
    _, ours = models
    rows = []
    kernel = head.ChunkedLogProbFunction

    class Recording:
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    monkeypatch.setattr(head, "ChunkedLogProbFunction", Recording)
    batch = _batch()
    ours(**batch, fused_lm_head=True)
    assert rows == [int((batch["labels"][:, 1:] != -100).sum())] and rows[0] < 2 * 13


def test_an_unlabelled_batch_is_a_differentiable_zero(models):
    _, ours = models
    batch = _batch()
    batch["labels"] = torch.full_like(batch["labels"], -100)
    out = ours(**batch, fused_lm_head=True)
    out.loss.backward()
    assert out.loss.item() == 0.0 and not out.label_mask.any()


def test_without_fused_lm_head_the_models_own_forward_runs(models):
    reference, ours = models
    batch = _batch()
    with torch.no_grad():
        plain = DeepseekLLMForCausalLM.forward(ours, input_ids=batch["input_ids"]).logits
        assert torch.equal(ours(input_ids=batch["input_ids"]).logits, plain)
        loss = ours(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        assert torch.isfinite(loss)
    generated = ours.generate(batch["input_ids"][:1], max_new_tokens=2, do_sample=False)
    assert generated.shape == (1, 16)


def test_a_model_needing_more_than_the_head_supports_is_refused():
    config = DeepseekLLMConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        bos_token_id=1,
        eos_token_id=2,
    )
    config.final_logit_softcapping = 30.0
    with pytest.raises(ValueError, match="final_logit_softcapping"):
        add_compact_lm_head(DeepseekLLMForCausalLM(config))


def test_the_recipes_trainers_install_it(align_checkpoint, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deepseek_hf.alignment import DeepseekSFTConfig, DeepseekSFTTrainer

    args = DeepseekSFTConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", gradient_checkpointing=False, max_length=64
    )
    dataset = Dataset.from_list(
        [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
    )
    trainer = DeepseekSFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(align_checkpoint),
        args=args,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(align_checkpoint),
    )
    assert trainer.model.forward.__func__.__code__.co_filename == head.__file__
    assert trl.trainer.sft_trainer.add_fused_lm_head is add_fused_lm_head  # TRL's own again after the trainer is built
