"""`triggerscope sae train`: cache activations once, train TopK SAEs, measure and ship them."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError


def register(sub: Any) -> None:
    parser = sub.add_parser("train", help="train TopK SAEs on cached activations of a corpus")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--layer", type=int, help="decoder layer whose output the SAE reads")
    where.add_argument("--layers", type=int, nargs="+", help="several layers, one caching pass")
    parser.add_argument(
        "--corpus",
        default=None,
        help="corpus folder, or a .jsonl ('text' field) / .txt (one document per line) file "
        "(default: the offline corpus, built on first use)",
    )
    parser.add_argument("--out", default=None, help="output folder (default: runs/sae-MODEL)")
    parser.add_argument("--max-tokens", type=int, default=2_000_000, help="user tokens to cache")
    parser.add_argument("--width", type=int, default=None, help="latents (default: 8 x d_model)")
    parser.add_argument("--k", type=int, default=32, help="active latents per token")
    parser.add_argument("--lr", type=float, default=None, help="default 2e-4/sqrt(width/16384)")
    parser.add_argument("--batch-size", type=int, default=4096, help="tokens per step")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--aux-coef", type=float, default=1 / 32, help="AuxK loss weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints")
    parser.add_argument("--cache", default=None, help="activation cache folder")
    parser.add_argument("--work", default=None, help="checkpoint folder")
    parser.add_argument(
        "--eval-texts", type=int, default=200, help="held-out texts to measure on (0: skip)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_model_args(parser)
    parser.set_defaults(func=run)


def rebuild_command(args: argparse.Namespace) -> str:
    """The command line that rebuilds this output (defaults spelled out)."""
    layers = [args.layer] if args.layer is not None else args.layers
    parts = ["triggerscope", "sae", "train", "--layers", *map(str, layers)]
    for flag in ("corpus", "out", "max_tokens", "width", "k", "lr", "batch_size", "epochs"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag.replace('_', '-')}", str(value)]
    parts += ["--aux-coef", repr(args.aux_coef), "--seed", str(args.seed)]
    parts += ["--eval-texts", str(args.eval_texts)]
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    if args.model is not None:
        parts += ["--model", args.model]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    import torch

    from triggerscope.sae.corpus import ensure_corpus
    from triggerscope.sae.pipeline import train_saes
    from triggerscope.sae.training import TrainConfig

    if args.threads is not None:
        if args.threads < 1:
            raise TriggerscopeError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.max_tokens < 1:
        raise TriggerscopeError("--max-tokens must be positive")
    if args.corpus is not None:
        corpus = Path(args.corpus).expanduser()
        if not corpus.exists():
            raise TriggerscopeError(f"corpus {corpus} does not exist; pass a folder or a file")
    loaded = load_from_args(args)
    from triggerscope.hooks import resolve_layer

    layers = [args.layer] if args.layer is not None else list(args.layers)
    for layer in layers:
        resolve_layer(loaded.model, layer)  # a bad layer fails before any work
    d_model = int(loaded.model.config.hidden_size)
    cfg = TrainConfig(
        n_latents=args.width or 8 * d_model,
        k=args.k,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        aux_coef=args.aux_coef,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    if args.corpus is None:
        corpus = ensure_corpus()
    slug = "".join(c if c.isalnum() or c in "-._" else "_" for c in loaded.name.strip("/"))
    out = Path(args.out) if args.out else Path("runs") / f"sae-{slug.split('/')[-1]}"
    manifest = train_saes(
        loaded,
        layers=layers,
        corpus=corpus,
        out=out,
        cfg=cfg,
        max_tokens=args.max_tokens,
        cache_folder=Path(args.cache) if args.cache else None,
        work_folder=Path(args.work) if args.work else None,
        resume=args.resume,
        eval_texts=args.eval_texts,
        command=rebuild_command(args),
        progress=not args.no_progress,
    )
    if "unfinished" in manifest:
        print(manifest["unfinished"])
        return 1
    acts = manifest["activations"]
    print(
        f"cached {acts['tokens']} tokens of layers {acts['layers']} in {acts['caching_seconds']} s"
    )
    for layer, entry in manifest["layers"].items():
        line = f"layer {layer}: {entry['steps']} steps, {entry['train_seconds']} s"
        m = entry.get("metrics")
        if m:
            ce = "n/a" if m["ce_score"] is None else f"{m['ce_score']:.3f}"
            line += (
                f"; held-out explained variance {m['explained_variance']:.3f}, L0 {m['l0']:.1f}, "
                f"dead {m['dead_fraction']:.1%}, CE score {ce}"
            )
        print(line)
    print(f"saved: {out}")
    return 0
