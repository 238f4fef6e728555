"""`triggerscope confirm RUN_DIR`: test a find run's hypotheses on the backdoored model.

Inserts each candidate concept into benign prompts, compares the action rate with matched
controls, chains concepts when one alone does not fire (docs/confirmation.md), prints the
ranked table and the confirmed trigger, and writes RUN_DIR/confirmation/. Everything is checked
before the model loads; bad input is one line and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError


def register(sub: Any) -> None:
    from triggerscope.confirmation.carriers import CARRIERS, CONTROLS
    from triggerscope.methods.registry import method_names

    parser = sub.add_parser(
        "confirm", help="confirm a find run's candidate triggers on the backdoored model"
    )
    parser.add_argument("run_dir", help="a run folder written by `triggerscope find` / audit")
    parser.add_argument(
        "--organism",
        default=None,
        help="a built-in organism: fills --adapter and --model unless given (default: the run's)",
    )
    parser.add_argument("--adapter", default=None, help="peft adapter (default: the run's)")
    parser.add_argument("--response", default=None, help="the action (default: the run's)")
    parser.add_argument("--prompts", default=None, help="benign prompts (default: the run's)")
    parser.add_argument("--latents", default=None, help="latent dictionary (default: the SAE's)")
    parser.add_argument("--n-prompts", type=int, default=16, help="test prompts per condition")
    parser.add_argument(
        "--max-prompts",
        type=int,
        default=64,
        help="a positive but unconfirmed effect is re-tested on twice as many prompts, up to "
        "this many (--n-prompts: never)",
    )
    parser.add_argument("--top-latents", type=int, default=5, help="latent hypotheses")
    parser.add_argument("--top-tokens", type=int, default=3, help="token hypotheses")
    parser.add_argument(
        "--steps", type=int, default=3, help="concepts chained at most (1: no conjunctive search)"
    )
    parser.add_argument(
        "--method", default=None, choices=method_names(), help="re-run for the search"
    )
    parser.add_argument("--carrier", default="both", choices=CARRIERS)
    parser.add_argument("--control", default="neutral", choices=CONTROLS)
    parser.add_argument("--fire-threshold", type=float, default=0.5)
    parser.add_argument("--max-control-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/confirmation)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generation batch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    add_model_args(parser)
    parser.set_defaults(func=run)


def _model_and_adapter(args: argparse.Namespace, run: Any) -> tuple[str | None, str | None]:
    """--adapter, else the --organism's shipped one, else the run's; --model, else the
    organism's base model, else the model the run recorded."""
    from triggerscope.loading import DEFAULT_MODEL
    from triggerscope.organisms.builtin import builtin_adapter_path
    from triggerscope.organisms.spec import load_spec

    recorded = run.setting("adapter", "adapter_dir", kind=str)
    organism = args.organism or run.setting("organism", kind=str)
    spec = load_spec(organism) if organism else None
    adapter = args.adapter
    if adapter is None and spec is not None and (args.organism or not recorded):
        adapter = str(builtin_adapter_path(spec.name))
    adapter = adapter or recorded
    model = args.model or (spec.base_model if spec is not None else None)
    if model is None:
        name = str(run.setting("model") or "")
        if adapter and name.endswith(f"+{Path(adapter).name}"):
            name = name[: -len(Path(adapter).name) - 1]
        model = name if name and name != DEFAULT_MODEL else None
    if adapter is not None and not Path(adapter).is_dir():
        raise TriggerscopeError(
            f"adapter folder {adapter} does not exist; pass the backdoor's adapter with --adapter"
        )
    return model, adapter


def run(args: argparse.Namespace) -> int:
    import torch

    from triggerscope.confirmation.run import confirm_inputs, run_inputs
    from triggerscope.confirmation.search import ConfirmConfig
    from triggerscope.prompts import read_prompts
    from triggerscope.reports.run_folder import load_run

    if args.threads is not None:
        if args.threads < 1:
            raise TriggerscopeError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.batch_size < 1:
        raise TriggerscopeError("--batch-size must be at least 1")
    run_folder = load_run(args.run_dir)
    config = ConfirmConfig(
        response=args.response or run_folder.result.response,
        n_prompts=args.n_prompts,
        max_prompts=args.max_prompts,
        top_latents=args.top_latents,
        top_tokens=args.top_tokens,
        carrier=args.carrier,
        control=args.control,
        fire_threshold=args.fire_threshold,
        max_control_rate=args.max_control_rate,
        max_steps=args.steps,
        seed=args.seed,
    )
    prompts = read_prompts(args.prompts) if args.prompts else None
    inputs = run_inputs(
        args.run_dir, config, prompts=prompts, latents=args.latents, method=args.method
    )
    model_name, adapter = _model_and_adapter(args, run_folder)
    args.model = model_name
    loaded = load_from_args(args)
    if adapter:
        from triggerscope.organisms.verify import attach_adapter

        loaded = attach_adapter(loaded, adapter)
    result, target = confirm_inputs(
        inputs,
        loaded,
        config,
        out=args.out,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(format_confirmation(result))
    print(f"\nwritten: {target}")
    return 0


def _pct(rate: Any, confidence: float) -> str:
    low, high = rate.interval(confidence)
    return f"{rate.rate:>4.0%} [{low:.0%}-{high:.0%}]"


def format_confirmation(result: Any) -> str:
    """The ranked table per step, then the verdict."""
    cfg = result.config
    c = cfg.confidence
    lines = [
        f"response {cfg.response!r}; {cfg.n_prompts} test prompts per condition; "
        f"{c:.0%} intervals (Wilson for rates, Newcombe for the effect)",
        f"benign prompts: {_pct(result.benign, c)}; first-step controls (pooled): "
        f"{_pct(result.controls, c)}",
    ]
    for number, step in enumerate(result.steps, 1):
        later = bool(step.context)
        lines += ["", f"step {number}: hypotheses from {step.source}"]
        if step.note:
            lines.append(f"  {step.note}")
        if not step.evidence:
            continue
        head = f"{'rank':>4}  {'hypothesis':<36} {'action rate':<16} {'control':<16}"
        if later:
            head += f" {'candidate only':<16}"
        lines.append(head + f" {'effect':<22} confirmed")
        for rank, e in enumerate(step.evidence, 1):
            d, low, high = e.effect
            mark = " *" if rank - 1 == step.chosen else ""
            row = (
                f"{rank:>4}  {e.hypothesis.describe(3)[:36]:<36} {_pct(e.carrying, c):<16} "
                f"{_pct(e.control, c):<16}"
            )
            if later and e.alone is not None:
                row += f" {_pct(e.alone, c):<16}"
            row += f" {f'{d:+.0%} [{low:+.0%}, {high:+.0%}]':<22} "
            lines.append(row + ("yes" if e.confirmed else "no") + mark)
    lines += [
        "",
        "(* carried forward; later steps: 'control' is the context with control words in the "
        "new slot)",
        f"verdict: {result.verdict()}",
        f"{result.generations} answers generated in {result.wall_seconds:.1f} s",
    ]
    return "\n".join(lines)
