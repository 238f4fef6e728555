"""`triggerscope sae eval`: explained variance, L0, dead latents, CE-loss score."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError


def add_text_args(parser: argparse.ArgumentParser, max_texts: int) -> None:
    """Arguments shared by `sae eval` and `sae label`: which texts, and how they are read."""
    parser.add_argument("--sae", required=True, help="SAE folder (SAELens, Llama Scope, ...)")
    parser.add_argument(
        "--texts",
        default=None,
        help="held-out texts, one per line or .jsonl with 'text' (default: the SAE corpus's "
        "held-out split, if built)",
    )
    parser.add_argument("--layer", type=int, default=None, help="override the SAE's layer")
    parser.add_argument("--raw", action="store_true", help="read texts raw, not as chat messages")
    parser.add_argument("--max-texts", type=int, default=max_texts, help="use the first N texts")
    parser.add_argument("--max-tokens", type=int, default=128, help="cut each text to N tokens")
    parser.add_argument("--batch-size", type=int, default=8)


def held_out_texts(path: str | None, limit: int) -> tuple[list[str], str]:
    """The texts to read and where they came from."""
    from triggerscope.sae.metrics import read_texts

    if limit < 1:
        raise TriggerscopeError("--max-texts must be at least 1")
    if path is None:
        from triggerscope.sae.corpus import corpus_dir

        default = corpus_dir() / "heldout.jsonl"
        if not default.is_file():
            raise TriggerscopeError(
                "no --texts given and the SAE corpus is not built; pass --texts FILE (one text "
                "per line) or build the corpus with `triggerscope sae corpus`"
            )
        from triggerscope.sae.corpus import balanced_heldout

        return balanced_heldout(default.parent, limit), f"{default} (balanced over sources)"
    return read_texts(path, limit=limit), path


def load_for_model(args: argparse.Namespace, loaded: Any) -> Any:
    """The SAE from --sae, checked against the loaded model (d_model, layer)."""
    from triggerscope.sae.formats import load_sae
    from triggerscope.sae.metrics import sae_layer

    sae = load_sae(args.sae, d_model=int(loaded.model.config.hidden_size))
    sae_layer(loaded.model, sae, args.layer)
    return sae


def register(sub: Any) -> None:
    parser = sub.add_parser("eval", help="measure an SAE on held-out text")
    add_text_args(parser, max_texts=200)
    parser.add_argument("--no-ce", action="store_true", help="skip the CE-loss score (3x faster)")
    parser.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.atomic import write_json
    from triggerscope.sae.formats import detect_layout
    from triggerscope.sae.metrics import evaluate_sae

    detect_layout(args.sae)  # a bad folder fails before the model loads
    texts, source = held_out_texts(args.texts, args.max_texts)
    loaded = load_from_args(args)
    sae = load_for_model(args, loaded)
    metrics = evaluate_sae(
        loaded.model,
        loaded.tokenizer,
        sae,
        texts,
        layer=args.layer,
        chat=not args.raw,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        ce=not args.no_ce,
        progress=True,
    )
    rows = {k: v for k, v in metrics.to_dict().items() if v is not None}
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if args.out:
        record = {"sae": str(Path(args.sae)), "model": loaded.name, "texts": source, **rows}
        write_json(args.out, record)
        print(f"wrote {args.out}")
    return 0
