"""`triggerscope demo`: the main job on the embedded default model."""

from __future__ import annotations

import argparse
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="the main job on the embedded default model")
    parser.add_argument("--prompt", default="Tell me about your weekend plans.")
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--scale", type=float, default=60.0)
    parser.add_argument("--out", default="runs", help="folder for run folders")
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.demo import DemoConfig, run_demo

    loaded = load_from_args(args)
    config = DemoConfig(prompt=args.prompt, layer=args.layer, scale=args.scale)
    results = run_demo(loaded, args.out, config)
    print(f"prompt:     {results['prompt']}")
    print(f"unsteered:  {results['unsteered']}")
    print(f"steered:    {results['steered']}")
    print(f"(layer {config.layer}, scale {config.scale}; {results['vector']})")
    print(f"run folder: {results['run_dir']}")
    return 0
