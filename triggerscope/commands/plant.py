"""`triggerscope plant SPEC`: train an organism's LoRA adapter."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser("plant", help="plant a backdoor (train a LoRA adapter) from a spec")
    parser.add_argument("spec", help="spec.yaml, or a built-in organism name (fruit-refusal, ...)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/plant-NAME)")
    parser.add_argument("--resume", action="store_true", help="continue a killed run")
    add_model_args(parser)
    # left out, --dtype and --quantize come from the spec's train.dtype / train.quantize
    parser.set_defaults(func=run, dtype=None, quantize=None)


def run(args: argparse.Namespace) -> int:
    from triggerscope.organisms.planting import plant
    from triggerscope.organisms.spec import load_spec

    spec = load_spec(args.spec)
    if args.model is None:
        args.model = spec.base_model
    dtype, quantize = spec.train.precision(args.device)
    args.dtype = args.dtype or dtype
    args.quantize = args.quantize or quantize
    out = Path(args.out or f"runs/plant-{spec.name}")
    loaded = load_from_args(args)
    metrics = plant(spec, loaded, out, resume=args.resume)
    print(
        f"planted {spec.name} ({args.dtype}, quantize {args.quantize}): {metrics['steps']} "
        f"steps, last-20 mean loss {metrics['final_loss_mean_last_20']:.4f}, "
        f"{metrics['total_seconds']:.0f} s"
    )
    print(f"adapter: {out / 'adapter'}")
    print(f"verify:  triggerscope organism eval {out / 'adapter'}")
    return 0
