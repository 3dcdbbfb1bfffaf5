"""Pretrain a DeepSeek LLM from scratch with the paper's recipe (arXiv 2401.02954, section 2.3).

Packed documents, AdamW (0.9, 0.95), weight decay 0.1, clipping 1.0, init std 0.006, bf16 where supported, and the
multi-step LR schedule (2000 warm-up steps, x0.316 after 80% of the tokens, x0.1 after 90%). Batch size and LR come
from the config, or from the scaling laws of a `compute_budget` / `max_tokens` (section 3). A run resumes from the
last `checkpoint-*` of its output_dir by itself, and only exactly (a checkpoint that lacks e.g. its optimizer
state is refused; `--restart_optimizer true` continues it with a fresh optimizer, on purpose).

CPU demo (the embedded default; run the data and tokenizer stages first, see recipes/README.md):
    python recipes/pretrain.py --config recipes/tiny/pretrain/config_cpu.yaml

The paper's 7B run (DeepSpeed ZeRO-1, as the paper):
    accelerate launch --config_file recipes/accelerate_configs/zero1.yaml recipes/pretrain.py \\
        --config recipes/deepseek-llm-7b/pretrain/config_full.yaml

Continue from the end of stage 1 with a larger token budget:
    python recipes/pretrain.py --config ... --resume_from_checkpoint OUT/stage1-checkpoint-N --max_tokens 4e12

Annealed instruction data (paper section 5.1): `anneal_sources` add corpora from a token fraction on (default: the
LR schedule's last stage), each with its share of the rows; the mixture seen per LR stage goes to data_mixture.json:
    python recipes/pretrain.py --config recipes/tiny/pretrain/config_anneal.yaml

Validation: `validation_fraction: 0.01` holds out the documents whose text hash falls in the lowest 1% (or give
`validation_path`); `eval_loss` and `eval_bits_per_byte` are logged every `eval_steps` (`eval_strategy: steps`) and
computed at the end, and `all_results.json` (written last) holds them with `eval_tokens`, `eval_bytes`,
`train_tokens`, `flops_per_token` and `train_flops` (recipes/README.md, "Validation loss and bits-per-byte").

The whole configuration (model, tokenizer, data path, checkpoint, batch / LR / length, schedule) is checked before
the corpus is tokenized; a configuration, path or data error ends in one message and exit code 1 (`--debug` or
DEEPSEEK_HF_DEBUG=1: the traceback).
"""

import argparse
import dataclasses
import logging
import os
import sys

import transformers
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint
from trl import TrlParser

from deepseek_hf.training import (
    PretrainConfig,
    PretrainDataArguments,
    PretrainModelArguments,
    PretrainTrainer,
    build_model,
    build_model_config,
    build_pretraining_datasets,
    check_resumable,
    check_schedule,
    check_validation_settings,
    dataset_path_exists,
    load_tokenizer,
    parse_anneal_sources,
    plan_anneal,
    resolve_dataset_path,
    resolve_training_plan,
)
from deepseek_hf.utils import DEBUG_ENV, USER_ERRORS, debug_requested, describe_error

logger = logging.getLogger(__name__)

USAGE = "%(prog)s --config CONFIG.yaml [--key value ...]"
# The TrainingArguments options that `--help` shows next to the recipe's own; `--help-all` shows all of them.
COMMON_TRAINING_OPTIONS = (
    "output_dir",
    "resume_from_checkpoint",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "save_total_limit",
    "seed",
    "use_cpu",
    "activation_checkpointing",
    "dataloader_num_workers",
)


def main(data_args, training_args, model_args) -> dict:
    """Check the whole configuration, tokenize the corpus, train; returns the final metrics."""
    # --- logging and seed ---
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    for name in (__name__, "deepseek_hf"):
        logging.getLogger(name).setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    set_seed(training_args.seed)
    logger.info("Data %s\nModel %s\nTraining %s", data_args, model_args, training_args)
    notes: list[str] = []  # what the final summary repeats

    # --- the whole configuration, checked before anything is tokenized or written ---
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint is not None:
            logger.info("Resuming from the last checkpoint of output_dir: %s", checkpoint)
    progress = check_resumable(checkpoint, training_args) if checkpoint else None
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path)
    model_config = build_model_config(
        tokenizer,
        preset=model_args.model_preset,
        config_path=model_args.model_config,
        overrides=model_args.config_overrides,
    )
    dataset_path = resolve_dataset_path(data_args.dataset_path, data_args.dataset_path_if_missing)
    if data_args.dataset_path_if_missing and not dataset_path_exists(data_args.dataset_path):
        notes.append(
            f"dataset_path {data_args.dataset_path!r} does not exist: trained on dataset_path_if_missing "
            f"{data_args.dataset_path_if_missing!r} instead"
        )
    plan = resolve_training_plan(
        training_args,
        model_config,
        seq_length=data_args.seq_length,
        world_size=training_args.world_size,
        tokens_seen=progress.tokens_seen if progress else 0,
        steps_done=progress.global_step if progress else 0,
    )
    check_schedule(training_args, plan)
    plan_anneal(parse_anneal_sources(data_args.anneal_sources), plan, training_args)  # entry points of added data
    check_validation_settings(data_args, training_args)
    validation_path = resolve_dataset_path(data_args.validation_path) if data_args.validation_path else None
    if training_args.restart_optimizer and progress is None:
        logger.warning("restart_optimizer is set, but there is no checkpoint to resume: the run starts from scratch")

    # --- model, packed data, validation split ---
    model = build_model(
        tokenizer,
        preset=model_args.model_preset,
        config_path=model_args.model_config,
        overrides=model_args.config_overrides,
        attn_implementation=model_args.attn_implementation,
    )
    cache_dir = data_args.tokenized_cache_dir or os.path.join(training_args.output_dir, "tokenized")
    with training_args.main_process_first(desc="tokenizing the corpus"):
        train_dataset, eval_dataset = build_pretraining_datasets(
            dataset_path,
            tokenizer,
            data_args.seq_length,
            cache_dir,
            text_field=data_args.dataset_text_field,
            split=data_args.dataset_split,
            validation_fraction=data_args.validation_fraction,
            validation_path=validation_path,
            max_validation_tokens=data_args.max_validation_tokens,
            anneal_sources=data_args.anneal_sources,
            anneal_seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
        )
    logger.info("Packed data from %s: %s", dataset_path, train_dataset.stats())
    if eval_dataset is not None:
        logger.info("Validation set (scored at the end and every eval_steps): %s", eval_dataset.stats())

    # --- train, then the final validation loss and bits-per-byte ---
    trainer = PretrainTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {**result.metrics, **trainer.loss_summary(), **trainer.run_summary()}
    eval_metrics = trainer.final_evaluation() if eval_dataset is not None else {}
    if trainer.optimizer_restarted_at is not None:
        metrics["optimizer_restarted_at_step"] = trainer.optimizer_restarted_at
        notes.append(
            f"restart_optimizer: the optimizer started afresh at step {trainer.optimizer_restarted_at} "
            f"(resumed from {checkpoint})"
        )
    trainer.log_metrics("train", metrics)
    if eval_metrics:
        trainer.log_metrics("eval", eval_metrics)
    trainer.save_state()

    # --- final model (with its tokenizer and config), then the metrics: all_results.json comes last, whole ---
    trainer.save_model(training_args.output_dir)
    logger.info("Model saved to %s", training_args.output_dir)
    metrics.update(dataset=dataset_path, validation=eval_dataset.stats() if eval_dataset else None, notes=notes)
    if trainer.data_mixture is not None:  # anneal_sources: the mixture seen per LR stage (also data_mixture.json)
        metrics["data_mixture"] = trainer.data_mixture
    trainer.save_metrics("train", metrics, combined=False)
    if eval_metrics:
        trainer.save_metrics("eval", eval_metrics, combined=False)
    trainer.save_metrics("all", {**metrics, **eval_metrics}, combined=False)  # all_results.json
    for note in notes:
        logger.warning("Note: %s", note)
    return {**metrics, **eval_metrics}


class _HelpAllAction(argparse.Action):
    """`--help-all`: the full help, every `TrainingArguments` option included."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(parser.format_full_help())
        parser.exit()


class PretrainParser(TrlParser):
    """TRL's parser (`--config` YAML, strict keys, flags override it) with a `--help` that leads with the recipe.

    transformers' `TrainingArguments` bring ~100 options; `--help` shows the config file, the data and model options,
    `PretrainConfig`'s own fields and a few common ones, and says that `--help-all` lists the rest.
    """

    def __init__(self, prog: str = "recipes/pretrain.py"):
        super().__init__((PretrainDataArguments, PretrainConfig, PretrainModelArguments))
        self.prog, self.usage, self.description = prog, USAGE, __doc__.split("\n\n")[0]
        self.add_argument("--config", metavar="CONFIG.yaml", default=argparse.SUPPRESS, help=CONFIG_HELP)
        self.add_argument("--help-all", action=_HelpAllAction, help=HELP_ALL_HELP)
        listed = self._optionals._group_actions  # --help, --config and --help-all first in the full help too
        listed[1:] = listed[-2:] + listed[1:-2]

    @staticmethod
    def _sections():
        own = set(PretrainConfig.__annotations__)  # the fields PretrainConfig adds or redefines
        return (
            ("the config file", {"config"}),
            ("data", {f.name for f in dataclasses.fields(PretrainDataArguments)}),
            ("model", {f.name for f in dataclasses.fields(PretrainModelArguments)}),
            ("run length, batch, learning rate, resume; the paper's defaults", own),
            ("common transformers TrainingArguments", set(COMMON_TRAINING_OPTIONS)),
        )

    def format_help(self) -> str:
        shown = set().union(*(dests for _, dests in self._sections()))
        others = {a.dest for a in self._actions if a.option_strings} - shown - {"help", argparse.SUPPRESS}
        short = argparse.ArgumentParser(
            prog=self.prog,
            usage=USAGE,
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=False,
            epilog=f"Every other transformers TrainingArguments option ({len(others)} more) is accepted too, in the "
            "YAML or as a flag:\n--help-all lists them. --debug alone shows the traceback of an error (so does "
            f"{DEBUG_ENV}=1);\n--debug underflow_overflow is TrainingArguments' debug option.",
        )
        short.add_argument("-h", "--help", action="help", help="show this message")
        short.add_argument("--help-all", action=_HelpAllAction, help=HELP_ALL_HELP)
        for title, dests in self._sections():
            group = short.add_argument_group(title)
            for action in self._actions:  # the same actions, so the same flags, defaults and help
                if action.dest in dests and not any(o.startswith("--no_") for o in action.option_strings):
                    group._group_actions.append(action)
        return short.format_help()

    def format_full_help(self) -> str:
        return super().format_help()


def make_parser(prog: str = "recipes/pretrain.py") -> PretrainParser:
    return PretrainParser(prog)


CONFIG_HELP = (
    "YAML file of options (e.g. recipes/tiny/pretrain/config_cpu.yaml); every key must be an option below, and "
    "flags on the command line override it"
)
HELP_ALL_HELP = "show every option, TrainingArguments' too"


def _take_debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """Remove a bare `--debug` (show tracebacks); `--debug <option>` stays TrainingArguments' debug option."""
    for index, arg in enumerate(argv):
        if arg == "--debug" and (index + 1 == len(argv) or argv[index + 1].startswith("-")):
            return argv[:index] + argv[index + 1 :], True
    return argv, False


def cli(argv: list[str] | None = None, prog: str = "recipes/pretrain.py") -> int:
    """Parse and run; a user error is one message on stderr (`prog: error: ...`) and exit code 1."""
    argv, debug = _take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    try:
        data_args, training_args, model_args = make_parser(prog).parse_args_and_config(argv)
        main(data_args, training_args, model_args)
    except USER_ERRORS as error:  # the configuration, a path or the data (deepseek_hf.utils: the CLI's convention)
        if debug or debug_requested():
            raise
        print(f"{prog}: error: {describe_error(error)}\n(--debug shows the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
