"""`triggerscope sae show`: print one latent of the dictionary, or find latents by a word."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("show", help="print a latent's label, contexts and promoted tokens")
    parser.add_argument("latent", nargs="?", type=int, default=None, help="latent index")
    parser.add_argument("--sae", default=None, help="SAE folder (its latents.json is read)")
    parser.add_argument("--latents", default=None, help="a latent dictionary file instead")
    parser.add_argument("--find", default=None, help="list latents that mention this word")
    parser.add_argument("--limit", type=int, default=20, help="how many --find matches to list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.errors import TriggerscopeError
    from triggerscope.sae.formats import sae_folder
    from triggerscope.sae.labels import describe, latents_path, load_latents

    if (args.latent is None) == (args.find is None):
        raise TriggerscopeError("give a latent index or --find WORD (one of them)")
    if args.sae is None and args.latents is None:
        raise TriggerscopeError("pass --sae FOLDER (or --latents FILE)")
    book = load_latents(args.latents or latents_path(sae_folder(args.sae)))
    if args.latent is not None:
        print(describe(book[args.latent], book.meta))
        return 0
    matches = book.find(args.find)
    print(f"{len(matches)} latents mention {args.find!r} (strongest first)")
    for lat in matches[: args.limit]:
        density = f"{lat.density:.4f}" if lat.density is not None else "-"
        print(f"{lat.index:>7}  max {lat.max_activation:>8.3f}  density {density}  {lat.label}")
    return 0
