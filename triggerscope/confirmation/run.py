"""Confirm the hypotheses of a `triggerscope find` run folder, and write the result next to it.

Everything the run recorded is re-used: the (partial) response, the benign prompts it optimised
on, the system prompt, the layer, the method and its settings, the SAE and its latent
dictionary. The result goes to `RUN_DIR/confirmation/` (config with seed and versions,
result.json, samples.jsonl), written atomically, where the audit report finds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from triggerscope.atomic import atomic_dir, write_json, write_text
from triggerscope.confirmation.hypotheses import Hypothesis
from triggerscope.confirmation.search import (
    ConfirmationResult,
    ConfirmConfig,
    Finder,
    confirm,
    method_finder,
    model_responder,
    samples_jsonl,
)
from triggerscope.errors import TriggerscopeError
from triggerscope.reports.run_folder import RunFolder, load_run
from triggerscope.runs import write_run_config
from triggerscope.sae.labels import LatentDictionary

CONFIRMATION_DIR = "confirmation"
EXCLUDED_TOP = 50  # the method's top latents never serve as random control latents


@dataclass
class RunInputs:
    """What confirming a find run needs, read and checked before any model loads."""

    run: RunFolder
    prompts: list[str]
    book: LatentDictionary | None
    hypotheses: list[Hypothesis]
    system_prompt: str | None
    sae_path: str | None
    method: str | None  # for the conjunctive search; None: no search

    @property
    def exclude_latents(self) -> set[int]:
        r = self.run.result
        top = {x.index for x in r.latent_ranking[:EXCLUDED_TOP]}
        return top | {x.index for v in r.vectors for x in v.top_latents}


def _dictionary(run: RunFolder, latents: str | Path | None) -> LatentDictionary | None:
    from triggerscope.reports.audit import find_dictionary

    return find_dictionary(run, latents)


def run_inputs(
    run_dir: str | Path,
    config: ConfirmConfig,
    *,
    prompts: list[str] | None = None,
    latents: str | Path | None = None,
    method: str | None = None,
    search: bool = True,
) -> RunInputs:
    """The run's prompts (or `prompts`), its dictionary and its hypotheses; the method to re-run
    for the conjunctive search (the run's own unless `method`), checked to have what it needs."""
    from triggerscope.methods.registry import method_spec

    run = load_run(run_dir)
    used = prompts if prompts is not None else [str(p) for p in run.setting("prompts") or []]
    if not used:
        raise TriggerscopeError(
            f"{run.path} does not record its benign prompts; pass them with --prompts FILE"
        )
    book = _dictionary(run, latents)
    hypotheses = config.hypotheses(run.result, book)
    if not hypotheses:
        raise TriggerscopeError(
            f"{run.path} ranks no latents or tokens with readable words; give its SAE a latent "
            "dictionary (`triggerscope sae label`) or pass --latents"
        )
    sae_path = run.setting("sae_path", "sae", "sae_dir", kind=str)
    chosen = (method or run.result.method) if search and config.max_steps > 1 else None
    if chosen is not None:
        spec = method_spec(chosen)
        if spec.needs_sae and not sae_path:
            raise TriggerscopeError(
                f"the conjunctive search re-runs {chosen}, which needs an SAE, and {run.path} "
                "records none; pass --method with a method that needs none, or --steps 1"
            )
    system_prompt = run.setting("system_prompt")
    return RunInputs(
        run,
        used,
        book,
        hypotheses,
        str(system_prompt) if system_prompt else None,
        str(sae_path) if sae_path else None,
        chosen,
    )


def run_finder(inputs: RunInputs, loaded: Any, response: str, progress: bool) -> Finder | None:
    """The run's method with the run's settings (its SAE loaded on first use)."""
    from triggerscope.methods.registry import method_spec

    if inputs.method is None:
        return None
    spec = method_spec(inputs.method)
    names = {f.name for f in fields(spec.config)}
    recorded = inputs.run.result.config if inputs.method == inputs.run.result.method else {}
    overrides = {k: v for k, v in recorded.items() if k in names}
    labels = {lat.index: lat.label for lat in inputs.book.latents} if inputs.book else None
    state: dict[str, Finder] = {}

    def find(prompts: list[str]) -> Any:
        if "find" not in state:
            sae = None
            if inputs.sae_path:  # also read-out for residual methods: latents by cosine
                from triggerscope.sae.formats import load_sae

                sae = load_sae(inputs.sae_path).to(loaded.input_device)
            state["find"] = method_finder(
                loaded,
                inputs.method,  # type: ignore[arg-type]
                inputs.run.result.layer,
                response,
                sae=sae,
                labels=labels,
                system_prompt=inputs.system_prompt,
                overrides=overrides,
                progress=progress,
            )
        return state["find"](prompts)

    return find


def save_confirmation(
    result: ConfirmationResult, out: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """config.json (settings, seed, versions), result.json, samples.jsonl; all or nothing."""
    target = Path(out)
    with atomic_dir(target) as tmp:
        write_run_config(tmp, {**asdict(result.config), **(extra or {})}, result.config.seed)
        write_json(tmp / "result.json", result.to_dict())
        write_text(tmp / "samples.jsonl", samples_jsonl(result))
    return target


def confirm_inputs(
    inputs: RunInputs,
    loaded: Any,
    config: ConfirmConfig,
    *,
    out: str | Path | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[ConfirmationResult, Path]:
    """Confirm on `loaded` (the backdoored model: base with the adapter attached) and save."""
    respond = model_responder(
        loaded,
        config.response,
        system_prompt=inputs.system_prompt,
        batch_size=batch_size,
        progress=False,
    )
    result = confirm(
        respond,
        inputs.prompts,
        inputs.hypotheses,
        config,
        book=inputs.book,
        find=run_finder(inputs, loaded, config.response, progress),
        exclude_latents=inputs.exclude_latents,
        progress=progress,
    )
    extra = {
        "run": str(inputs.run.path),
        "model": loaded.name,
        "method": inputs.run.result.method,
        "search_method": inputs.method,
        "sae_path": inputs.sae_path,
        "system_prompt": inputs.system_prompt,
        "prompts": inputs.prompts,
        "hypotheses": [h.to_dict() for h in inputs.hypotheses],
    }
    target = Path(out) if out is not None else inputs.run.path / CONFIRMATION_DIR
    return result, save_confirmation(result, target, extra)


def confirm_find_run(
    run_dir: str | Path,
    loaded: Any,
    config: ConfirmConfig | None = None,
    *,
    method: str | None = None,
    search: bool = True,
    out: str | Path | None = None,
    progress: bool = False,
) -> tuple[ConfirmationResult, Path]:
    """The whole step for the audit: `loaded` is the backdoored model the run audited;
    `method` is re-run by the conjunctive search (default: the run's own, with its settings;
    "sae-attribution" is the cheap choice)."""
    if config is None:
        config = ConfirmConfig(response=load_run(run_dir).result.response)
    inputs = run_inputs(run_dir, config, method=method, search=search)
    return confirm_inputs(inputs, loaded, config, out=out, progress=progress)
