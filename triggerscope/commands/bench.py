"""`triggerscope bench`: methods x organisms x seeds, scored against the planted triggers.

Resumable: run the same command again (same --out) after an interruption and only the
unfinished cells run. Writes results.json, results.md and plots/*.png into --out.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from triggerscope.errors import TriggerscopeError


def register(sub: Any) -> None:
    from triggerscope.methods.registry import method_names

    parser = sub.add_parser("bench", help="benchmark methods on organisms (resumable)")
    parser.add_argument(
        "--methods",
        default="sae-attribution,supervised-sae-melbo",
        help=f"comma-separated method names: {', '.join(method_names())}",
    )
    parser.add_argument(
        "--organisms",
        default=None,
        help="comma-separated built-in names, spec files or adapter folders (default: all)",
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument(
        "--sae",
        default=None,
        help="SAE folder (its latents.json gives labels); default: the shipped SAE of the "
        "default model for --layer",
    )
    parser.add_argument("--layer", type=int, default=None, help="steering layer (default: SAE's)")
    parser.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="ORGANISM=DIR",
        help="adapter folder for an organism (default: its shipped adapter); repeatable",
    )
    parser.add_argument("--prompts", type=int, default=None, help="use the first N audit prompts")
    parser.add_argument("--heldout", type=int, default=None, help="first N held-out prompts")
    parser.add_argument(
        "--response", default=None, help="partial response (default: each organism's full one)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method setting (YAML value): KEY=V for every method that has KEY, "
        "METHOD.KEY=V for one (e.g. --set max_steps=100); repeatable",
    )
    parser.add_argument("--threshold", type=float, default=0.9, help="AUROC for 'selective'")
    parser.add_argument("--out", default="runs/bench", help="output folder (resumed if it exists)")
    from triggerscope.commands.common import add_model_args

    add_model_args(parser)
    parser.set_defaults(func=run)


def _split(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise TriggerscopeError(f"--{what} is empty; give a comma-separated list")
    return items


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise TriggerscopeError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def parse_settings(items: list[str]) -> dict[str, Any]:
    import yaml

    return {k: yaml.safe_load(v) for k, v in parse_pairs(items, "--set").items()}


def _command(
    args: argparse.Namespace, methods: list[str], organisms: list[str], seeds: list[int]
) -> str:
    """The command that reproduces this benchmark, spelled out from the parsed arguments."""
    parts = ["triggerscope", "bench", "--methods", ",".join(methods)]
    parts += ["--organisms", ",".join(organisms), "--seeds", ",".join(map(str, seeds))]
    parts += ["--sae", args.sae, "--threshold", f"{args.threshold:g}", "--out", args.out]
    for flag, value in (
        ("--layer", args.layer),
        ("--prompts", args.prompts),
        ("--heldout", args.heldout),
        ("--response", args.response),
        ("--model", args.model),
    ):
        if value is not None:
            parts += [flag, str(value)]
    if args.device != "cpu":
        parts += ["--device", args.device]
    if args.dtype != "float32":
        parts += ["--dtype", args.dtype]
    if args.quantize != "none":
        parts += ["--quantize", args.quantize]
    for item in args.adapter:
        parts += ["--adapter", item]
    for item in args.set:
        parts += ["--set", item]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from triggerscope.evaluation.bench import grid, run_bench
    from triggerscope.evaluation.runner import BenchSetup, ModelRunner, check_overrides
    from triggerscope.methods.registry import method_spec
    from triggerscope.organisms.builtin import builtin_names
    from triggerscope.reports.bench_report import write_bench_outputs

    if not 0.5 <= args.threshold <= 1.0:
        raise TriggerscopeError(f"--threshold must be in [0.5, 1], got {args.threshold}")
    methods = _split(args.methods, "methods")
    organisms = _split(args.organisms, "organisms") if args.organisms else builtin_names()
    try:
        seeds = [int(s) for s in _split(args.seeds, "seeds")]
    except ValueError as err:
        raise TriggerscopeError(f"--seeds takes integers, e.g. 0,1,2 ({err})") from err
    for method in methods:
        method_spec(method)  # unknown names fail here, with the list of known ones
    if args.sae is None:
        from triggerscope.commands.find import shipped_sae

        shipped = shipped_sae(args.layer) if args.layer is not None else None
        if shipped is None:
            raise TriggerscopeError(
                "pass --sae FOLDER (an SAE of the model), or --layer L where the default model "
                "ships an SAE for layer L"
            )
        args.sae = str(shipped)
    setup = BenchSetup(
        sae=Path(args.sae),
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        quantize=args.quantize,
        layer=args.layer,
        adapters={k: Path(v) for k, v in parse_pairs(args.adapter, "--adapter").items()},
        n_prompts=args.prompts,
        n_heldout=args.heldout,
        response=args.response,
        overrides=parse_settings(args.set),
    )
    check_overrides(methods, setup.overrides)
    runner = ModelRunner(setup, organisms)
    cells = grid(methods, runner.names, seeds)
    command = _command(args, methods, runner.names, seeds)
    out = Path(args.out)
    results = run_bench(
        cells,
        out,
        runner,
        setup.settings(),
        threshold=args.threshold,
        write_outputs=lambda folder, res: write_bench_outputs(folder, res, command),
    )
    print((out / "results.md").read_text(encoding="utf-8"))
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'plots'}")
    return 0 if results["complete"] else 1
