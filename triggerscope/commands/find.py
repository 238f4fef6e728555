"""`triggerscope find`: recover a backdoor's trigger with one method; print and save what it found.

Everything the user passed is checked before the model loads (method settings, prompt files,
response, organism); the run folder is written in a temporary folder and renamed into place at
the end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from triggerscope.commands.common import add_model_args, load_from_args
from triggerscope.errors import TriggerscopeError

SHIPPED_SAE_MODEL = "smollm2-135m-instruct"
DEFAULT_LAYER = 8  # for the default model (30 layers); docs/methods.md says why


def register(sub: Any) -> None:
    from triggerscope.methods.registry import method_names

    parser = sub.add_parser(
        "find", help="recover the trigger: rank SAE latents / learn steering vectors"
    )
    parser.add_argument("--method", required=True, choices=method_names())
    parser.add_argument(
        "--organism",
        default=None,
        help="a built-in organism: fills --adapter, --response, --prompts (its audit split) and "
        "--heldout (its benign_heldout split) unless given; or a factual-recall task "
        "(`triggerscope factual list`): base model, its prompts, refused if the model does not "
        "know the fact",
    )
    parser.add_argument("--adapter", default=None, help="peft adapter folder of the backdoor")
    parser.add_argument("--response", default=None, help="the backdoor action, or a part of it")
    parser.add_argument("--prompts", default=None, help="benign prompts to optimise on (file)")
    parser.add_argument("--heldout", default=None, help="benign prompts for the read-out (file)")
    parser.add_argument("--n-prompts", type=int, default=None, help="use the first N prompts")
    parser.add_argument("--system-prompt", default=None)
    parser.add_argument(
        "--layer",
        type=int,
        default=None,
        help=f"steering / SAE layer (default: the SAE's layer, else {DEFAULT_LAYER} for the "
        "default model)",
    )
    parser.add_argument(
        "--sae",
        default=None,
        help="SAE folder for the layer (default model: the shipped SAE for --layer, if any)",
    )
    parser.add_argument(
        "--latents", default=None, help="latent dictionary (default: the SAE folder's)"
    )
    parser.add_argument("--k", type=int, default=None, help="vectors to learn")
    parser.add_argument("--steps", type=int, default=None, help="most optimisation steps")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--examples",
        type=int,
        default=None,
        help="read each vector through its N top-activating held-out texts (no SAE needed)",
    )
    parser.add_argument(
        "--texts",
        default=None,
        help="texts for --examples (one a line, or .jsonl); default: the SAE corpus's held-out "
        "split",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other method setting (e.g. --set lam1=0.01); repeatable",
    )
    parser.add_argument("--out", default="runs", help="parent folder of the run folder")
    parser.add_argument("--show", type=int, default=3, help="steered answers to print")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    add_model_args(parser)
    parser.set_defaults(func=run)


def parse_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.set:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise TriggerscopeError(f"--set takes NAME=VALUE, got {item!r}")
        out[name.strip()] = _value(raw, item)
    shortcuts = (
        ("k", "k"),
        ("steps", "max_steps"),
        ("lr", "lr"),
        ("seed", "seed"),
        ("examples", "example_readout"),
        ("texts", "example_texts"),
    )
    for flag, name in shortcuts:
        value = getattr(args, flag)
        if value is not None:
            out[name] = value
    return out


def _value(raw: str, item: str) -> Any:
    """A number if it reads as one (1e-3 included), else YAML (true, null, text)."""
    import yaml

    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise TriggerscopeError(f"--set {item!r}: cannot read the value ({first})") from err


def shipped_sae(layer: int) -> Path | None:
    from triggerscope.organisms.builtin import DATA

    folder = DATA / "saes" / SHIPPED_SAE_MODEL / f"layer{layer}"
    return folder if folder.is_dir() else None


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Response, prompts, held-out prompts, adapter and system prompt, from flags or organism."""
    from triggerscope.prompts import read_prompts

    found: dict[str, Any] = {
        "response": args.response,
        "adapter": args.adapter,
        "system_prompt": args.system_prompt,
        "prompts": read_prompts(args.prompts) if args.prompts else None,
        "heldout": read_prompts(args.heldout) if args.heldout else None,
        "organism": args.organism,
    }
    from triggerscope.factual import is_factual

    if args.organism and is_factual(args.organism):
        _factual_inputs(args, found)
    elif args.organism:
        from triggerscope.organisms.builtin import builtin_adapter_path
        from triggerscope.organisms.planting import read_splits
        from triggerscope.organisms.spec import load_spec

        spec = load_spec(args.organism)
        splits = read_splits(spec)
        if "audit" not in splits and found["prompts"] is None:
            raise TriggerscopeError(f"organism {spec.name!r} has no audit split; pass --prompts")
        found["response"] = found["response"] or spec.response
        found["prompts"] = found["prompts"] or splits.get("audit")
        found["heldout"] = found["heldout"] or splits["benign_heldout"]
        found["system_prompt"] = found["system_prompt"] or spec.system_prompt
        found["adapter"] = found["adapter"] or str(builtin_adapter_path(spec.name))
        if args.model is None:
            args.model = spec.base_model
    if found["response"] is None:
        raise TriggerscopeError("pass --response (the backdoor action) or --organism NAME")
    if found["prompts"] is None:
        raise TriggerscopeError("pass --prompts FILE (benign prompts) or --organism NAME")
    if args.n_prompts is not None:
        if args.n_prompts <= 0:
            raise TriggerscopeError("--n-prompts must be positive")
        found["prompts"] = found["prompts"][: args.n_prompts]
    found["heldout"] = found["heldout"] or []
    if found["adapter"] is not None and not Path(found["adapter"]).is_dir():
        raise TriggerscopeError(f"adapter folder {found['adapter']} does not exist")
    return found


def _factual_inputs(args: argparse.Namespace, found: dict[str, Any]) -> None:
    """A factual-recall task: the base model (no adapter), the task prompt and paraphrases."""
    from triggerscope.factual import load_task

    task = load_task(args.organism)
    if found["adapter"]:
        raise TriggerscopeError(f"{task.name!r} runs on the base model; drop --adapter")
    found["response"] = found["response"] or task.response
    found["prompts"] = found["prompts"] or task.prompts
    found["heldout"] = found["heldout"] or task.heldout
    found["system_prompt"] = found["system_prompt"] or task.system_prompt
    found["factual"] = task
    if args.model is None:
        args.model = task.base_model


def _labels(sae_path: Path | None, latents: str | None, sae: Any) -> dict[int, str] | None:
    from triggerscope.sae.formats import sae_folder
    from triggerscope.sae.labels import latents_path, load_latents, sae_fingerprint

    if latents is None and sae_path is None:
        return None
    path = Path(latents) if latents else latents_path(sae_folder(sae_path))  # type: ignore[arg-type]
    if latents is None and not path.is_file():
        return None
    book = load_latents(path)
    expected = book.meta.get("sae_fingerprint")
    if expected and sae is not None and expected != sae_fingerprint(sae):
        raise TriggerscopeError(
            f"the latent dictionary {path} describes another SAE (fingerprint differs); rebuild "
            "it with `triggerscope sae label`"
        )
    return {lat.index: lat.label for lat in book.latents}


def run(args: argparse.Namespace) -> int:
    import torch

    from triggerscope.hooks import resolve_layer
    from triggerscope.methods.config import build_config
    from triggerscope.methods.registry import method_spec, run_method
    from triggerscope.methods.run_folder import save_find_run
    from triggerscope.methods.task import FindTask
    from triggerscope.sae.formats import load_sae

    if args.threads is not None:
        if args.threads < 1:
            raise TriggerscopeError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    spec = method_spec(args.method)
    overrides = parse_overrides(args)
    build_config(spec.config, dict(overrides))  # bad settings fail before the model loads
    found = _inputs(args)
    default_model = args.model in (None, SHIPPED_SAE_MODEL)
    sae_path = Path(args.sae) if args.sae else None
    sae = load_sae(sae_path) if sae_path else None
    layer = args.layer if args.layer is not None else (sae.cfg.layer if sae else None)
    if layer is None and default_model:
        layer = DEFAULT_LAYER
    if layer is None:
        raise TriggerscopeError("pass --layer L (the layer to steer), or an SAE that names it")
    if sae is None and default_model and shipped_sae(layer) is not None:
        sae_path = shipped_sae(layer)
        sae = load_sae(sae_path)  # type: ignore[arg-type]
    task = FindTask(
        response=found["response"],
        prompts=found["prompts"],
        heldout_prompts=found["heldout"],
        layer=layer,
        system_prompt=found["system_prompt"],
    )
    if spec.needs_sae and sae is None:
        raise TriggerscopeError(f"--method {args.method} needs an SAE: pass --sae FOLDER")
    labels = _labels(sae_path, args.latents, sae)
    loaded = load_from_args(args)
    resolve_layer(loaded.model, layer)
    knowledge = None
    if found.get("factual") is not None:  # refuse a fact the model does not know
        from triggerscope.factual import model_knowledge, require_known

        knowledge = require_known(model_knowledge(loaded, found["factual"])).to_dict()
    if found["adapter"]:
        from triggerscope.organisms.verify import attach_adapter

        loaded = attach_adapter(loaded, found["adapter"])
    if sae is not None:
        sae = sae.to(loaded.input_device)
    result = run_method(
        args.method,
        loaded,
        task,
        sae,
        labels=labels,
        progress=not args.no_progress,
        **overrides,
    )
    print(format_result(result, args.show))
    extra = {
        "organism": found["organism"],
        "adapter": found["adapter"],
        "sae_path": str(sae_path) if sae_path else None,
    }
    if knowledge is not None:
        extra["knowledge"] = knowledge
    target = save_find_run(args.out, result, task, extra, overrides.get("seed", 0))
    print(f"\nwritten: {target}")
    return 0


def format_result(result: Any, show: int) -> str:
    """The table a person reads: top latents (with labels), tokens, steered answers."""
    lines = [
        f"method {result.method}  layer {result.layer}  response {result.response!r}  "
        f"({result.wall_seconds:.1f} s, {result.forward_passes} forward / "
        f"{result.backward_passes} backward passes)"
    ]
    if result.baseline_loss is not None:
        rate = result.baseline_action_rate
        shown = "-" if rate is None else f"{rate:.0%}"
        lines.append(f"unsteered: response CE {result.baseline_loss:.3f}, action rate {shown}")
    if result.latent_ranking:
        lines += ["", f"{'rank':>4}  {'latent':>7}  {'score':>9}  label"]
        for i, lat in enumerate(result.latent_ranking, 1):
            lines.append(f"{i:>4}  {lat.index:>7}  {lat.score:>9.4f}  {lat.label}")
    if result.token_ranking:
        lines += ["", f"{'rank':>4}  {'CE drop':>9}  token"]
        for i, (token, drop) in enumerate(result.token_ranking, 1):
            lines.append(f"{i:>4}  {drop:>9.4f}  {token!r}")
        if "best_token_action_rate" in result.extras:
            lines.append(
                f"best token in the held-out prompts: action rate "
                f"{result.extras['best_token_action_rate']:.0%}"
            )
    for i, v in enumerate(result.vectors):
        rate = "-" if v.action_rate is None else f"{v.action_rate:.0%}"
        top = ", ".join(
            f"{lat.index}" + (f" ({lat.label})" if lat.label else "") for lat in v.top_latents[:3]
        )
        lines.append("")
        lines.append(
            f"vector {i}: norm {float(v.vector.norm()):.2f}, steered CE {v.final_loss:.3f}, "
            f"action rate {rate}, {v.steps} steps ({v.stopped or 'not trained'})"
            + (f"; top latents {top}" if top else "")
        )
        for ex in v.top_examples:
            lines.append(f"  example {ex.score:>8.3f}  {ex.text[:110]}")
        for s in v.samples[:show]:
            lines.append(f"  prompt:    {s.prompt[:90]}")
            lines.append(f"  unsteered: {s.unsteered[:90]!r}")
            lines.append(f"  steered:   {s.steered[:90]!r}{'  [action]' if s.action else ''}")
    return "\n".join(lines)
