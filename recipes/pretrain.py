"""Pretrain a DeepSeek LLM from scratch with the paper's recipe (arXiv 2401.02954, section 2.3).

Packed documents, AdamW (0.9, 0.95), weight decay 0.1, clipping 1.0, init std 0.006, bf16 where supported, and the
multi-step LR schedule (2000 warm-up steps, x0.316 after 80% of the tokens, x0.1 after 90%). Batch size and LR come
from the config, or from the scaling laws of a `compute_budget` / `max_tokens` (section 3). A run resumes from the
last `checkpoint-*` of its output_dir by itself.

CPU demo (the embedded default; train the demo tokenizer first, see recipes/README.md):
    python recipes/pretrain.py --config recipes/tiny/pretrain/config_cpu.yaml

The paper's 7B run (DeepSpeed ZeRO-1, as the paper):
    accelerate launch --config_file recipes/accelerate_configs/zero1.yaml recipes/pretrain.py \
        --config recipes/deepseek-llm-7b/pretrain/config_full.yaml

Continue from the end of stage 1 with a larger token budget:
    python recipes/pretrain.py --config ... --resume_from_checkpoint OUT/stage1-checkpoint-N --max_tokens 4e12
"""

import logging
import os
import sys

import transformers
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

from deepseek_hf.training import (
    PretrainConfig,
    PretrainDataArguments,
    PretrainModelArguments,
    PretrainTrainer,
    build_model,
    build_packed_dataset,
    load_tokenizer,
    resolve_dataset_path,
)

logger = logging.getLogger(__name__)


def main(data_args: PretrainDataArguments, training_args: PretrainConfig, model_args: PretrainModelArguments):
    # --- logging and seed ---
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    for name in (__name__, "deepseek_hf"):
        logging.getLogger(name).setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    set_seed(training_args.seed)
    logger.info("Data %s\nModel %s\nTraining %s", data_args, model_args, training_args)

    # --- checkpoint to resume: given, or the last one of output_dir ---
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint is not None:
            logger.info("Resuming from the last checkpoint of output_dir: %s", checkpoint)

    # --- tokenizer, packed data, model ---
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path)
    dataset_path = resolve_dataset_path(data_args.dataset_path, data_args.dataset_fallback_path)
    cache_dir = data_args.tokenized_cache_dir or os.path.join(training_args.output_dir, "tokenized")
    with training_args.main_process_first(desc="tokenizing the corpus"):
        train_dataset = build_packed_dataset(
            dataset_path,
            tokenizer,
            data_args.seq_length,
            cache_dir,
            text_field=data_args.dataset_text_field,
            split=data_args.dataset_split,
        )
    logger.info("Packed data from %s: %s", dataset_path, train_dataset.stats())
    model = build_model(
        tokenizer,
        preset=model_args.model_preset,
        config_path=model_args.model_config,
        overrides=model_args.config_overrides,
        attn_implementation=model_args.attn_implementation,
    )

    # --- train ---
    trainer = PretrainTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {**result.metrics, **trainer.loss_summary()}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    # --- final model (with its tokenizer and config) ---
    trainer.save_model(training_args.output_dir)
    logger.info("Model saved to %s", training_args.output_dir)
    return metrics


def make_parser():
    from trl import TrlParser

    return TrlParser((PretrainDataArguments, PretrainConfig, PretrainModelArguments))


if __name__ == "__main__":
    parser = make_parser()
    data_args, training_args, model_args = parser.parse_args_and_config()
    main(data_args, training_args, model_args)
