"""Configuration dataclasses of the pretraining recipe: data, model, and training (a `TrainingArguments`).

The three dataclasses are what `recipes/pretrain.py` parses (strictly: an unknown YAML key or flag is an error),
so every field here is a documented config key. The training defaults are the paper's (arXiv 2401.02954 section
2.3): AdamW with beta (0.9, 0.95), weight decay 0.1, gradient clipping 1.0, the multi-step LR schedule with 2000
warm-up steps, bf16 where the hardware has it.

Batch size, learning rate and run length can be given the Hugging Face way (`per_device_train_batch_size`,
`gradient_accumulation_steps`, `learning_rate`, `max_steps`), the paper's way (`global_batch_size` in sequences,
`max_tokens`), or left to the scaling laws (`compute_budget` or `max_tokens` without a batch size or LR): see
`deepseek_hf.training.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .annealing import parse_anneal_sources
from .schedules import PAPER_WARMUP_STEPS, SCHEDULES

__all__ = ["PretrainDataArguments", "PretrainModelArguments", "PretrainConfig"]

# report_to name -> (transformers.integrations availability check, how to install it)
_TRACKERS = {
    "tensorboard": ("is_tensorboard_available", 'pip install "deepseek-hf[tracking]"'),
    "trackio": ("is_trackio_available", "pip install trackio"),
    "wandb": ("is_wandb_available", "pip install wandb"),
}


@dataclass
class PretrainDataArguments:
    """Where the pretraining documents come from and how they are packed."""

    dataset_path: str | None = field(
        default=None,
        metadata={
            "help": "Documents to train on: a finished data pipeline run folder (`deepseek-hf data run`), a JSONL / "
            "JSON / text file (optionally .gz), a folder or glob of them, a `datasets` name, or `package://demo/...` "
            "(a file shipped with the package), or a `deepseek-hf data tokenize` output folder (token shards and "
            "manifest.json, used as they are)."
        },
    )
    dataset_path_if_missing: str | None = field(
        default=None,
        metadata={
            "help": "Trained on instead when `dataset_path` does not exist (said at the start and in the final "
            "summary), e.g. `package://demo/corpus_sample.jsonl.gz`. Unset: a missing `dataset_path` is an error."
        },
    )
    dataset_text_field: str = field(default="text", metadata={"help": "Field holding the document text."})
    dataset_split: str = field(default="train", metadata={"help": "Split, for `datasets` names."})
    seq_length: int = field(default=4096, metadata={"help": "Tokens per packed training sequence (the paper: 4096)."})
    tokenized_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where tokenized corpora are cached (default: `<output_dir>/tokenized`)."},
    )
    validation_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Hold out this fraction of the documents for validation: a document is held out iff the "
            "BLAKE2b hash of its text falls below it (the same split for any sharding, order or number of "
            "processes; never trained on). Default 0: off, so a run trains on every document unless it asks, and "
            "a small corpus never comes out with an empty split. Evaluated at the end, and every `eval_steps` with "
            "`eval_strategy: steps`: eval_loss and eval_bits_per_byte."
        },
    )
    validation_path: str | None = field(
        default=None,
        metadata={
            "help": "A separate validation source (same forms as `dataset_path`), instead of validation_fraction; "
            "training leaves out its documents where the corpus has them too."
        },
    )
    # Typed `list[str]` for the command line (each a JSON object); the YAML gives mappings, kept as given (parsed by
    # deepseek_hf.training.annealing.parse_anneal_sources, checked here).
    anneal_sources: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Data annealed into the end of pretraining (paper section 5.1): a list of {path, share, "
            "start_fraction, format, text_field, name}. Each source has `share` of the rows from `start_fraction` "
            "of the token budget on (null: where the LR schedule's last stage starts, 0.9 of the multi-step "
            "default); format: text (documents, as dataset_path) or alpaca / messages / sharegpt / auto "
            "(instruction data, rendered as `User: ...\\n\\nAssistant: ...` documents). The shares sum to < 1."
        },
    )
    max_validation_tokens: int = field(
        default=2**20,
        metadata={
            "help": "Score at most this many validation tokens per evaluation (whole documents, taken in hash "
            "order); bounds the cost. The paper's IsoFLOP study used 100M."
        },
    )

    def __post_init__(self):
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.validation_fraction and self.validation_path is not None:
            raise ValueError(
                f"give validation_fraction ({self.validation_fraction}) or validation_path "
                f"({self.validation_path!r}), not both"
            )
        if self.max_validation_tokens <= 0:
            raise ValueError(f"max_validation_tokens must be positive, got {self.max_validation_tokens}")
        parse_anneal_sources(self.anneal_sources)  # a bad entry fails at parse time, naming the key or value


@dataclass
class PretrainModelArguments:
    """The model to train from scratch (a preset and/or a config JSON, plus overrides) and its tokenizer."""

    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer folder (e.g. trained by `deepseek-hf tokenizer train`)."}
    )
    model_preset: str | None = field(
        default=None, metadata={"help": "A `DeepseekLLMConfig` preset: deepseek-llm-7b, deepseek-llm-67b, ..."}
    )
    model_config: str | None = field(
        default=None, metadata={"help": "A model config.json (or a folder with one); overrides the preset's fields."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated `key=value` overrides of the model config (transformers' run_clm.py idiom), "
            "e.g. `num_hidden_layers=2,hidden_size=64`. `vocab_size` defaults to padded_vocab_size(len(tokenizer))."
        },
    )
    attn_implementation: str | None = field(
        default="sdpa", metadata={"help": "Attention kernel: sdpa, eager, flash_attention_2 (GPU, optional extra)."}
    )


@dataclass
class PretrainConfig(TrainingArguments):
    """`TrainingArguments` with the paper's defaults, token budgets, the scaling laws and the token-based schedule.

    `lr_scheduler_type` also accepts `multi_step` (the paper's, default) and `cosine`, both stepped by tokens
    (see `deepseek_hf.training.schedules`); their options go in `lr_scheduler_kwargs` (`milestones`, `factors`;
    `min_lr_ratio`). Any other transformers scheduler name uses transformers' step-based scheduler.
    """

    # --- run length, batch size and learning rate (resolved by deepseek_hf.training.plan) ---
    max_tokens: float | None = field(
        default=None, metadata={"help": "Token budget D of the whole run (the paper: 2e12). Alternative to max_steps."}
    )
    compute_budget: float | None = field(
        default=None,
        metadata={
            "help": "Compute budget C in FLOPs (C = M * D, M from the model config); sets D and, if not "
            "given, the batch size and learning rate from the scaling laws (paper section 3)."
        },
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Sequences per optimizer step over all processes (Table 2: 2304 for 7B); sets "
            "gradient_accumulation_steps."
        },
    )
    batch_size_tokens: int | None = field(
        default=None, metadata={"help": "Tokens per optimizer step; an alternative to global_batch_size."}
    )
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate (Table 2: 4.2e-4 for 7B). Unset: from the scaling law of the budget."},
    )
    # --- the paper's optimizer and schedule as defaults ---
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1 (paper: 0.9)."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2 (paper: 0.95)."})
    weight_decay: float = field(
        default=0.1, metadata={"help": "AdamW weight decay (paper: 0.1); not applied to norms and biases."}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (paper: 1.0)."})
    warmup_steps: float = field(default=PAPER_WARMUP_STEPS, metadata={"help": "Linear warm-up steps (paper: 2000)."})
    lr_scheduler_type: str = field(
        default="multi_step",
        metadata={"help": "multi_step (paper), cosine (both token-based), or any transformers scheduler name."},
    )
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision; default: on where the GPU supports it, else fp32."}
    )
    restart_optimizer: bool = field(
        default=False,
        metadata={
            "help": "Resume the checkpoint's weights and LR schedule with a fresh optimizer (its state, present or "
            "not, is not loaded). Without it, a checkpoint lacking the optimizer state is an error. Give it for the "
            "one resume that needs it: the next checkpoints hold an optimizer state again."
        },
    )
    # --- outputs ---
    save_stage1_checkpoint: bool = field(
        default=True,
        metadata={
            "help": "Save `stage1-checkpoint-<step>` at the first LR milestone (80%% of the tokens), the "
            "checkpoint that a longer run can continue from."
        },
    )
    plot_loss_curve: bool = field(
        default=True, metadata={"help": "Save `loss_curve.png` (loss and LR, schedule phases marked) at the end."}
    )
    report_to: None | str | list[str] = field(
        default="auto",
        metadata={"help": "Trackers; `auto` = tensorboard and/or trackio when installed, else none."},
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})
    save_steps: float = field(default=500, metadata={"help": "Checkpoint every N optimizer steps."})
    include_num_input_tokens_seen: str | bool = field(
        default=True, metadata={"help": "Count the tokens seen (logged as num_input_tokens_seen)."}
    )

    def __post_init__(self):
        if self.bf16 is None:
            self.bf16 = bool(not self.use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        if self.report_to == "auto":
            from transformers.integrations import is_tensorboard_available, is_trackio_available

            self.report_to = [
                name
                for name, available in (
                    ("tensorboard", is_tensorboard_available()),
                    ("trackio", is_trackio_available()),
                )
                if available
            ] or "none"
        # TrainingArguments validates `lr_scheduler_type` against transformers' names; ours are token-based and
        # built by PretrainTrainer.create_scheduler, so hide them from that check.
        token_schedule = self.lr_scheduler_type if self.lr_scheduler_type in SCHEDULES else None
        if token_schedule:
            self.lr_scheduler_type = "constant"
        super().__post_init__()
        if token_schedule:
            self.lr_scheduler_type = token_schedule
        for name in ("max_tokens", "compute_budget"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"`{name}` must be positive, got {value}")
        for name in ("global_batch_size", "batch_size_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate}")
        self._check_trackers()

    def _check_trackers(self) -> None:
        """A tracker named in `report_to` must be installed: say which package, before any work is done."""
        import transformers.integrations as integrations

        for name in self.report_to or ():
            check, install = _TRACKERS.get(name, (None, None))
            if check is not None and not getattr(integrations, check)():
                raise ValueError(
                    f"report_to {name!r}: {name} is not installed; {install} (or report_to: auto, the trackers "
                    "that are installed, or none)"
                )

    @property
    def uses_token_schedule(self) -> bool:
        return self.lr_scheduler_type in SCHEDULES
