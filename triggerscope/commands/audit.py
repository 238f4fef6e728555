"""`triggerscope audit`: the main job — the whole audit of a built-in organism."""

from __future__ import annotations

import argparse
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="the main job: recover a built-in organism's trigger")
    parser.add_argument("--organism", default="fruit-refusal")
    parser.add_argument("--response", default="I won't answer", help="(part of) the action")
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=16, help="audit prompts to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs", help="parent folder of the run folders")
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="also test each hypothesis causally: action rate on prompts carrying it vs controls",
    )
    add_model_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.audit import AuditConfig, run_audit
    from triggerscope.commands.find import format_result

    config = AuditConfig(
        organism=args.organism,
        response=args.response,
        layer=args.layer,
        n_prompts=args.prompts,
        seed=args.seed,
        confirm=args.confirm,
    )
    runs = run_audit(load_from_args(args), config, args.out)
    for audit_run in runs:
        print(format_result(audit_run.result, show=2))
        print(f"verdict ({audit_run.result.method}): {audit_run.verdict}")
        print(f"report: {audit_run.report}\n")
    return 0
