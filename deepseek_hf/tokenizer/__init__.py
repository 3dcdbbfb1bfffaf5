"""DeepSeek LLM byte-level BPE tokenizer (paper §2.1): train one, or rebuild the real one from llama.cpp's GGUF.

>>> from deepseek_hf.tokenizer import train_tokenizer, padded_vocab_size
>>> tok = train_tokenizer(["corpus.jsonl.gz"], vocab_size=4000, output_dir="out/tok")  # doctest: +SKIP
>>> padded_vocab_size(len(tok))  # the model's embedding size: 4015 -> 4096, 100015 -> 102400  # doctest: +SKIP
4096

Modules: `pre_tokenizer` (the pipeline, defined once), `special_tokens` (the 15 tokens, chat template), `vocab`
(sizes), `tokenization_deepseek_llm` (the transformers class), `train`, `from_gguf`, `io` (atomic save), `cli`.
"""

from .from_gguf import read_gguf_vocab, tokenizer_from_gguf
from .io import save_tokenizer
from .pre_tokenizer import SPLIT_PATTERNS, deepseek_decoder, deepseek_pre_tokenizer
from .special_tokens import BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN, NUM_SPECIAL_TOKENS, SPECIAL_TOKENS
from .tokenization_deepseek_llm import DeepseekLLMTokenizer
from .train import CorpusStats, TrainingCorpus, train_tokenizer
from .vocab import MIN_VOCAB_SIZE, padded_vocab_size

__all__ = [
    "BOS_TOKEN",
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "MIN_VOCAB_SIZE",
    "NUM_SPECIAL_TOKENS",
    "SPECIAL_TOKENS",
    "SPLIT_PATTERNS",
    "CorpusStats",
    "DeepseekLLMTokenizer",
    "TrainingCorpus",
    "deepseek_decoder",
    "deepseek_pre_tokenizer",
    "padded_vocab_size",
    "read_gguf_vocab",
    "save_tokenizer",
    "tokenizer_from_gguf",
    "train_tokenizer",
]
