"""The `triggerscope` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from triggerscope.errors import TriggerscopeError

if TYPE_CHECKING:
    from triggerscope.loading import LoadedModel

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        help="local HF folder, .gguf file or hub id (default: embedded SmolLM2-135M-Instruct)",
    )
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (multi-GPU)")
    group.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    group.add_argument(
        "--trust-remote-code", action="store_true", help="run the model repo's own code"
    )


def _load(args: argparse.Namespace) -> LoadedModel:
    from triggerscope.loading import load_model

    return load_model(
        args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code
    )


def cmd_info(args: argparse.Namespace) -> int:
    from triggerscope.embedded import cache_root
    from triggerscope.hooks import decoder_layers

    loaded = _load(args)
    cfg = loaded.model.config
    rows = {
        "model": loaded.name,
        "folder": str(loaded.folder) if loaded.folder else "(hub)",
        "architecture": type(loaded.model).__name__,
        "layers": len(decoder_layers(loaded.model)),
        "d_model": cfg.hidden_size,
        "vocab": cfg.vocab_size,
        "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
        "device": str(loaded.input_device),
        "cache": str(cache_root()),
        "load_seconds": f"{loaded.load_seconds:.1f}",
    }
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from triggerscope.generation import Steering, generate
    from triggerscope.hooks import resolve_layer
    from triggerscope.safetensors_io import load_vector

    if not args.prompt.strip():
        raise TriggerscopeError("the prompt is empty; pass some text to answer")
    if args.steer is None and (args.layer is not None or args.scale != 1.0):
        raise TriggerscopeError("--layer/--scale need --steer FILE.safetensors")
    if args.steer is not None and args.layer is None:
        raise TriggerscopeError("--steer needs --layer L (the decoder layer to steer)")
    loaded = _load(args)
    steering = None
    if args.steer is not None:
        resolve_layer(loaded.model, args.layer)
        vector = load_vector(args.steer, loaded.model.config.hidden_size)
        steering = Steering(vector, args.layer, args.scale, args.steer_new_tokens)
    (answer,) = generate(
        loaded,
        [args.prompt],
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        steering=steering,
        seed=args.seed,
    )
    print(answer)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from triggerscope.demo import DemoConfig, run_demo

    loaded = _load(args)
    config = DemoConfig(prompt=args.prompt, layer=args.layer, scale=args.scale)
    results = run_demo(loaded, args.out, config)
    print(f"prompt:     {results['prompt']}")
    print(f"unsteered:  {results['unsteered']}")
    print(f"steered:    {results['steered']}")
    print(f"(layer {config.layer}, scale {config.scale}; {results['vector']})")
    print(f"run folder: {results['run_dir']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triggerscope", description="Audit semantic backdoors in language models."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="describe the model (layers, d_model, cache)")
    add_model_args(info)
    info.set_defaults(func=cmd_info)

    chat = sub.add_parser("chat", help="answer one prompt, optionally steered")
    chat.add_argument("prompt")
    chat.add_argument("--max-new-tokens", type=int, default=80)
    chat.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    chat.add_argument("--seed", type=int, default=0)
    chat.add_argument("--steer", default=None, help="a steering vector (.safetensors)")
    chat.add_argument("--layer", type=int, default=None, help="decoder layer to steer")
    chat.add_argument("--scale", type=float, default=1.0, help="multiplies the vector")
    chat.add_argument(
        "--steer-new-tokens",
        choices=["none", "all"],
        default="none",
        help="steer only the prompt's user tokens (none) or every generated token too (all)",
    )
    add_model_args(chat)
    chat.set_defaults(func=cmd_chat)

    demo = sub.add_parser("demo", help="the main job on the embedded default model")
    demo.add_argument("--prompt", default="Tell me about your weekend plans.")
    demo.add_argument("--layer", type=int, default=8)
    demo.add_argument("--scale", type=float, default=60.0)
    demo.add_argument("--out", default="runs", help="folder for run folders")
    add_model_args(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Parse and run; user errors become one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TriggerscopeError as err:
        print(f"triggerscope: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("triggerscope: interrupted", file=sys.stderr)
        return 130


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
