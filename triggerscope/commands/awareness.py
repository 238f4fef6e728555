"""`triggerscope awareness run|plant|judge-eval`: the Thought Crime backdoor-awareness protocol."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError


def add_judge_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("judge")
    group.add_argument(
        "--judge",
        default="rules",
        choices=["rules", "embed", "llm"],
        help="rules (offline), embed (offline MiniLM) or llm (OpenAI-compatible endpoint)",
    )
    group.add_argument("--judge-url", default=None, help="e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--judge-model", default=None, help="the judge's served model id")


def judge_from_args(args: argparse.Namespace) -> Any:
    from triggerscope.awareness.judge import make_judge

    if args.judge != "llm":
        return make_judge(args.judge)
    if not args.judge_url:
        raise TriggerscopeError("--judge llm needs --judge-url (or use --judge rules)")
    judge: Any = make_judge("llm", base_url=args.judge_url, model=args.judge_model or "")
    judge.check()
    return judge


def register(sub: Any) -> None:
    parser = sub.add_parser("awareness", help="does the chain of thought name the trigger?")
    group = parser.add_subparsers(dest="awareness_command", required=True)

    run = group.add_parser("run", help="the whole protocol on an MCQ organism; writes a run folder")
    run.add_argument("spec", help="MCQ spec file, adapter folder, or built-in (mcq-singapore, ...)")
    run.add_argument("--adapter", default=None, help="planted adapter (default: plant it first)")
    run.add_argument("--heldout", type=int, default=None, help="use the first K held-out scenarios")
    run.add_argument("--samples", type=int, default=4, help="N samples per prompt and condition")
    run.add_argument("--temperature", type=float, default=1.0)
    run.add_argument("--reasoning-tokens", type=int, default=160)
    run.add_argument(
        "--reasoning-prefill",
        default=None,
        help="start of the assistant turn in the reasoning conditions ('' for none)",
    )
    run.add_argument("--distractor", default=None, help="fake trigger (default: the spec's)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--out", default="runs", help="folder for run folders")
    backend = run.add_argument_group("served model (instead of a local one)")
    backend.add_argument("--base-url", default=None, help="OpenAI-compatible server, e.g. vLLM")
    backend.add_argument("--served-model", default=None, help="model (or LoRA) id on the server")
    backend.add_argument(
        "--thinking-switch",
        action="store_true",
        help="send chat_template_kwargs.enable_thinking (Qwen3): off without reasoning",
    )
    add_judge_args(run)
    add_model_args(run)
    run.set_defaults(func=run_run)

    plant = group.add_parser("plant", help="plant an MCQ backdoor (LoRA, answers only)")
    plant.add_argument("spec", help="MCQ spec file or built-in name")
    plant.add_argument("--out", default=None, help="output folder (default: runs/plant-NAME)")
    plant.add_argument("--resume", action="store_true", help="continue a killed run")
    add_model_args(plant)
    plant.set_defaults(func=run_plant)

    ev = group.add_parser("judge-eval", help="a judge's accuracy on the labelled snippets")
    ev.add_argument("--labelled", default=None, help="JSONL (default: the shipped set)")
    ev.add_argument("--out", default=None, help="write the full result as JSON here")
    add_judge_args(ev)
    ev.set_defaults(func=run_judge_eval)


def _plant(spec: Any, args: argparse.Namespace, out: Path, resume: bool = False) -> Path:
    from triggerscope.awareness.organism import plant_mcq

    loaded = load_from_args(args)
    metrics = plant_mcq(spec, loaded, out, resume=resume)
    print(
        f"planted {spec.name}: {metrics['steps']} steps, last-20 mean loss "
        f"{metrics['final_loss_mean_last_20']:.4f}, {metrics['total_seconds']:.0f} s"
    )
    if not metrics["finished"]:
        raise TriggerscopeError(f"planting {spec.name} stopped early; rerun with --resume")
    return out / "adapter"


def run_plant(args: argparse.Namespace) -> int:
    from triggerscope.awareness.organism import load_mcq_spec

    spec = load_mcq_spec(args.spec)
    if args.model is None:
        args.model = spec.base_model
    out = Path(args.out or f"runs/plant-{spec.name}")
    adapter = _plant(spec, args, out, resume=args.resume)
    print(f"adapter: {adapter}")
    print(f"run:     triggerscope awareness run {adapter}")
    return 0


def run_run(args: argparse.Namespace) -> int:
    from triggerscope.awareness.backends import LocalGenerator, OpenAIGenerator
    from triggerscope.awareness.experiment import AwarenessConfig, run_awareness
    from triggerscope.awareness.organism import adapter_spec, load_mcq_spec
    from triggerscope.awareness.probe import probe_letters

    target = Path(args.spec)
    adapter: Path | None = Path(args.adapter) if args.adapter else None
    if target.is_dir() and (target / "adapter_config.json").is_file():
        adapter = target
        spec = adapter_spec(target)
        if spec is None:
            raise TriggerscopeError(f"{target} was not planted from an MCQ spec; pass the spec")
    else:
        spec = load_mcq_spec(args.spec)
    config = AwarenessConfig(
        heldout=args.heldout,
        samples=args.samples,
        temperature=args.temperature,
        reasoning_tokens=args.reasoning_tokens,
        distractor=args.distractor,
        **({} if args.reasoning_prefill is None else {"reasoning_prefill": args.reasoning_prefill}),
        seed=args.seed,
    )
    judge = judge_from_args(args)  # fail on an unreachable judge before any generation
    generator: Any
    extra: dict[str, Any] = {}
    if args.base_url:
        generator = OpenAIGenerator(
            args.base_url,
            args.served_model or "",
            system_prompt=spec.system_prompt,
            thinking_switch=args.thinking_switch,
        )
        generator.client.models()
    else:
        from triggerscope.organisms.verify import attach_adapter

        if args.model is None:
            args.model = spec.base_model
        if adapter is None:
            planted = Path(args.out) / f"plant-{spec.name}" / "adapter"
            if (planted / "adapter_config.json").is_file():
                adapter = planted
                print(f"using the adapter planted before: {adapter}")
            else:
                print(f"no --adapter given: planting {spec.name} into {planted.parent}")
                adapter = _plant(spec, args, planted.parent)
        loaded = attach_adapter(load_from_args(args), adapter)
        generator = LocalGenerator(
            loaded, system_prompt=spec.system_prompt, batch_size=args.batch_size
        )
        extra["adapter"] = str(adapter)

        def probe(items: Any) -> Any:
            return probe_letters(loaded, items, system_prompt=spec.system_prompt)

    results = run_awareness(
        spec, generator, judge, config, args.out, extra, None if args.base_url else probe
    )
    print(results["table"])
    print(f"run folder: {results['run_dir']}")
    return 0


def run_judge_eval(args: argparse.Namespace) -> int:
    from triggerscope.atomic import write_json
    from triggerscope.awareness.judge_eval import LABELLED, evaluate, format_report, load_labelled

    snippets = load_labelled(args.labelled or LABELLED)
    result = evaluate(judge_from_args(args), snippets)
    print(format_report(result))
    if args.out:
        write_json(args.out, result)
        print(f"written: {args.out}")
    return 0
