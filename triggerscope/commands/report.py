"""`triggerscope report RUN_DIR`: the run as one self-contained HTML page."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="write a run's HTML audit report (one file)")
    parser.add_argument("run_dir", help="a run folder written by `triggerscope find` or bench")
    parser.add_argument("--out", default=None, help="HTML file (default: RUN_DIR/report.html)")
    parser.add_argument(
        "--latents", default=None, help="latent dictionary (default: latents.json by the SAE)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.reports.audit import write_report

    path = write_report(args.run_dir, args.out, args.latents)
    print(f"written: {path}")
    return 0
