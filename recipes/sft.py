"""Supervised fine-tuning of a DeepSeek LLM with the paper's recipe (arXiv 2401.02954 section 4), on TRL's SFTTrainer.

Loss on the assistant answers only (through the chat template's `{% generation %}` blocks), a data mixture of
categorised datasets (general, math, code, safety, dialogue) of which each stage keeps a selection, the mixture used
written to `<output_dir>/data_mixture.json`. The 7B model's two stages: stage 1 on all data, stage 2 on dialogue data
only from stage 1's output (cuts the repetition ratio, paper Table 12). Optional LoRA (`use_peft: true`, merged into
the saved model). Over-long conversations are dropped and counted, never truncated.

CPU demo (after the pretraining demo; recipes/README.md gives the stages in order):
    python recipes/sft.py --config recipes/tiny/sft/stage1.yaml
    python recipes/sft.py --config recipes/tiny/sft/stage2.yaml

The paper's 7B stage 1 (DeepSpeed ZeRO-1):
    accelerate launch --config_file recipes/accelerate_configs/zero1.yaml recipes/sft.py \\
        --config recipes/deepseek-llm-7b/sft/stage1.yaml

A configuration, path or data error ends in one message and exit code 1 (`--debug`: the traceback).
"""

import logging
import os
import sys
from collections import Counter

from datasets import Dataset
from transformers import set_seed

from deepseek_hf.alignment import (
    MIXTURE_FILE,
    AlignDataArguments,
    AlignModelArguments,
    DeepseekSFTConfig,
    DeepseekSFTTrainer,
    apply_global_batch_size,
    build_mixture,
    ensure_training_chat_template,
    load_model,
    load_tokenizer,
    peft_config_from,
    run_recipe,
    setup_logging,
    sft_length,
    write_json_atomic,
)

logger = logging.getLogger(__name__)


def main(data_args: AlignDataArguments, training_args: DeepseekSFTConfig, model_args: AlignModelArguments) -> dict:
    """Check the configuration, build the stage's mixture, fine-tune, save; returns the final metrics."""
    setup_logging(training_args, __name__)
    set_seed(training_args.seed)
    logger.info("Data %s\nModel %s\nTraining %s", data_args, model_args, training_args)
    apply_global_batch_size(training_args)

    # --- the stage's data (checked before the model is loaded), then the starting model (pretraining's / stage 1's) ---
    tokenizer = load_tokenizer(model_args)
    notes = [ensure_training_chat_template(tokenizer)]
    mixture = build_mixture(
        data_args.datasets,
        kind="sft",
        categories=data_args.categories,
        length_fn=sft_length(tokenizer),
        max_length=training_args.max_length,
        seed=data_args.mixture_seed,
    )
    if training_args.should_save:  # beside the run, before training: what this stage trains on is on record
        report = {**mixture.report, "model_name_or_path": model_args.model_name_or_path}
        write_json_atomic(os.path.join(training_args.output_dir, MIXTURE_FILE), report)
    logger.info("Mixture: %d conversations %s", len(mixture.records), mixture.report["by_category"])
    model = load_model(model_args)

    # --- train ---
    trainer = DeepseekSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=Dataset.from_list(mixture.records),
        processing_class=tokenizer,
        peft_config=peft_config_from(model_args),
    )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    seen = Counter(trainer.train_dataset["category"])  # the tokenized dataset the trainer iterated over
    metrics = {**result.metrics, "train_conversations": sum(seen.values())}
    trainer.log_metrics("train", metrics)
    metrics.update(
        train_conversations_by_category=dict(sorted(seen.items())),
        model_name_or_path=model_args.model_name_or_path,
        skipped=mixture.report["skipped_total"],
        notes=notes,
    )
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    # --- final model (with its tokenizer and code: loads with AutoModelForCausalLM / AutoTokenizer) ---
    trainer.save_model(training_args.output_dir)
    logger.info("Model saved to %s", training_args.output_dir)
    return metrics


def cli(argv: list[str] | None = None, prog: str = "recipes/sft.py") -> int:
    """Parse (`--config YAML` + flags, strict keys) and run; a user error is one message (`prog: error: ...`) and exit
    code 1."""
    types = (AlignDataArguments, DeepseekSFTConfig, AlignModelArguments)
    return run_recipe(prog, types, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
