"""`triggerscope info`: what model is this, and where is the cache."""

from __future__ import annotations

import argparse
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser("info", help="describe the model (layers, d_model, cache)")
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.embedded import cache_root
    from triggerscope.hooks import decoder_layers

    loaded = load_from_args(args)
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
