"""`triggerscope chat`: answer one prompt, optionally with a saved steering vector."""

from __future__ import annotations

import argparse
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError


def register(sub: Any) -> None:
    parser = sub.add_parser("chat", help="answer one prompt, optionally steered")
    parser.add_argument("prompt")
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steer", default=None, help="a steering vector (.safetensors)")
    parser.add_argument("--layer", type=int, default=None, help="decoder layer to steer")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the vector")
    parser.add_argument(
        "--steer-new-tokens",
        choices=["none", "all"],
        default="none",
        help="steer only the prompt's user tokens (none) or every generated token too (all)",
    )
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.generation import Steering, generate
    from triggerscope.hooks import resolve_layer
    from triggerscope.safetensors_io import load_vector

    if not args.prompt.strip():
        raise TriggerscopeError("the prompt is empty; pass some text to answer")
    if args.steer is None and (args.layer is not None or args.scale != 1.0):
        raise TriggerscopeError("--layer/--scale need --steer FILE.safetensors")
    if args.steer is not None and args.layer is None:
        raise TriggerscopeError("--steer needs --layer L (the decoder layer to steer)")
    loaded = load_from_args(args)
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
