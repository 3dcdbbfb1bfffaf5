"""Direct preference optimization of a DeepSeek LLM Chat model (arXiv 2401.02954 section 4), on TRL's DPOTrainer.

The paper's settings as defaults: 1 epoch, LR 5e-6, batch 512, warm-up then cosine (beta is not stated: TRL's 0.1).
The reference model is always chosen on purpose and written to `<output_dir>/data_mixture.json` with the data: the
starting model loaded a second time (or `ref_model_name_or_path`), or no copy at all with `use_peft: true` (the
policy with its LoRA adapter disabled) or `precompute_ref_log_probs: true` (the starting policy's log-probs,
computed before the first step). TRL's own fallback, a reload from the config's path, is never used.

CPU demo (after SFT stage 2):
    python recipes/dpo.py --config recipes/tiny/dpo/config.yaml

The paper's 7B DPO:
    accelerate launch --config_file recipes/accelerate_configs/zero1.yaml recipes/dpo.py \\
        --config recipes/deepseek-llm-7b/dpo/config.yaml

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
    DeepseekDPOConfig,
    DeepseekDPOTrainer,
    apply_global_batch_size,
    build_mixture,
    check_reference_config,
    load_model,
    load_reference,
    load_tokenizer,
    peft_config_from,
    preference_length,
    run_recipe,
    setup_logging,
    write_json_atomic,
)

logger = logging.getLogger(__name__)


def main(data_args: AlignDataArguments, training_args: DeepseekDPOConfig, model_args: AlignModelArguments) -> dict:
    """Check the configuration, build the preference mixture, train with DPO, save; returns the final metrics."""
    setup_logging(training_args, __name__)
    set_seed(training_args.seed)
    logger.info("Data %s\nModel %s\nTraining %s", data_args, model_args, training_args)
    apply_global_batch_size(training_args)

    # --- the preference pairs and the reference asked for (checked first), the policy (SFT's output) and reference ---
    tokenizer = load_tokenizer(model_args)
    check_reference_config(model_args, training_args)
    mixture = build_mixture(
        data_args.datasets,
        kind="dpo",
        categories=data_args.categories,
        length_fn=preference_length(tokenizer),
        max_length=training_args.max_length,
        seed=data_args.mixture_seed,
    )
    model = load_model(model_args)
    reference = load_reference(model_args, training_args, model)
    if training_args.should_save:
        report = {
            **mixture.report,
            "model_name_or_path": model_args.model_name_or_path,
            "reference": reference.describe(),
        }
        write_json_atomic(os.path.join(training_args.output_dir, MIXTURE_FILE), report)
    logger.info("Mixture: %d preference pairs %s", len(mixture.records), mixture.report["by_category"])

    # --- train ---
    trainer = DeepseekDPOTrainer(
        model=model,
        reference=reference,
        args=training_args,
        train_dataset=Dataset.from_list(mixture.records),
        processing_class=tokenizer,
        peft_config=peft_config_from(model_args),
    )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    seen = Counter(trainer.train_dataset["category"])
    rewards = [e for e in trainer.state.log_history if "rewards/margins" in e]
    metrics = {**result.metrics, "train_pairs": sum(seen.values())}
    if rewards:
        metrics.update({"final_rewards/margins": rewards[-1]["rewards/margins"]})
        metrics.update({"final_rewards/accuracies": rewards[-1]["rewards/accuracies"]})
    trainer.log_metrics("train", metrics)
    metrics.update(
        train_pairs_by_category=dict(sorted(seen.items())),
        model_name_or_path=model_args.model_name_or_path,
        reference=reference.describe(),
        skipped=mixture.report["skipped_total"],
    )
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    # --- final model (with its tokenizer and code; LoRA merged in) ---
    trainer.save_model(training_args.output_dir)
    logger.info("Model saved to %s", training_args.output_dir)
    return metrics


def cli(argv: list[str] | None = None, prog: str = "recipes/dpo.py") -> int:
    """Parse (`--config YAML` + flags, strict keys) and run; a user error is one message (`prog: error: ...`) and exit
    code 1."""
    types = (AlignDataArguments, DeepseekDPOConfig, AlignModelArguments)
    return run_recipe(prog, types, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
