"""`triggerscope sae corpus`: build the offline SAE training corpus (installing its sources)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "corpus", help="build the offline SAE corpus (Debian WordNet, GCIDE, ... + prompt banks)"
    )
    parser.add_argument("--out", default=None, help="corpus folder (default: in the cache)")
    parser.add_argument(
        "--no-install", action="store_true", help="fail instead of apt-installing missing sources"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if already built")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.sae.corpus import build_corpus, corpus_dir

    out = Path(args.out) if args.out else corpus_dir()
    if args.rebuild or not (out / "manifest.json").is_file():
        build_corpus(out, install=not args.no_install)
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    for split, sources in manifest["splits"].items():
        docs = sum(s["docs"] for s in sources.values())
        chars = sum(s["chars"] for s in sources.values())
        parts = ", ".join(f"{name} {s['docs']}" for name, s in sources.items())
        print(f"{split:<8} {docs:>7} documents, {chars / 1e6:.1f}M characters ({parts})")
    print(f"corpus: {out}")
    return 0
