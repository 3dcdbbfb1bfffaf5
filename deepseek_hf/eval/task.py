"""`PerplexityMultipleChoiceTask`: lm-eval's multiple-choice task with every normalization the paper needs.

The DeepSeek LLM paper scores 14 benchmarks "based on perplexity": the likelihood of every option is computed and the
best option wins, length-normalized for most benchmarks and with unconditional normalization for ARC and OpenBookQA
(P §5.1). lm-eval's `ConfigurableTask` already computes `acc`, `acc_norm` (characters), `acc_bytes` and
`acc_mutual_info` (BOS-only context); this subclass delegates those to lm-eval unchanged and adds

- `acc_tokens`: divided by the option's token count, counted exactly as the model scores it (lm-eval's own split of
  `encode(context + option)` after `encode(context)`), with the model's tokenizer found in the task metadata
  (`pretrained=` / `tokenizer=` of `--model_args`, which lm-eval merges into every task's metadata);
- `acc_uncond`: minus the option's log-likelihood after the answer prompt alone (`metadata.answer_prompt`, "Answer:"
  or "答案："), GPT-3's unconditional normalization; lm-eval's `acc_mutual_info` uses BOS alone instead.

Tasks select it with `class: !function deepseek_hf.eval.task.PerplexityMultipleChoiceTask`; `metadata.headline_metric`
names the metric the paper reports for the task.

Chat-format runs (lm-eval's `apply_chat_template`) keep the template's own text between its generation prompt and the
answer in every continuation, and score `acc_uncond` after the answer prompt rendered as a chat turn: `chat.py` says
why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from .chat import answer_delimiter, unconditional_context
from .metrics import TOKEN_NORMALIZED, UNCONDITIONAL

DEFAULT_ANSWER_PROMPT = "Answer:"


class MissingTokenizerError(ValueError):
    """`acc_tokens` needs the model's tokenizer and none was named in the task metadata."""


class PerplexityMultipleChoiceTask(ConfigurableTask):
    """A `multiple_choice` task whose `metric_list` may also hold `acc_tokens` and `acc_uncond`."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs) -> None:
        config = {key: value for key, value in (config or {}).items() if key != "class"}
        super().__init__(config=config, **kwargs)
        if self.OUTPUT_TYPE != "multiple_choice":
            raise ValueError(f"{self.config.task}: {type(self).__name__} needs `output_type: multiple_choice`.")
        metadata = self.config.metadata or {}
        self.answer_prompt: str = metadata.get("answer_prompt", DEFAULT_ANSWER_PROMPT)
        self.headline_metric: str | None = metadata.get("headline_metric")
        if self.headline_metric is not None and self.headline_metric not in self._metric_fn_list:
            raise ValueError(
                f"{self.config.task}: headline_metric {self.headline_metric!r} is not in its metric_list "
                f"({', '.join(self._metric_fn_list)})."
            )
        self._tokenizer = None
        self._option_tokens: dict[int, list[int]] = {}  # doc_id -> token count of each option
        self._doc_id: int | None = None
        self._context_length: tuple[str | None, int] = (None, 0)
        self._system_instruction: str | None = None  # of the run building requests (`fewshot_context` sees it)
        self._chat_delimiter: tuple[object, str | None] | None = None  # (chat template callable, its delimiter)

    # ------------------------------------------------------------------------------------------------------------
    # Requests: lm-eval's (conditional + BOS-only), then the answer-prompt ones
    # ------------------------------------------------------------------------------------------------------------
    def fewshot_context(self, doc: dict, num_fewshot: int, **kwargs) -> str | list[str]:
        """lm-eval's context; remembers the run's system instruction for the chat-format unconditional context."""
        self._system_instruction = kwargs.get("system_instruction")
        return super().fewshot_context(doc, num_fewshot=num_fewshot, **kwargs)

    def construct_requests(self, doc: dict, ctx: str | list[str], **kwargs) -> list[Instance]:
        doc_id = kwargs["metadata"][1]
        chat_template = kwargs.get("chat_template") if kwargs.get("apply_chat_template") else None
        requests = super().construct_requests(doc, ctx, **kwargs)
        if chat_template is not None and not self.config.gen_prefix:
            delimiter = self._answer_delimiter(chat_template)
            for request in requests:  # lm-eval's chat-mode continuation is the bare option (or target)
                context, continuation, *rest = request.arguments
                request.arguments = (context, delimiter + continuation, *rest)
        continuations = [request.arguments[1] for request in requests[: self._num_options(doc)]]
        if TOKEN_NORMALIZED in self._metric_fn_list:
            contexts = ctx if self.multiple_input else [ctx] * len(continuations)
            self._option_tokens[doc_id] = [
                self._count_continuation_tokens(context, continuation)
                for context, continuation in zip(contexts, continuations)
            ]
        if UNCONDITIONAL in self._metric_fn_list:
            template = requests[0]
            context = self.answer_prompt
            if chat_template is not None:
                context = unconditional_context(
                    chat_template, self.answer_prompt, self._system_instruction, self.doc_to_prefix(doc)
                )
            requests += [
                Instance(
                    request_type="loglikelihood",
                    doc=doc,
                    arguments=(context, continuation),
                    idx=len(requests) + index,
                    metadata=template.metadata,
                )
                for index, continuation in enumerate(continuations)
            ]
        return requests

    def doc_iterator(self, **kwargs):
        """Remember which document `process_results` is called for (lm-eval passes the document, not its id)."""
        for doc_id, doc in super().doc_iterator(**kwargs):
            self._doc_id = doc_id
            yield doc_id, doc

    # ------------------------------------------------------------------------------------------------------------
    # Scoring: lm-eval's metrics unchanged, plus acc_tokens and acc_uncond
    # ------------------------------------------------------------------------------------------------------------
    def process_results(self, doc: dict, results: list[tuple[float, bool]]) -> dict[str, float]:
        n = self._num_options(doc)
        with_bos = "acc_mutual_info" in self._metric_fn_list
        lm_eval_part = results[: 2 * n if with_bos else n]
        metrics = super().process_results(doc, lm_eval_part)
        metrics = {name: value for name, value in metrics.items() if name in self._metric_fn_list}

        lls = np.array([ll for ll, _ in results[:n]])
        gold = self._gold_index(doc)
        if TOKEN_NORMALIZED in self._metric_fn_list:
            counts = self._option_tokens.get(self._doc_id)
            if counts is None or len(counts) != n:
                raise RuntimeError(
                    f"{self.config.task}: no token counts for document {self._doc_id}; acc_tokens needs the requests "
                    "built in this process (lm-eval's --cache_requests is not supported for it)."
                )
            metrics[TOKEN_NORMALIZED] = float(np.argmax(lls / np.maximum(counts, 1)) == gold)
        if UNCONDITIONAL in self._metric_fn_list:
            offset = 2 * n if with_bos else n
            lls_answer_prompt = np.array([ll for ll, _ in results[offset : offset + n]])
            if len(lls_answer_prompt) != n:
                raise ValueError(
                    f"{self.config.task}: expected {n} answer-prompt results, got {len(results) - offset}."
                )
            metrics[UNCONDITIONAL] = float(np.argmax(lls - lls_answer_prompt) == gold)
        return metrics

    # ------------------------------------------------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------------------------------------------------
    def _answer_delimiter(self, chat_template) -> str:
        """`chat.answer_delimiter` of this run's template, worked out once ("" where the template has none)."""
        if self._chat_delimiter is None or self._chat_delimiter[0] != chat_template:
            self._chat_delimiter = (chat_template, answer_delimiter(chat_template))
        return self._chat_delimiter[1] or ""

    def _num_options(self, doc: dict) -> int:
        return len(self.doc_to_choice(doc))

    def _gold_index(self, doc: dict) -> int:
        gold = self.doc_to_text(doc) if self.multiple_input else self.doc_to_target(doc)
        if isinstance(gold, str):
            choices = self.doc_to_choice(doc)
            gold = choices.index(gold) if gold in choices else int(gold)
        return int(gold)

    def _count_continuation_tokens(self, context: str, continuation: str) -> int:
        """Tokens of `continuation` as lm-eval's causal models score it: trailing context spaces move to the
        continuation, the pair is encoded whole and split after the context's own encoding (`TemplateLM`)."""
        tokenizer = self._get_tokenizer()
        if not context:  # lm-eval scores an empty context after the prefix (BOS) token alone
            return len(tokenizer.encode(continuation, add_special_tokens=False))
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        if self._context_length[0] != context:  # the options of a document share their context: encode it once
            self._context_length = (context, len(tokenizer.encode(context, add_special_tokens=False)))
        return len(tokenizer.encode(context + continuation, add_special_tokens=False)) - self._context_length[1]

    def _get_tokenizer(self):
        if self._tokenizer is None:
            metadata = self.config.metadata or {}
            source = metadata.get("tokenizer") or metadata.get("pretrained")
            if source is None:
                raise MissingTokenizerError(
                    f"{self.config.task}: acc_tokens counts each option's tokens with the model's tokenizer; name it "
                    "with `--model_args pretrained=PATH` (or `tokenizer=PATH`), or in Python with "
                    "`TaskManager(include_path=..., metadata={'tokenizer': PATH_OR_TOKENIZER})`."
                )
            if isinstance(source, str):
                from transformers import AutoTokenizer

                trust = str(metadata.get("trust_remote_code", False)).lower() == "true"
                source = AutoTokenizer.from_pretrained(source, trust_remote_code=trust)
            elif not hasattr(source, "encode"):  # e.g. a model object passed as `pretrained=`
                source = getattr(source, "tokenizer", None) or _raise_no_tokenizer(self.config.task, source)
            self._tokenizer = source
        return self._tokenizer


def _raise_no_tokenizer(task: str, source: Any):
    raise MissingTokenizerError(
        f"{task}: `pretrained` in the task metadata is a {type(source).__name__}, not a path; pass the tokenizer "
        "itself with `TaskManager(metadata={'tokenizer': tokenizer})`."
    )
