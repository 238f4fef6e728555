"""`triggerscope sae concepts`: which latents of an SAE mean each concept, and how selectively.

For every concept probe set (texts about the concept vs texts not about it, held out from all
training and evaluation prompts) it ranks the latents by AUROC of their max activation over a
text, prints the best with their labels, and writes `concepts.json` next to the SAE.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "concepts", help="the latents most selective for each concept probe set (AUROC)"
    )
    parser.add_argument("--sae", required=True, help="SAE folder")
    parser.add_argument(
        "--concepts", default=None, help="comma-separated concepts (default: every probe set)"
    )
    parser.add_argument("--layer", type=int, default=None, help="override the SAE's layer")
    parser.add_argument("--probes", default=None, help="probe folder (default: the built-in)")
    parser.add_argument("--top", type=int, default=5, help="latents listed per concept")
    parser.add_argument("--threshold", type=float, default=0.9, help="AUROC for 'selective'")
    parser.add_argument("--out", default=None, help="default: SAE/concepts.json")
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.atomic import write_json
    from triggerscope.commands.sae_eval import load_for_model
    from triggerscope.errors import TriggerscopeError
    from triggerscope.evaluation.probes import PROBES, load_probe_set, probe_concepts
    from triggerscope.evaluation.selectivity import concept_selectivity
    from triggerscope.sae.formats import detect_layout, sae_folder
    from triggerscope.sae.labels import latents_path, load_latents

    detect_layout(args.sae)
    if args.top < 1:
        raise TriggerscopeError("--top must be at least 1")
    root = Path(args.probes) if args.probes else PROBES
    names = args.concepts.split(",") if args.concepts else probe_concepts(root)
    if not names:
        raise TriggerscopeError(f"no concept probe sets in {root}; pass --probes FOLDER")
    probes = [load_probe_set(name.strip(), root) for name in names]  # fail before the model
    folder = sae_folder(args.sae)
    book = load_latents(latents_path(folder)) if latents_path(folder).is_file() else None
    loaded = load_from_args(args)
    sae = load_for_model(args, loaded)
    results: dict[str, Any] = {}
    for probe in probes:
        sel = concept_selectivity(
            loaded.model, loaded.tokenizer, sae, probe, model_id=loaded.name, layer=args.layer
        )
        best = [
            {"latent": i, "auroc": a, "label": book[i].label if book else None}
            for i, a in sel.best(args.top)
        ]
        results[probe.concept] = {
            "n_pos": sel.n_pos,
            "n_neg": sel.n_neg,
            "n_selective": sel.n_selective(args.threshold),
            "best": best,
        }
        print(
            f"{probe.concept}: {sel.n_selective(args.threshold)} latents with AUROC >= "
            f"{args.threshold} ({sel.n_pos} texts about it, {sel.n_neg} not)"
        )
        for row in best:
            print(f"  {row['latent']:>6}  AUROC {row['auroc']:.3f}  {row['label'] or ''}")
    out = Path(args.out) if args.out else Path(folder) / "concepts.json"
    record = {
        "sae": str(args.sae),
        "model": loaded.name,
        "threshold": args.threshold,
        "probes": str(root),
        "concepts": results,
    }
    write_json(out, record)
    print(f"wrote {out}")
    return 0
