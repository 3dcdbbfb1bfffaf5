"""`deepseek-hf tokenizer ...`: train a DeepSeek byte-level BPE tokenizer, or rebuild the real one from its GGUF.

deepseek-hf tokenizer train corpus.jsonl.gz --vocab-size 4000 --output-dir out/tok
deepseek-hf tokenizer from-gguf ggml-vocab-deepseek-llm.gguf out/deepseek-llm-tokenizer

Flags take dashes or underscores (`--output-dir` = `--output_dir`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..utils import USER_ERRORS, ArgumentParser, debug_requested, describe_error
from .special_tokens import NUM_SPECIAL_TOKENS


def build_parser(prog: str = "deepseek-hf tokenizer") -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,from-gguf}")

    train = commands.add_parser("train", help="train a byte-level BPE tokenizer on text files, JSONL or directories")
    train.add_argument("sources", nargs="+", help=".txt / .jsonl files (optionally .gz) or directories of them")
    train.add_argument("--output-dir", required=True, help="where the tokenizer is saved (atomically)")
    train.add_argument("--vocab-size", type=int, default=100000, help="regular tokens; +15 special (default 100000)")
    train.add_argument("--text-field", "--text-key", default="text", help="JSONL key holding the text (default: text)")
    train.add_argument("--min-frequency", type=int, default=2, help="minimum pair count for a merge (default 2)")
    train.add_argument("--model-max-length", type=int, default=4096, help="saved maximum sequence length")
    train.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")

    convert = commands.add_parser("from-gguf", help="rebuild the real DeepSeek LLM tokenizer from llama.cpp's GGUF")
    convert.add_argument("gguf_file", help="ggml-vocab-deepseek-llm.gguf (vocab-only GGUF)")
    convert.add_argument("output_dir", help="where the tokenizer is saved (atomically)")
    convert.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    return parser


def main(argv: list[str] | None = None, prog: str = "deepseek-hf tokenizer") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "train":
            from .train import train_tokenizer

            tokenizer = train_tokenizer(
                args.sources,
                vocab_size=args.vocab_size,
                output_dir=args.output_dir,
                text_field=args.text_field,
                min_frequency=args.min_frequency,
                show_progress=not args.no_progress,
                overwrite=args.overwrite,
                model_max_length=args.model_max_length,
            )
        else:
            from .from_gguf import tokenizer_from_gguf
            from .io import save_tokenizer

            tokenizer = tokenizer_from_gguf(args.gguf_file)
            save_tokenizer(tokenizer, args.output_dir, overwrite=args.overwrite)
    except (*USER_ERRORS, TypeError) as error:
        if debug_requested():
            raise
        print(f"{prog} {args.command}: error: {describe_error(error)}", file=sys.stderr)
        return 1
    print(
        f"saved {args.output_dir}: {len(tokenizer)} tokens ({len(tokenizer) - NUM_SPECIAL_TOKENS} regular + "
        f"{NUM_SPECIAL_TOKENS} special), model vocab_size {tokenizer.padded_vocab_size}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
