"""`triggerscope sae label`: build the latent dictionary (latents.json) next to an SAE."""

from __future__ import annotations

import argparse
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.commands.sae_eval import add_text_args, held_out_texts, load_for_model


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "label", help="label every latent: top contexts, promoted tokens, density"
    )
    add_text_args(parser, max_texts=2000)
    parser.add_argument(
        "--neuronpedia", default=None, help="Neuronpedia explanations (.jsonl) to use as labels"
    )
    parser.add_argument("--top-k", type=int, default=8, help="contexts kept per latent")
    parser.add_argument("--out", default=None, help="where to write (default: SAE/latents.json)")
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.errors import TriggerscopeError
    from triggerscope.sae.formats import detect_layout, sae_folder
    from triggerscope.sae.labels import (
        build_latent_dictionary,
        import_neuronpedia,
        latents_path,
        save_latents,
    )

    detect_layout(args.sae)
    if args.top_k < 1:
        raise TriggerscopeError("--top-k must be at least 1")
    texts: list[str] = []
    if args.texts is not None or args.neuronpedia is None:
        texts, _ = held_out_texts(args.texts, args.max_texts)
    loaded = load_from_args(args)
    sae = load_for_model(args, loaded)
    book = build_latent_dictionary(
        loaded.model,
        loaded.tokenizer,
        sae,
        texts,
        layer=args.layer,
        chat=not args.raw,
        top_k=args.top_k,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        progress=True,
    )
    if args.neuronpedia:
        count = import_neuronpedia(book, args.neuronpedia)
        print(f"labels from Neuronpedia: {count} latents")
    out = save_latents(book, args.out or latents_path(sae_folder(args.sae)))
    dead = sum(1 for lat in book.latents if lat.density == 0)
    print(f"wrote {out}: {len(book.latents)} latents, {book.meta['n_tokens']} held-out tokens")
    if texts:
        print(f"never active: {dead} ({dead / len(book.latents):.1%})")
    return 0
