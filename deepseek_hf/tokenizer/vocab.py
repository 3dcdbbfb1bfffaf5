"""Vocabulary sizes: regular tokens, tokenizer length, and the model's (padded) embedding size.

- `vocab_size` (training argument): regular tokens = byte tokens + merges (the paper's 100000).
- `len(tokenizer)`: regular + the 15 special tokens (100015).
- `padded_vocab_size(len(tokenizer))`: rows of the model's embedding / LM head (102400, paper §2.1: "for computational
  efficiency ... and to reserve space"). Ids past `len(tokenizer)` are never produced by the tokenizer. The model side
  checks the fit with `DeepseekLLMConfig.check_vocab_covers(tokenizer)` (a smaller model vocabulary is an error).

>>> padded_vocab_size(100015), padded_vocab_size(4015), padded_vocab_size(258)
(102400, 4096, 384)
"""

from __future__ import annotations

from .pre_tokenizer import byte_alphabet

#: Smallest `vocab_size` a training accepts: the 243 byte tokens (every byte valid UTF-8 can contain), no merges.
#: With the 15 special tokens that is 258 = 256 byte symbols (13 as added tokens) + BOS + EOS.
MIN_VOCAB_SIZE = len(byte_alphabet())

#: Large vocabularies are padded to a multiple of 4096 (100015 -> 102400, the paper's figure; 2048 or 1024 would give
#: 100352), small ones (tests, demos) to a multiple of 128, so a 4k tokenizer does not get a 2x larger embedding.
LARGE_VOCAB_MULTIPLE = 4096
SMALL_VOCAB_MULTIPLE = 128
LARGE_VOCAB_THRESHOLD = 32768


def padded_vocab_size(num_tokens: int, multiple_of: int | None = None) -> int:
    """The model vocabulary size for a tokenizer of `num_tokens` tokens: `num_tokens` rounded up to `multiple_of`.

    Default `multiple_of`: 4096 when `num_tokens >= 32768`, else 128.
    """
    if num_tokens <= 0:
        raise ValueError(f"num_tokens must be positive, got {num_tokens}")
    if multiple_of is None:
        multiple_of = LARGE_VOCAB_MULTIPLE if num_tokens >= LARGE_VOCAB_THRESHOLD else SMALL_VOCAB_MULTIPLE
    if multiple_of <= 0:
        raise ValueError(f"multiple_of must be positive, got {multiple_of}")
    return -(-num_tokens // multiple_of) * multiple_of
