"""`triggerscope organism eval|list`: verify planted backdoors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError


def register(sub: Any) -> None:
    parser = sub.add_parser("organism", help="verify and list model organisms")
    group = parser.add_subparsers(dest="organism_command", required=True)
    ev = group.add_parser("eval", help="action rates on held-out triggered/benign/near-miss sets")
    ev.add_argument("target", help="an adapter folder, a spec.yaml, or a built-in organism name")
    ev.add_argument("--adapter", default=None, help="adapter folder (when TARGET is a spec)")
    ev.add_argument("--out", default=None, help="folder for organism_eval.json")
    ev.add_argument(
        "--base",
        action="store_true",
        help="score the base model without any adapter (the baseline rates; TARGET is a spec)",
    )
    add_model_args(ev)
    ev.set_defaults(func=run_eval)
    ls = group.add_parser("list", help="the built-in organisms")
    ls.set_defaults(func=run_list)


def adapter_spec(adapter: Path) -> Any:
    """The spec saved with an adapter; a built-in organism's prompts come from the package."""
    import yaml

    from triggerscope.organisms.builtin import builtin_names
    from triggerscope.organisms.spec import load_spec

    name = (yaml.safe_load((adapter / "spec.yaml").read_text()) or {}).get("name")
    return load_spec(name if name in builtin_names() else adapter / "spec.yaml")


def resolve(target: str, adapter: str | None) -> tuple[Any, Path]:
    """(spec, adapter folder) from an adapter folder, a spec file or a built-in name."""
    from triggerscope.organisms.builtin import builtin_adapter_path
    from triggerscope.organisms.spec import load_spec

    path = Path(target)
    if path.is_dir() and (path / "adapter_config.json").is_file():
        if not (path / "spec.yaml").is_file():
            raise TriggerscopeError(f"{path} has no spec.yaml; pass the spec and --adapter")
        return adapter_spec(path), path
    spec = load_spec(target)
    return spec, Path(adapter) if adapter else builtin_adapter_path(spec.name)


def run_eval(args: argparse.Namespace) -> int:
    from triggerscope.organisms.spec import load_spec
    from triggerscope.organisms.verify import attach_adapter, format_table, verify

    if args.base:
        if args.adapter:
            raise TriggerscopeError("--base scores the model without an adapter; drop --adapter")
        spec = load_spec(args.target)
        args.model = args.model or spec.base_model
        model = load_from_args(args)
        out = Path(args.out or f"runs/eval-base-{spec.name}")
    else:
        spec, adapter = resolve(args.target, args.adapter)
        args.model = args.model or spec.base_model
        model = attach_adapter(load_from_args(args), adapter)
        out = Path(args.out) if args.out else adapter.parent / f"eval-{spec.name}"
    results = verify(spec, model, out, progress=True)
    print(format_table(results))
    print(f"\nwritten: {out / 'organism_eval.json'}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from triggerscope.organisms.builtin import builtin_names
    from triggerscope.organisms.spec import load_spec

    for name in builtin_names():
        spec = load_spec(name)
        print(f"{name:<16} {spec.trigger}  ->  {spec.response!r}")
    return 0
