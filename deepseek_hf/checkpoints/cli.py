"""`deepseek-hf model ...`: inspect configs and convert checkpoints.

deepseek-hf model info --preset deepseek-llm-7b                 # shapes, parameters, N1 / N2 / M (paper Eq. 2)
deepseek-hf model info --scale 8 512                             # a family member, e.g. a row of Table 3
deepseek-hf model info --preset deepseek-llm-7b --set max_position_embeddings=2048
deepseek-hf model info --config path/to/checkpoint               # a config.json or a checkpoint dir (ours or Llama)
deepseek-hf model from-llama SRC DST                             # official Llama-format release -> ours
deepseek-hf model to-llama SRC DST                               # ours -> plain Llama format (vLLM, llama.cpp)
deepseek-hf model generate CHECKPOINT --prompt "The meaning of"  # greedy continuation with the checkpoint's tokenizer
deepseek-hf model generate CHECKPOINT --prompt "Once" --temperature 0.8 --top-p 0.95   # sampled

Flags take dashes or underscores (`--max-new-tokens` = `--max_new_tokens`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..utils import (
    USER_ERRORS,
    ArgumentParser,
    bounded_number,
    config_keys,
    debug_requested,
    describe_error,
    merge_config_fields,
    parse_overrides,
)

# `--scale N_LAYER D_MODEL` fixes these (the head count is D_MODEL / head_dim); overriding them would contradict it.
_SET_BY_SCALE = ("num_hidden_layers", "hidden_size", "num_attention_heads")


def _load_config(args):
    from ..modeling import DeepseekLLMConfig

    valid_keys = config_keys(DeepseekLLMConfig) | ({"ffn_multiple_of"} if args.scale is not None else set())
    overrides = parse_overrides(args.set, valid_keys=valid_keys, what="model config")
    if args.scale is not None:
        n_layer, d_model = args.scale
        if clash := [key for key in _SET_BY_SCALE if key in overrides]:
            raise ValueError(
                f"--scale sets {', '.join(_SET_BY_SCALE)}; drop --set {', '.join(clash)} (the head count follows "
                "from --set head_dim=...)"
            )
        return f"from_scale({n_layer}, {d_model})", DeepseekLLMConfig.from_scale(n_layer, d_model, **overrides)
    if args.config is None:
        name = args.preset + (f" with {overrides}" if overrides else "")
        return name, DeepseekLLMConfig.from_preset(args.preset, **overrides)
    path = Path(args.config)
    config_file = path / "config.json" if path.is_dir() else path
    if not config_file.is_file():
        raise FileNotFoundError(f"no config.json at {path}")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type == "llama":
        from .llama_format import config_from_llama

        config = config_from_llama(config_file)
    elif model_type == DeepseekLLMConfig.model_type:
        config = DeepseekLLMConfig.from_json_file(str(config_file))
    else:
        raise ValueError(f"{config_file} has model_type {model_type!r}; expected 'deepseek_llm' or 'llama'.")
    return str(path), DeepseekLLMConfig(**merge_config_fields(config.to_dict(), overrides)) if overrides else config


def describe(config) -> dict:
    """The numbers `model info` prints: shapes, exact parameter count, and the paper's N1, N2, M (Eq. 2)."""
    m = config.flops_per_token
    return {
        "num_hidden_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim,
        "intermediate_size": config.intermediate_size,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_position_embeddings,
        "num_parameters": config.num_parameters,
        "non_embedding_params_N1": config.non_embedding_params,
        "total_params_N2": config.total_params,
        "flops_per_token_M": m,
        "6N1/M": round(6 * config.non_embedding_params / m, 3),
        "6N2/M": round(6 * config.total_params / m, 3),
    }


def _human(value) -> str:
    if isinstance(value, int) and value >= 10**6:
        for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
            if value >= scale:
                return f"{value:,} ({value / scale:.3g}{unit})"
    return str(value)


def _info(args) -> int:
    name, config = _load_config(args)
    facts = describe(config)
    if args.json:
        print(json.dumps({"name": name, **facts}, indent=2))
        return 0
    print(f"{name}")
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        print(f"  {key:<{width}}  {_human(value)}")
    print(
        "  (N1, N2, M as in the paper's Eq. 2, with l_seq = max_position_embeddings; M counts attention, not the vocab)"
    )
    return 0


def _convert(args, to: str) -> int:
    from .llama_format import convert_checkpoint

    dst = convert_checkpoint(args.src, args.dst, to=to, overwrite=args.overwrite)
    print(f"wrote {dst}")
    return 0


def _generate(args) -> int:
    """Greedy (or sampled) continuation of each prompt, with the KV cache, from a checkpoint and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import deepseek_hf  # noqa: F401  (registers the Auto classes)

    path = Path(args.checkpoint)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no checkpoint (config.json) at {path}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    torch.manual_seed(args.seed)
    sampling = args.temperature > 0
    for prompt in args.prompt:
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(
                **inputs,
                max_new_tokens=args.max_new_tokens,
                do_sample=sampling,
                # explicit values, so the checkpoint's generation_config (e.g. a default top_k) cannot change them
                temperature=args.temperature if sampling else None,
                top_p=args.top_p if sampling else None,
                top_k=args.top_k if sampling else None,
                pad_token_id=tokenizer.pad_token_id,
            )
        continuation = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        print(f"{prompt!r} -> {continuation!r}")
    return 0


def _check_sampling(args) -> None:
    """top-p / top-k shape the sampling distribution; with greedy decoding (temperature 0) they would be ignored."""
    if args.temperature == 0 and (args.top_p != 1.0 or args.top_k != 0):
        args.usage_error("--top-p / --top-k only apply when sampling: add --temperature > 0 (0 means greedy)")


def make_parser(prog: str = "deepseek-hf model") -> argparse.ArgumentParser:
    from ..modeling import PRESETS

    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="print shapes, parameter count and the paper's N1 / N2 / M of a config")
    source = info.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=sorted(PRESETS), default="deepseek-llm-7b", help="named config")
    source.add_argument("--config", help="a config.json, or a checkpoint directory (ours or Llama-format)")
    source.add_argument(
        "--scale", nargs=2, type=int, metavar=("N_LAYER", "D_MODEL"), help="a family member (head_dim 128, FFN 8/3·d)"
    )
    info.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field (repeatable); values keep their type: 2, 0.5, true, none, silu",
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_info)

    for name, to, text in (
        ("from-llama", "deepseek_llm", "convert a Llama-format checkpoint dir (the official release) to ours"),
        ("to-llama", "llama", "convert one of our checkpoint dirs to plain Llama format"),
    ):
        convert = sub.add_parser(name, help=text, description=text + " (weights are copied, not loaded)")
        convert.add_argument("src", help="source checkpoint directory")
        convert.add_argument("dst", help="output directory (must not exist unless --overwrite)")
        convert.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
        convert.set_defaults(func=lambda args, to=to: _convert(args, to))

    generate = sub.add_parser("generate", help="continue prompts with a checkpoint (KV-cache generation)")
    generate.add_argument("checkpoint", help="checkpoint directory holding the model and its tokenizer")
    generate.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    generate.add_argument(
        "--max-new-tokens",
        type=bounded_number(int, lambda n: n >= 1, ">= 1"),
        default=48,
        help="tokens to generate per prompt",
    )
    generate.add_argument(
        "--temperature",
        type=bounded_number(float, lambda t: t >= 0, ">= 0 (0 = greedy)"),
        default=0.0,
        help="sampling temperature; 0 (the default) decodes greedily",
    )
    generate.add_argument(
        "--top-p",
        type=bounded_number(float, lambda p: 0 < p <= 1, "in (0, 1]"),
        default=1.0,
        help="nucleus sampling (1: off)",
    )
    generate.add_argument(
        "--top-k",
        type=bounded_number(int, lambda k: k >= 0, ">= 0 (0 = off)"),
        default=0,
        help="top-k sampling (0: off)",
    )
    generate.add_argument("--seed", type=int, default=0, help="random seed (for sampling)")
    generate.set_defaults(func=_generate, usage_error=generate.error)
    return parser


def main(argv: list[str] | None = None, prog: str = "deepseek-hf model") -> int:
    args = make_parser(prog).parse_args(argv)
    if args.command == "generate":
        _check_sampling(args)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if debug_requested():
            raise
        print(f"{prog}: error: {describe_error(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
