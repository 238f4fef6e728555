"""`triggerscope monitor TRANSCRIPTS.jsonl`: which prompt cues does the reasoning blame?"""

from __future__ import annotations

import argparse
from typing import Any

from triggerscope.commands.awareness import add_judge_args, judge_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "monitor", help="flag reasoning that blames a cue in the prompt for its choice"
    )
    parser.add_argument(
        "transcripts",
        help="JSONL: 'prompt' and 'reasoning' (or 'response') per line, or 'messages'",
    )
    parser.add_argument(
        "--triggers", nargs="+", default=[], help="suspected triggers to score with the judge"
    )
    parser.add_argument("--top", type=int, default=20, help="how many cues to list")
    parser.add_argument("--out", default=None, help="write the full report (JSON) here")
    add_judge_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triggerscope.atomic import write_json
    from triggerscope.awareness.monitor import format_report, read_transcripts, run_monitor

    transcripts = read_transcripts(args.transcripts)
    judge = judge_from_args(args) if args.triggers else None
    report = run_monitor(transcripts, args.triggers, judge)
    print(format_report(report, top=args.top))
    if args.out:
        write_json(args.out, report.to_dict())
        print(f"\nwritten: {args.out}")
    return 0
