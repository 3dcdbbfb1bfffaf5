"""`DeepseekLLMTokenizer`: the transformers tokenizer class of DeepSeek LLM (byte-level BPE, 15 special tokens).

The class adds no tokenization logic of its own: everything lives in `tokenizer.json` (pre-tokenizer, BPE, added
tokens, BOS post-processor, decoder), so a checkpoint loads with identical ids through plain transformers too
(`AutoTokenizer.from_pretrained(dir)` falls back to `TokenizersBackend` when this class is not registered). What it
adds: the padded model vocabulary size, and input with lone surrogates (which cannot be encoded as UTF-8) is
encoded with each lone surrogate replaced by U+FFFD instead of raising.

>>> from transformers import AutoTokenizer
>>> import deepseek_hf  # registers the class for `model_type: deepseek_llm`
>>> tok = AutoTokenizer.from_pretrained("path/to/tokenizer")  # doctest: +SKIP
>>> tok("Hello world").input_ids  # doctest: +SKIP
[100000, 17464, 1843]
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, processors
from tokenizers.models import BPE
from transformers import TokenizersBackend

from .pre_tokenizer import deepseek_decoder, deepseek_pre_tokenizer
from .special_tokens import ADDED_TOKENS, BOS_TOKEN, CHAT_TEMPLATE, CONTROL_TOKENS, EOS_TOKEN, NUM_SPECIAL_TOKENS
from .vocab import padded_vocab_size

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

#: The official tokenizer's context length (deepseek-llm-7b: max_position_embeddings 4096).
DEFAULT_MODEL_MAX_LENGTH = 4096


def replace_lone_surrogates(text: Any) -> Any:
    """`text` with every lone surrogate (U+D800-U+DFFF) replaced by U+FFFD; lists/tuples are handled recursively."""
    if isinstance(text, str):
        return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text
    if isinstance(text, (list, tuple)):
        return type(text)(replace_lone_surrogates(item) for item in text)
    return text


class DeepseekLLMTokenizer(TokenizersBackend):
    """DeepSeek LLM byte-level BPE tokenizer (BOS added by default, no EOS; chat template `User: ...\\n\\nAssistant:`).

    Build one with `deepseek_hf.tokenizer.train_tokenizer` or `deepseek_hf.tokenizer.tokenizer_from_gguf`, load one
    with `AutoTokenizer.from_pretrained` / `DeepseekLLMTokenizer.from_pretrained`.
    """

    # No `__init__` on purpose: transformers then loads `tokenizer.json` as saved instead of rebuilding a pipeline.
    model_input_names = ["input_ids", "attention_mask"]

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the model embedding this tokenizer is meant for (`padded_vocab_size` in `tokenizer_config.json`)."""
        saved = getattr(self, "init_kwargs", {}).get("padded_vocab_size")
        return int(saved) if saved is not None else padded_vocab_size(len(self))

    def model_config_kwargs(self) -> dict[str, int | None]:
        """The model-config fields that must agree with this tokenizer (vocabulary size and special-token ids).

        >>> config = DeepseekLLMConfig.from_preset("deepseek-llm-tiny", **tok.model_config_kwargs())  # doctest: +SKIP
        """
        return {
            "vocab_size": self.padded_vocab_size,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
        }

    def _encode_plus(self, text, text_pair=None, **kwargs):
        return super()._encode_plus(replace_lone_surrogates(text), replace_lone_surrogates(text_pair), **kwargs)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        tokenizer = super().from_pretrained(*args, **kwargs)
        # transformers 5 ignores `add_bos_token` when loading a tokenizer.json (its post-processor holds the behaviour)
        # and then reports False; read the flags back from the post-processor so they tell the truth, and so that
        # setting `add_eos_token` later rebuilds a template that still starts with BOS.
        add_bos, add_eos = _template_flags(
            tokenizer._tokenizer.post_processor, tokenizer.bos_token, tokenizer.eos_token
        )
        object.__setattr__(tokenizer, "_add_bos_token", add_bos)
        object.__setattr__(tokenizer, "_add_eos_token", add_eos)
        return tokenizer

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`save_pretrained`, plus `add_bos_token` / `add_eos_token` in `tokenizer_config.json` as the official file has.

        transformers 5 keeps that behaviour only in `tokenizer.json` and drops the flags from the config (and ignores
        them when loading one with a `tokenizer.json`); readers of the config alone (transformers 4, serving stacks,
        converters) still look for them.
        """
        files = super().save_pretrained(save_directory, *args, **kwargs)
        for file in files or ():
            if str(file).endswith("tokenizer_config.json"):
                config = json.loads(Path(file).read_text(encoding="utf-8"))
                config.update(add_bos_token=bool(self.add_bos_token), add_eos_token=bool(self.add_eos_token))
                Path(file).write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
        return files


def _template_flags(post_processor, bos_token: str | None, eos_token: str | None) -> tuple[bool, bool]:
    """Whether a `TemplateProcessing` post-processor starts a single sequence with BOS / ends it with EOS."""
    if post_processor is None:
        return False, False
    state = json.loads(post_processor.__getstate__())
    if state.get("type") != "TemplateProcessing" or not state.get("single"):
        return False, False
    single = state["single"]

    def is_special(piece, token):
        return token is not None and piece.get("SpecialToken", {}).get("id") == str(token)

    return is_special(single[0], bos_token), is_special(single[-1], eos_token)


def assemble_backend(backend: Tokenizer) -> Tokenizer:
    """Turn a byte-level BPE `tokenizers.Tokenizer` (regular tokens only) into the full DeepSeek pipeline, in place.

    Sets the pre-tokenizer and decoder, appends BOS, EOS and the 13 added tokens (ids `n`, ..., `n + 14` for `n`
    regular tokens) and the post-processor that prepends BOS.
    """
    if not isinstance(backend.model, BPE):
        raise TypeError(f"expected a BPE model, got {type(backend.model).__name__}")
    vocab = backend.get_vocab(with_added_tokens=True)
    clashes = [token for token in CONTROL_TOKENS + ADDED_TOKENS if token in vocab]
    if clashes:
        raise ValueError(f"the regular vocabulary already contains special/added tokens {clashes}")
    num_regular = backend.get_vocab_size(with_added_tokens=True)

    backend.normalizer = None
    backend.pre_tokenizer = deepseek_pre_tokenizer()
    backend.decoder = deepseek_decoder()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in CONTROL_TOKENS])
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in ADDED_TOKENS])
    bos_id = backend.token_to_id(BOS_TOKEN)
    if bos_id != num_regular or backend.get_vocab_size(with_added_tokens=True) != num_regular + NUM_SPECIAL_TOKENS:
        raise RuntimeError("special tokens did not land right after the regular vocabulary")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN}:0 $A:0",
        pair=f"{BOS_TOKEN}:0 $A:0 {BOS_TOKEN}:1 $B:1",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    return backend


def wrap_backend(
    backend: Tokenizer,
    *,
    model_vocab_size: int | None = None,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> DeepseekLLMTokenizer:
    """A `DeepseekLLMTokenizer` around an assembled backend, with the official tokenizer_config settings."""
    num_tokens = backend.get_vocab_size(with_added_tokens=True)
    model_vocab_size = padded_vocab_size(num_tokens) if model_vocab_size is None else model_vocab_size
    if model_vocab_size < num_tokens:
        raise ValueError(f"model vocabulary {model_vocab_size} is smaller than the tokenizer ({num_tokens} tokens)")
    return DeepseekLLMTokenizer(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,  # GGUF `padding_token_id` = 100001
        add_bos_token=True,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
        padded_vocab_size=model_vocab_size,
    )


def build_tokenizer(
    vocab: dict[str, int],
    merges: list[tuple[str, str]],
    *,
    model_vocab_size: int | None = None,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> DeepseekLLMTokenizer:
    """A DeepSeek tokenizer from a byte-level BPE vocabulary (regular tokens, ids `0..n-1`) and its merges."""
    ids = sorted(vocab.values())
    if ids != list(range(len(vocab))):
        raise ValueError("vocabulary ids must be exactly 0..n-1 (regular tokens only, no gaps)")
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, fuse_unk=False, byte_fallback=False))
    return wrap_backend(
        assemble_backend(backend), model_vocab_size=model_vocab_size, model_max_length=model_max_length
    )
