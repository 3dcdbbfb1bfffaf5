"""`--model deepseek`: lm-eval's `hf` model with the same per-request log-likelihoods for far less work.

`DeepseekLM` subclasses `HFLM` (same `--model_args`, `--device`, tokenization, `loglikelihood_rolling`,
`generate_until`) and replaces `_loglikelihood_tokens`. Every request is fed exactly the tokens `hf` feeds,
`(context_enc + continuation_enc)[-(max_length + 1):][:-1]`, and scored by the same rule (sum of the continuation's
log-softmax, greedy = per-token argmax), but three redundancies of `hf` are removed:

1. Logits only where they are scored. The decoder runs to hidden states; only the positions that predict a
   continuation token go through the output head, in float32 chunks (`deepseek_hf.modeling.token_log_probs`):
   no `[batch, seq, vocab]` logits. With a 102400 vocabulary the head is most of a small model's FLOPs.
2. An item's context run once. Requests whose tokens before the continuation (the *stem*) agree are one item; one
   row holds the stem followed by every option's tokens (the *branches*), with a 4-D boolean "tree" mask (each
   branch sees the stem and itself, causally) and position ids that restart every branch at the stem's end.
   Identical (stem, continuation) requests, e.g. the unconditional `("", " A")` of every document, are scored once.
3. A shared few-shot prefix run once. Stems are sorted and adjacent ones clustered while their common token prefix
   stays long: a stem joins the cluster if the cluster's common prefix with it is >= `MIN_PREFIX` (16) tokens and
   keeps >= `PREFIX_KEEP` (3/4) of the cluster's common prefix so far (so one item of another task sharing a
   short preamble starts a new cluster instead of shrinking the prefix of all others). The common leading tokens
   of the full encodings (not the prefix tokenized alone, which ends differently) minus at least one stem token
   are run once at batch 1 into a `DynamicCache`; each forward of the cluster's rows reads those keys/values
   expanded to its batch, through a cache layer that stores nothing (so no forward changes it and none holds
   more than one layer's expanded copy).

Batching: `batch_size` rows (items) per forward, longest first, within one prefix cluster; `auto` uses `hf`'s
batch-size detection once. A row never exceeds `max_length` tokens (prefix included); an item with more branches
than fit is split over several rows.

Fallbacks (each said in a log line): the tree mask needs an attention that takes a custom 4-D mask (transformers'
`create_causal_mask` returns a 4-D mask unchanged; `eager` and `sdpa` then apply it) and full causal attention.
Flash/flex attention or a sliding window use the mask-free path: one right-padded row per (stem, multi-token
option), single-token options read from the stem's last position, no prefix cache, i.e. `hf`'s own model inputs
with points 1 and the dedup of 2. At the first call a probe (a few tokens, two stems with a shared prefix, options
of 1-3 tokens) compares the chosen path with `hf`'s full-logits computation; if it disagrees (an architecture
that scales or soft-caps its logits, ignores `position_ids`, ...) the next path is tried, down to `hf`'s own
`_loglikelihood_tokens`. Seq2seq models use `hf`'s code.

Where results differ from `hf` on purpose: empty continuations (which `hf` rejects with an assertion) score
`(0.0, True)`; and when two requests feed the same tokens split at different points (`ctx + cont` equal, the
continuations of different lengths), lm-eval 0.4.13's `hf` serves both from one forward but reads the shorter
continuation's log-probs from the first positions of the longer one's slice (only its greedy check takes the
trailing slice); this scorer gives both their exact values.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from torch import nn
from tqdm import tqdm
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

from deepseek_hf.modeling import token_log_probs

__all__ = ["MIN_PREFIX", "PREFIX_KEEP", "DeepseekLM", "cluster_by_prefix"]

logger = logging.getLogger(__name__)

MIN_PREFIX = 16  # tokens: below this a batch-1 prefix pass saves less than it costs in scheduling
PREFIX_KEEP = 0.75  # a stem may shrink its cluster's common prefix to no less than this fraction
TREE_ATTENTION = ("eager", "sdpa")  # attention implementations that apply a custom 4-D mask as given
BRANCH_BUDGET = 4  # a tree row's branch tokens <= this x max(its stem part, its longest branch); see `_pack`
HEAD_CHUNK_ELEMENTS = 2**24  # float32 logits per output-head chunk (64 MiB): 163 rows of a 102400 vocabulary

Stem = tuple[int, ...]


def _common_prefix(a: Stem, b: Stem) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def cluster_by_prefix(
    stems: list[Stem], min_prefix: int = MIN_PREFIX, keep: float = PREFIX_KEEP
) -> list[tuple[int, list[Stem]]]:
    """Groups stems that share a long leading token run: `[(prefix_len, stems)]`, `prefix_len` 0 for stems that
    share none worth caching. Sorted stems make a cluster's common prefix the minimum over adjacent pairs, so one
    pass suffices; `prefix_len` leaves at least one token of every stem outside the prefix (it has to produce the
    hidden state that predicts the continuation)."""
    stems = sorted(set(stems))
    clusters: list[tuple[int | None, list[Stem]]] = []
    shared: int | None = None  # common prefix of the open cluster (None while it has one stem)
    for index, stem in enumerate(stems):
        if index:
            candidate = _common_prefix(stems[index - 1], stem)
            if shared is not None:
                candidate = min(candidate, shared)
            if candidate >= min_prefix and (shared is None or candidate >= keep * shared):
                clusters[-1][1].append(stem)
                shared = candidate
                continue
            clusters[-1] = (shared, clusters[-1][1])
        clusters.append((None, [stem]))
        shared = None
    clusters[-1:] = [(shared, clusters[-1][1])] if clusters else []
    result = []
    for common, members in clusters:
        prefix = 0 if common is None else min(common, min(map(len, members)) - 1)
        result.append((prefix if prefix >= min_prefix else 0, members))
    return result


class _SharedPrefixLayer(DynamicLayer):
    """One layer of a cluster's prefix keys/values (batch 1), read by every forward of the cluster: `update`
    returns them expanded to the forward's batch and followed by its own keys/values, and stores nothing. So the
    cache is never mutated (one serves all forwards), and a forward holds one layer's `[batch, heads, prefix +
    row, dim]` concatenation at a time rather than all layers' (the whole batch's KV cache)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        batch = key_states.shape[0]
        keys = torch.cat([self.keys.expand(batch, -1, -1, -1), key_states], dim=-2)
        values = torch.cat([self.values.expand(batch, -1, -1, -1), value_states], dim=-2)
        return keys, values


@dataclass
class _Row:
    """One sequence of a forward: `stem[prefix:]` then each branch's tokens but its last (the last is only
    predicted). `tree` rows hold any branches; mask-free rows at most one multi-token branch."""

    stem: Stem
    branches: list[Stem]
    prefix: int

    @property
    def length(self) -> int:
        return len(self.stem) - self.prefix + sum(len(branch) - 1 for branch in self.branches)


@register_model("deepseek")
class DeepseekLM(HFLM):
    """`hf` with continuation-only logits, one pass per item's context and a cached few-shot prefix (module
    docstring). Results equal `hf`'s up to float rounding (float32 log-softmax), in request order."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._path: str | None = None  # "tree", "plain" or "hf", chosen at the first call
        self._auto_rows: int | None = None
        # work done: decoder tokens (padding included), head positions, forwards, rows, prefix clusters, requests
        self.work: defaultdict[str, int] = defaultdict(int)

    # -------------------------------------------------------------------------------------------------------------
    # lm-eval entry point
    # -------------------------------------------------------------------------------------------------------------
    def _loglikelihood_tokens(
        self,
        requests: list[tuple[tuple[str, str], list[int], list[int]]],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        if self.backend != "causal" or self._choose_path() == "hf":
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        keys = []
        for _, context_enc, continuation_enc in requests:
            assert len(context_enc) > 0
            assert len(continuation_enc) <= self.max_length
            if not continuation_enc:
                keys.append(None)
                continue
            full = (context_enc + continuation_enc)[-(self.max_length + 1) :]
            keys.append((tuple(full[: -len(continuation_enc)]), tuple(continuation_enc)))
        demand = defaultdict(int)
        for key in keys:
            if key is not None:
                demand[key] += 1
        pbar = tqdm(
            total=len(requests),
            disable=(disable_tqdm or (self.rank != 0)),
            desc="Running loglikelihood requests",
        )
        pbar.update(keys.count(None))
        scores = self._score(list(demand), self._path, self._rows_per_forward(override_bs), pbar, demand)
        pbar.close()
        results = []
        for (request_str, _, _), key in zip(requests, keys):
            answer = (0.0, True) if key is None else scores[key]
            results.append(answer)
            if request_str is not None:  # None: a loglikelihood_rolling window (cached per document there)
                self.cache_hook.add_partial("loglikelihood", request_str, answer)
        self.work["requests"] += len(requests)
        self.work["unique_requests"] += len(demand)
        return results

    def _rows_per_forward(self, override_bs: int | None) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        if override_bs:
            return override_bs
        if self._auto_rows is None:  # rows are at most max_length tokens, which is what `hf` probes
            self._auto_rows = self._detect_batch_size()
        return self._auto_rows

    # -------------------------------------------------------------------------------------------------------------
    # scoring
    # -------------------------------------------------------------------------------------------------------------
    def _score(
        self,
        keys: list[tuple[Stem, Stem]],
        path: str,
        rows_per_forward: int,
        pbar: tqdm | None = None,
        demand: dict | None = None,
    ) -> dict[tuple[Stem, Stem], tuple[float, bool]]:
        """(stem, continuation) -> (log-likelihood, is_greedy) over the rows of `path` ("tree" or "plain")."""
        items: dict[Stem, list[Stem]] = defaultdict(list)
        for stem, continuation in keys:
            items[stem].append(continuation)
        clusters = cluster_by_prefix(list(items)) if path == "tree" else [(0, list(items))]
        groups: dict[tuple[Stem, int], list[_Row]] = defaultdict(list)  # rows sharing one prefix, by prefix
        for prefix, stems in clusters:
            for stem in stems:
                rows = self._pack(stem, items[stem], prefix, tree=path == "tree")
                groups[(stem[:prefix], prefix)].extend(rows)
        scores = {}
        for (prefix_tokens, prefix), rows in groups.items():
            cache = self._run_prefix(prefix_tokens) if prefix else None
            rows.sort(key=lambda row: -row.length)
            for start in range(0, len(rows), rows_per_forward):
                batch = rows[start : start + rows_per_forward]
                batch_scores = self._forward_rows(batch, cache, tree=path == "tree")
                scores.update(batch_scores)
                if pbar is not None:
                    pbar.update(sum(demand[key] for key in batch_scores))
        return scores

    def _pack(self, stem: Stem, branches: list[Stem], prefix: int, tree: bool) -> list[_Row]:
        """Splits an item's branches over rows. Tree rows: up to `max_length` tokens, and branch tokens up to
        `BRANCH_BUDGET` times the longer of the row's stem part and its longest branch, so that a short stem with
        many options (the BOS of 64 deduplicated unconditional requests) does not become one long row padding its
        whole batch. Mask-free rows: one multi-token branch each (single-token branches cost no tokens and ride
        along with the first row)."""
        if not tree:
            single = [branch for branch in branches if len(branch) == 1]
            multi = [branch for branch in branches if len(branch) > 1]
            if not multi:
                return [_Row(stem, single, 0)]
            return [_Row(stem, [branch] + (single if i == 0 else []), 0) for i, branch in enumerate(multi)]
        suffix, rows = len(stem) - prefix, []
        for branch in sorted(branches, key=len, reverse=True):  # longest first: rows[-1].branches[0] is the longest
            if rows:
                row = rows[-1]
                fits = prefix + row.length + len(branch) - 1 <= self.max_length
                branch_tokens = row.length - suffix + len(branch) - 1
                if fits and branch_tokens <= BRANCH_BUDGET * max(suffix, len(row.branches[0])):
                    row.branches.append(branch)
                    continue
            rows.append(_Row(stem, [branch], prefix))
        return rows

    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.mixed_precision_dtype,
            enabled=self.mixed_precision_dtype is not None,
        )

    @torch.no_grad()
    def _run_prefix(self, tokens: Stem) -> Cache:
        """Keys/values of a cluster's shared prefix, run once at batch 1, as a cache every forward of the cluster
        reads."""
        cache = DynamicCache()
        ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        positions = torch.arange(len(tokens), device=self.device)[None]
        with self._autocast():
            self.model.get_decoder()(input_ids=ids, position_ids=positions, cache=cache, use_cache=True)
        self.work["decoder_tokens"] += len(tokens)
        self.work["forwards"] += 1
        self.work["prefix_clusters"] += 1
        return Cache(layers=[_SharedPrefixLayer(layer.keys, layer.values) for layer in cache.layers])

    @torch.no_grad()
    def _forward_rows(
        self, rows: list[_Row], prefix_cache: Cache | None, tree: bool
    ) -> dict[tuple[Stem, Stem], tuple[float, bool]]:
        """One forward of `rows` (right-padded), the output head at the scored positions only."""
        batch, width = len(rows), max(row.length for row in rows)
        prefix = rows[0].prefix
        ids = torch.zeros((batch, width), dtype=torch.long)  # padding id 0 (as hf's): masked, or after the row
        positions = torch.zeros((batch, width), dtype=torch.long)
        segments = torch.full((batch, width), -1, dtype=torch.long)  # 0 stem, b > 0 branch b, -1 padding
        # each scored position (flat index) reads K targets; entry -> (position row, target column, branch index)
        flat, targets, entry_rows, entry_cols, entry_branch, branch_keys = [], [], [], [], [], []
        for r, row in enumerate(rows):
            suffix = row.stem[prefix:]
            ids[r, : len(suffix)] = torch.tensor(suffix)
            positions[r, : len(suffix)] = torch.arange(prefix, len(row.stem))
            segments[r, : len(suffix)] = 0
            last_stem = len(flat)
            flat.append(r * width + len(suffix) - 1)
            targets.append([branch[0] for branch in row.branches])
            offset = len(suffix)
            for b, branch in enumerate(row.branches):
                branch_id = len(branch_keys)
                branch_keys.append((row.stem, branch))
                entry_rows.append(last_stem)
                entry_cols.append(b)
                entry_branch.append(branch_id)
                inputs = branch[:-1]
                if inputs:
                    ids[r, offset : offset + len(inputs)] = torch.tensor(inputs)
                    positions[r, offset : offset + len(inputs)] = torch.arange(len(inputs)) + len(row.stem)
                    segments[r, offset : offset + len(inputs)] = b + 1
                for j, target in enumerate(branch[1:]):
                    entry_rows.append(len(flat))
                    entry_cols.append(0)
                    entry_branch.append(branch_id)
                    flat.append(r * width + offset + j)
                    targets.append([target])
                offset += len(inputs)
        k = max(map(len, targets))
        targets = torch.tensor([t + t[:1] * (k - len(t)) for t in targets], device=self.device)

        kwargs = {}
        if tree:
            kwargs["attention_mask"] = self._tree_mask(segments.to(self.device), prefix)
            kwargs["position_ids"] = positions.to(self.device)
            if prefix_cache is not None:
                kwargs.update(cache=prefix_cache, use_cache=True)
        kwargs.setdefault("use_cache", False)  # no cache to build for a one-shot forward
        with self._autocast():
            hidden = self.model.get_decoder()(input_ids=ids.to(self.device), **kwargs).last_hidden_state
            hidden = hidden.reshape(batch * width, -1).index_select(0, torch.tensor(flat, device=self.device))
            log_probs, is_argmax = self._head_log_probs(hidden, targets)
        entry_rows = torch.tensor(entry_rows, device=self.device)
        entry_cols = torch.tensor(entry_cols, device=self.device)
        entry_branch = torch.tensor(entry_branch, device=self.device)
        totals = torch.zeros(len(branch_keys), dtype=torch.float32, device=self.device)
        totals.index_add_(0, entry_branch, log_probs[entry_rows, entry_cols])
        misses = torch.zeros(len(branch_keys), dtype=torch.long, device=self.device)
        misses.index_add_(0, entry_branch, (~is_argmax[entry_rows, entry_cols]).long())
        self.work["decoder_tokens"] += batch * width
        self.work["head_positions"] += len(flat)
        self.work["forwards"] += 1
        self.work["rows"] += batch
        return {
            key: (total, miss == 0)
            for key, total, miss in zip(branch_keys, totals.tolist(), misses.tolist(), strict=True)
        }

    def _head_log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.model.get_output_embeddings()
        chunk = max(1, HEAD_CHUNK_ELEMENTS // head.weight.shape[0])
        return token_log_probs(hidden, head.weight, targets, chunk_size=chunk, bias=head.bias)

    def _tree_mask(self, segments: torch.Tensor, prefix: int) -> torch.Tensor:
        """`[batch, 1, width, prefix + width]`: everyone sees the prefix; within the row a query sees earlier stem
        tokens and earlier tokens of its own branch (padding sees itself, so no softmax row is empty). Boolean for
        sdpa; additive (0 / dtype min) for eager, which adds the mask to the scores."""
        (batch, width), device = segments.shape, segments.device
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        key, query = segments[:, None, :], segments[:, :, None]
        local = causal & (key >= 0) & ((key == 0) | (key == query))
        local |= torch.eye(width, dtype=torch.bool, device=device)
        mask = torch.cat([torch.ones(batch, width, prefix, dtype=torch.bool, device=device), local], dim=-1)[:, None]
        if self.model.config._attn_implementation == "eager":
            dtype = self.model.get_input_embeddings().weight.dtype
            if self.mixed_precision_dtype is not None:
                dtype = self.mixed_precision_dtype
            return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, torch.finfo(dtype).min)
        return mask

    # -------------------------------------------------------------------------------------------------------------
    # path choice and self-check
    # -------------------------------------------------------------------------------------------------------------
    def _choose_path(self) -> str:
        if self._path is not None:
            return self._path
        config = self.model.config
        attention = config._attn_implementation
        sliding = getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True)
        candidates = ["tree", "plain", "hf"]
        if attention not in TREE_ATTENTION or sliding:
            reason = f"attention {attention!r}" if attention not in TREE_ATTENTION else "sliding-window attention"
            logger.warning(  # a warning, so it shows under lm-eval, which configures only its own loggers
                "deepseek scorer: %s takes no custom 4-D mask; using the mask-free path (continuation-only logits, "
                "no shared contexts or prefix cache)",
                reason,
            )
            candidates.remove("tree")
        head = self.model.get_output_embeddings()
        if not isinstance(head, nn.Linear):
            logger.warning("deepseek scorer: output head %s is not an nn.Linear; using hf's scoring", type(head))
            candidates = ["hf"]
        for path in candidates[:-1]:
            problem = self._probe(path)
            if problem is None:
                break
            logger.warning(
                "deepseek scorer: the %s path disagrees with hf on a probe (%s); falling back", path, problem
            )
        else:
            path = "hf"
        self._path = path
        logger.info("deepseek scorer: using the %s path (%s attention)", path, attention)
        return path

    def _probe(self, path: str) -> str | None:
        """Scores a few made-up requests on `path` and with `hf`'s full logits; returns what differs, or None."""
        length = MIN_PREFIX + 8
        if self.max_length < length + 4:
            return None  # too short a context to build a meaningful probe; trust the path
        vocab = self.model.get_input_embeddings().weight.shape[0]
        generator = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, vocab, (length + 8,), generator=generator).tolist()
        shared = tokens[: MIN_PREFIX + 4]
        keys = [
            (tuple(shared + tokens[length : length + 2]), tuple(tokens[-1:])),
            (tuple(shared + tokens[length : length + 2]), tuple(tokens[-4:-1])),
            (tuple(shared + tokens[length + 2 : length + 3]), tuple(tokens[-6:-4])),
            (tuple(shared + tokens[length + 2 : length + 3]), tuple(tokens[-7:-6])),
        ]
        work = dict(self.work)
        try:
            ours = self._score(keys, path, rows_per_forward=2)
        except Exception as error:  # an architecture whose decoder does not take these inputs
            return f"{type(error).__name__}: {error}"
        finally:  # the probe is not the caller's work
            self.work.clear()
            self.work.update(work)
        tolerance = 1e-3 if self.model.get_input_embeddings().weight.dtype == torch.float32 else 5e-2
        for stem, continuation in keys:
            ids = torch.tensor([stem + continuation[:-1]], device=self.device)
            logits = self._model_call(ids)[0, -len(continuation) :].float().log_softmax(-1)
            target = torch.tensor(continuation, device=self.device)[:, None]
            expected = logits.gather(1, target).sum().item()
            if abs(ours[(stem, continuation)][0] - expected) > tolerance * max(1.0, abs(expected)):
                return f"log-likelihood {ours[(stem, continuation)][0]:.5f} vs {expected:.5f}"
        return None
