"""`triggerscope factual list|check`: the factual-recall tasks, and whether a model knows them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError


def register(sub: Any) -> None:
    parser = sub.add_parser("factual", help="factual-recall tasks on the base model")
    group = parser.add_subparsers(dest="factual_command", required=True)
    ls = group.add_parser("list", help="the shipped factual-recall tasks")
    ls.set_defaults(func=run_list)
    check = group.add_parser(
        "check", help="does the model know each task's fact? (greedy answers, likelihoods)"
    )
    check.add_argument("tasks", nargs="*", help="task names or YAML files (default: all shipped)")
    check.add_argument("--out", default="runs", help="parent folder of the run folder")
    check.add_argument("--show", action="store_true", help="print every question and answer")
    add_model_args(check)
    check.set_defaults(func=run_check)


def run_list(args: argparse.Namespace) -> int:
    from triggerscope.factual import load_task, task_names

    for name in task_names():
        task = load_task(name)
        print(f"{name:<20} {task.subject:<18} {task.prompt!r} -> {task.response!r}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from triggerscope.atomic import atomic_dir, write_json
    from triggerscope.factual import load_task, model_knowledge, task_names
    from triggerscope.runs import new_run_dir, write_run_config

    names = args.tasks or task_names()
    tasks = [load_task(n) for n in names]  # every bad name fails before the model loads
    if not tasks:
        raise TriggerscopeError("no factual tasks to check")
    args.model = args.model or tasks[0].base_model
    loaded = load_from_args(args)
    reports = []
    for task in tasks:
        report = model_knowledge(loaded, task)
        reports.append(report)
        print(report.summary(), flush=True)
        if args.show:
            for a in report.answers:
                mark = "ok " if a["passed"] else "no "
                print(f"    {mark}{a['kind']:<6} {a['prompt']}\n          -> {a['answer']!r}")
            for c in report.contrast:
                print(f"    contrast margin {c['margin']:+.3f}  {c['template']}")
    known = [r.task for r in reports if r.known]
    unknown = [r.task for r in reports if not r.known]
    print(f"\nknown: {', '.join(known) or '(none)'}\nnot known: {', '.join(unknown) or '(none)'}")
    target = new_run_dir(args.out, "factual-check")
    with atomic_dir(target) as tmp:  # filled in a temporary folder, then renamed into place
        write_run_config(tmp, {"model": loaded.name, "tasks": names}, None)
        write_json(tmp / "knowledge.json", [r.to_dict() for r in reports])
    print(f"written: {Path(target) / 'knowledge.json'}")
    return 0
