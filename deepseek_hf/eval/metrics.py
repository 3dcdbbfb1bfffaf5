"""The two multiple-choice metrics that lm-eval 0.4.13 lacks, registered with lm-eval's own metric registry.

lm-eval already has `acc` (raw log-likelihood), `acc_norm` (divided by the option's characters), `acc_bytes`
(divided by its UTF-8 bytes) and `acc_mutual_info` (minus the option's log-likelihood after BOS alone). The paper's
two normalizations need two more:

- `acc_tokens`: log-likelihood divided by the option's token count, i.e. the option with the lowest perplexity, which
  is what "perplexity-based" evaluation literally computes (P §5.1; the divisor is not stated in the paper).
- `acc_uncond`: log-likelihood minus the option's log-likelihood after an answer prompt alone ("Answer:" in English,
  "答案：" in Chinese), GPT-3's unconditional normalization (Brown et al. 2020, §2), used for ARC and OpenBookQA.

Both are per-document 0/1 values averaged over the task, like `acc`; the task class
(`deepseek_hf.eval.task.PerplexityMultipleChoiceTask`) computes them in `process_results`.
"""

import lm_eval.api.metrics  # noqa: F401  (registers the `mean` aggregation first)
from lm_eval.api.registry import register_metric

TOKEN_NORMALIZED = "acc_tokens"
UNCONDITIONAL = "acc_uncond"

# Every normalization the tasks report, in the order of their metric lists (lm-eval's names where they exist).
ALL_METRICS = ("acc", "acc_norm", "acc_bytes", TOKEN_NORMALIZED, UNCONDITIONAL, "acc_mutual_info")

for _name in (TOKEN_NORMALIZED, UNCONDITIONAL):
    register_metric(metric=_name, higher_is_better=True, output_type="multiple_choice", aggregation="mean")(
        lambda items: items  # a passthrough, as lm-eval's own `acc_norm` / `acc_bytes`
    )
