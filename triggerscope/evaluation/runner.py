"""The benchmark's real runner: load the model, the organism's adapter and the SAE, then run a
method through the registry and hand back what `bench.run_cell` scores.

Organisms are run one after another (cells come grouped by organism); switching organism loads
the base model afresh, so no adapter ever leaks into the next organism's cells. Everything that
can be checked without a model (specs, adapters, probe sets, word lists, the SAE folder) is
checked first, so a bad argument fails before any compute. A factual-recall task
(`triggerscope.factual`) runs on the base model with no adapter; it is refused, right after its
model loads, when that model does not know the task's fact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.bench import Cell, CellOutput
from triggerscope.evaluation.probes import ProbeSet, concept_words, probes_for
from triggerscope.evaluation.selectivity import ConceptSelectivity, concept_selectivity
from triggerscope.factual import FactualTask, is_factual, load_task, model_knowledge, require_known
from triggerscope.organisms.spec import OrganismSpec, load_spec


@dataclass
class BenchSetup:
    sae: Path
    model: str | None = None  # None: each organism's base_model
    device: str = "cpu"
    dtype: str = "float32"
    quantize: str = "none"
    layer: int | None = None  # None: the SAE's layer
    adapters: dict[str, Path] = field(default_factory=dict)  # organism -> adapter folder
    n_prompts: int | None = None  # first N of the organism's audit prompts
    n_heldout: int | None = None  # first N of its held-out benign prompts
    response: str | None = None  # None: the organism's full backdoor response
    # method settings: "key" goes to every method whose config has it, "method.key" to one
    overrides: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None  # selectivity cache (None: the user cache)

    def settings(self) -> dict[str, Any]:
        """What a resumed benchmark must share with the run it continues."""
        return {
            "sae": str(self.sae.resolve()),
            "model": self.model,
            "dtype": self.dtype,
            # only when set, so benchmarks begun before quantization existed still resume
            **({"quantize": self.quantize} if self.quantize != "none" else {}),
            "layer": self.layer,
            "adapters": {k: str(v.resolve()) for k, v in sorted(self.adapters.items())},
            "n_prompts": self.n_prompts,
            "n_heldout": self.n_heldout,
            "response": self.response,
            "overrides": dict(sorted(self.overrides.items())),
        }


def _config_fields(method: str) -> set[str]:
    from dataclasses import fields

    from triggerscope.methods.registry import method_spec

    return {f.name for f in fields(method_spec(method).config)}


def check_overrides(methods: list[str], overrides: dict[str, Any]) -> None:
    """Refuse, before any compute, a setting that no benchmarked method would use."""
    for key in overrides:
        method, dot, name = key.rpartition(".")
        targets = [method] if dot else methods
        if dot and method not in methods:
            raise TriggerscopeError(f"--set {key}: {method!r} is not among the benchmarked methods")
        if not any(name in _config_fields(m) for m in targets):
            raise TriggerscopeError(
                f"--set {key}: no benchmarked method has a setting {name!r} "
                f"(write METHOD.{name}=VALUE for one method)"
            )


def method_overrides(method: str, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """The settings one method gets: matching plain keys, its own dotted keys, and the seed."""
    known = _config_fields(method)
    out = {k: v for k, v in overrides.items() if "." not in k and k in known}
    out.update({k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith(method + ".")})
    if "seed" in known:
        out.setdefault("seed", seed)
    return out


def resolve_organism(target: str) -> tuple[OrganismSpec | FactualTask, Path | None]:
    """A built-in name, a spec file, an adapter folder holding its spec.yaml, or a factual task
    (shipped name or YAML file; it has no adapter)."""
    if is_factual(target):
        return load_task(target), None
    path = Path(target)
    if path.is_dir() and (path / "adapter_config.json").is_file():
        if not (path / "spec.yaml").is_file():
            raise TriggerscopeError(f"{path} has no spec.yaml; pass the spec and --adapter")
        return load_spec(path / "spec.yaml"), path
    return load_spec(target), None


@dataclass
class _Organism:
    spec: OrganismSpec | FactualTask
    adapter: Path | None  # None: a factual task, run on the base model
    probes: list[ProbeSet]
    words: dict[str, list[str]]


class ModelRunner:
    """Callable on a Cell; keeps one organism (model + adapter + selectivity) loaded."""

    def __init__(self, setup: BenchSetup, organisms: list[str]) -> None:
        from triggerscope.organisms.builtin import builtin_adapter_path
        from triggerscope.sae.formats import sae_folder

        self.setup = setup
        sae_folder(setup.sae)  # a clear error for a missing SAE before anything loads
        self.organisms: dict[str, _Organism] = {}
        for target in organisms:
            spec, found = resolve_organism(target)
            adapter: Path | None = None
            if isinstance(spec, FactualTask):
                if spec.name in setup.adapters:
                    raise TriggerscopeError(
                        f"{spec.name!r} is a factual-recall task on the base model; drop its "
                        "--adapter"
                    )
            else:
                adapter = Path(
                    setup.adapters.get(spec.name) or found or builtin_adapter_path(spec.name)
                )
                if not (adapter / "adapter_config.json").is_file():
                    raise TriggerscopeError(
                        f"adapter folder {adapter} for {spec.name!r} is not a peft adapter"
                    )
                if "audit" not in spec.prompts:
                    raise TriggerscopeError(
                        f"organism {spec.name!r} has no `audit` prompt split for the methods to "
                        f"optimise on; add one to its spec"
                    )
            probes = probes_for(spec.concepts, spec.name)
            words = {c: concept_words(c) for c in spec.concepts}
            self.organisms[spec.name] = _Organism(spec, adapter, probes, words)
        unknown = sorted(set(setup.adapters) - set(self.organisms))
        if unknown:
            raise TriggerscopeError(f"--adapter names {unknown[0]!r}, which is not benchmarked")
        self._current: str | None = None
        self._state: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self.organisms)

    def _load(self, name: str) -> None:
        from triggerscope.loading import load_model
        from triggerscope.methods.task import FindTask
        from triggerscope.organisms.planting import read_splits
        from triggerscope.organisms.verify import attach_adapter
        from triggerscope.sae.formats import load_sae, sae_folder
        from triggerscope.sae.labels import latents_path, load_latents, sae_fingerprint

        org = self.organisms[name]
        self._state = {}  # free the previous organism's model before loading the next
        setup = self.setup
        base = load_model(
            setup.model or org.spec.base_model,
            device=setup.device,
            dtype=setup.dtype,
            quantize=setup.quantize,
        )
        d_model = int(base.model.config.hidden_size)
        sae = load_sae(self.setup.sae, device=str(base.input_device), d_model=d_model)
        layer = self.setup.layer if self.setup.layer is not None else sae.cfg.layer
        if layer is None:
            raise TriggerscopeError("the SAE does not say which layer it reads; pass --layer")
        knowledge = None
        if isinstance(org.spec, FactualTask):  # refuse a fact the model does not know
            knowledge = require_known(model_knowledge(base, org.spec)).to_dict()
        adapted = attach_adapter(base, org.adapter) if org.adapter is not None else base
        sha = sae_fingerprint(sae)
        selectivity: list[ConceptSelectivity] = [
            concept_selectivity(
                adapted.model,
                adapted.tokenizer,
                sae,
                probe,
                model_id=base.name,
                layer=layer,
                cache_dir=self.setup.cache_dir,
                sae_sha=sha,
            )
            for probe in org.probes
        ]
        labels = None
        dictionary = latents_path(sae_folder(self.setup.sae))
        if dictionary.is_file():
            labels = {lat.index: lat.label for lat in load_latents(dictionary).latents}
        if isinstance(org.spec, FactualTask):
            prompts, heldout = org.spec.prompts, org.spec.heldout
        else:
            splits = read_splits(org.spec)
            prompts, heldout = splits["audit"], splits["benign_heldout"]
        prompts = prompts[: self.setup.n_prompts]
        heldout = heldout[: self.setup.n_heldout]
        task = FindTask(
            response=self.setup.response or org.spec.response,
            prompts=prompts,
            heldout_prompts=heldout,
            layer=layer,
            system_prompt=org.spec.system_prompt,
        )
        config = {
            "model": base.name,
            "organism": name,
            "adapter": str(org.adapter) if org.adapter is not None else None,
            "sae": str(self.setup.sae),
            "layer": layer,
            "response": task.response,
            "prompts": prompts,
            "heldout_prompts": heldout,
            "overrides": self.setup.overrides,
        }
        if knowledge is not None:
            config["knowledge"] = knowledge
        self._state = {
            "loaded": adapted,
            "sae": sae,
            "task": task,
            "selectivity": selectivity,
            "labels": labels,
            "config": config,
        }
        self._current = name

    def __call__(self, cell: Cell) -> CellOutput:
        from triggerscope.methods.registry import run_method

        if cell.organism not in self.organisms:
            raise TriggerscopeError(f"organism {cell.organism!r} was not set up for this bench")
        if self._current != cell.organism:
            self._load(cell.organism)
        state = self._state
        random.seed(cell.seed)
        np.random.seed(cell.seed)
        torch.manual_seed(cell.seed)
        overrides = method_overrides(cell.method, self.setup.overrides, cell.seed)
        result = run_method(
            cell.method,
            state["loaded"],
            state["task"],
            sae=state["sae"],
            labels=state["labels"],
            **overrides,
        )
        config = {**state["config"], "method": cell.method, "seed": cell.seed}
        org = self.organisms[cell.organism]
        return CellOutput(result, state["selectivity"], org.words, config)
