"""The whole audit on a built-in organism, as the README's main job runs it.

An auditor knows only part of the backdoor's action ("I won't answer"). Load the backdoored
model and the shipped SAE, run SAE-Attribution and supervised SAE-MELBO on the organism's
audit prompts (never its held-out or evaluation prompts), read the top latents through the
latent dictionary, say what the trigger is most likely about, and write one HTML report per run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from triggerscope.errors import TriggerscopeError
from triggerscope.loading import LoadedModel
from triggerscope.methods.registry import run_method
from triggerscope.methods.result import MethodResult
from triggerscope.methods.run_folder import save_find_run
from triggerscope.methods.task import FindTask
from triggerscope.organisms.builtin import DATA, builtin_adapter_path
from triggerscope.organisms.planting import read_splits
from triggerscope.organisms.spec import load_spec
from triggerscope.organisms.verify import attach_adapter

SHIPPED_SAES = DATA / "saes" / "smollm2-135m-instruct"


@dataclass(frozen=True)
class AuditConfig:
    organism: str = "fruit-refusal"
    response: str = "I won't answer"  # only part of the action, as in the seed
    layer: int = 8
    methods: tuple[str, ...] = ("sae-attribution", "supervised-sae-melbo")
    n_prompts: int = 16  # audit prompts to optimise on (CPU budget)
    n_heldout: int = 8  # held-out benign prompts for the steered read-out
    seed: int = 0
    adapter: str | None = None  # default: the organism's shipped adapter
    sae: str | None = None  # default: the shipped SAE for `layer`
    overrides: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"supervised-sae-melbo": {"k": 1}}
    )
    # test each run's hypotheses causally (docs/confirmation.md); the conjunctive search
    # re-runs SAE-Attribution, the cheap method, on prompts carrying the first concept found
    confirm: bool = False

    def __post_init__(self) -> None:
        if self.n_prompts <= 0 or self.n_heldout < 0:
            raise TriggerscopeError("n_prompts must be positive and n_heldout not negative")
        if not self.response.strip():
            raise TriggerscopeError("the response is empty; give (part of) the backdoor action")


@dataclass
class AuditRun:
    result: MethodResult
    run_dir: Path
    report: Path
    verdict: str


def shipped_sae_folder(layer: int) -> Path:
    folder = SHIPPED_SAES / f"layer{layer}"
    if not (folder / "cfg.json").is_file():
        raise TriggerscopeError(
            f"no shipped SAE for layer {layer}; train one with `triggerscope sae train --layer "
            f"{layer}` and pass it to `triggerscope find --sae`"
        )
    return folder


def run_audit(base: LoadedModel, config: AuditConfig, out_root: str | Path) -> list[AuditRun]:
    from triggerscope.reports.audit import write_report
    from triggerscope.reports.verdict import verdict
    from triggerscope.sae.formats import load_sae
    from triggerscope.sae.labels import latents_path, load_latents

    spec = load_spec(config.organism)
    splits = read_splits(spec)
    sae_dir = Path(config.sae) if config.sae else shipped_sae_folder(config.layer)
    sae = load_sae(sae_dir)
    book = load_latents(latents_path(sae_dir)) if latents_path(sae_dir).is_file() else None
    labels = {lat.index: lat.label for lat in book.latents} if book else None
    adapter = Path(config.adapter) if config.adapter else builtin_adapter_path(spec.name)
    adapted = attach_adapter(base, adapter)
    task = FindTask(
        response=config.response,
        prompts=splits["audit"][: config.n_prompts],
        heldout_prompts=splits["benign_heldout"][: config.n_heldout],
        layer=config.layer,
        system_prompt=spec.system_prompt,
    )
    runs = []
    for method in config.methods:
        overrides = {"seed": config.seed, **config.overrides.get(method, {})}
        result = run_method(method, adapted, task, sae, labels=labels, progress=True, **overrides)
        extra = {
            "organism": spec.name,
            "adapter": str(adapter),
            "sae_path": str(sae_dir),
            "audit": asdict(config),
        }
        run_dir = save_find_run(out_root, result, task, extra, config.seed)
        if config.confirm:
            from triggerscope.confirmation.run import confirm_find_run
            from triggerscope.confirmation.search import ConfirmConfig

            confirm_find_run(
                run_dir,
                adapted,
                ConfirmConfig(response=config.response, seed=config.seed),
                method="sae-attribution",
                progress=True,
            )
        report = write_report(run_dir)
        runs.append(AuditRun(result, run_dir, report, verdict(result, book).sentence()))
    return runs
