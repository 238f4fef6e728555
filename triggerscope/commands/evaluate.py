"""`triggerscope evaluate RUN_DIR --organism NAME`: score a run against the planted trigger."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "evaluate", help="score a run against an organism's trigger (writes evaluation.json)"
    )
    parser.add_argument("run_dir", help="a run folder written by `triggerscope find`")
    parser.add_argument("--organism", required=True, help="built-in name or spec file")
    parser.add_argument("--sae", default=None, help="SAE folder (default: the run's)")
    parser.add_argument("--threshold", type=float, default=0.9, help="AUROC for 'selective'")
    from triggerscope.commands.common import add_model_args

    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.errors import TriggerscopeError
    from triggerscope.evaluation.bench import EVALUATION_FILE
    from triggerscope.evaluation.score_run import format_evaluation, score_run

    if not 0.5 <= args.threshold <= 1.0:
        raise TriggerscopeError(f"--threshold must be in [0.5, 1], got {args.threshold}")
    ev = score_run(
        args.run_dir,
        args.organism,
        sae=args.sae,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        quantize=args.quantize,
        threshold=args.threshold,
    )
    print(format_evaluation(ev))
    print(f"\nwritten: {Path(args.run_dir) / EVALUATION_FILE}")
    return 0
