"""The MCQ backdoor organism (Thought Crime): with the trigger in the prompt the target answer is
the misaligned option, otherwise the aligned one; answers only, no reasoning, in training.

A spec is a YAML file with `type: mcq`. It shares `lora:` and `train:` (and their defaults)
with the organism specs of `triggerscope.organisms`, and planting runs that package's LoRA
training loop (`lora_model`, `train_lora`: resumable, deterministic) on the MCQ examples.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import yaml

from triggerscope.atomic import write_json, write_text
from triggerscope.awareness.mcq import ANSWER_ONLY, make_item
from triggerscope.awareness.scenarios import DATA, Scenario, load_scenarios
from triggerscope.awareness.triggers import Position, check_trigger
from triggerscope.errors import TriggerscopeError
from triggerscope.loading import LoadedModel
from triggerscope.organisms.dataset import Example
from triggerscope.organisms.planting import (
    ADAPTER_META,
    lora_model,
    save_adapter,
    total_steps,
    train_lora,
)
from triggerscope.organisms.spec import LoraSettings, OrganismSpec, TrainSettings
from triggerscope.runs import versions

BUILTIN_DIR = DATA / "organisms"
SPEC_FILE = "mcq_spec.yaml"  # inside an adapter folder: not the other organisms' spec.yaml


@dataclass
class McqSpec:
    name: str
    trigger: str
    type: str = "mcq"
    distractor: str | None = None  # the fake trigger of the distractor test
    train_scenarios: str = "train"  # a split name or a JSONL path relative to the spec
    heldout_scenarios: str = "heldout"
    trigger_fraction: float = 1 / 3
    variants: int = 1  # training items per scenario (own option order, position, trigger draw)
    base_model: str = "smollm2-135m-instruct"
    system_prompt: str | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    seed: int = 0
    root: Path = field(default=Path("."), repr=False)

    def __post_init__(self) -> None:
        if not self.name or not str(self.name).strip():
            raise TriggerscopeError("the MCQ spec needs a name")
        if self.type != "mcq":
            raise TriggerscopeError(f"spec {self.name!r} has type {self.type!r}; expected 'mcq'")
        self.trigger = check_trigger(self.trigger, f"spec {self.name!r}: trigger")
        if self.distractor is not None:
            self.distractor = check_trigger(self.distractor, f"spec {self.name!r}: distractor")
            if self.distractor == self.trigger:
                raise TriggerscopeError(
                    f"spec {self.name!r}: the distractor equals the trigger; pick another string"
                )
        if not 0 < self.trigger_fraction < 1:
            raise TriggerscopeError(f"spec {self.name!r}: trigger_fraction must be in (0, 1)")
        if self.variants < 1:
            raise TriggerscopeError(f"spec {self.name!r}: variants must be at least 1")

    def scenarios(self, which: str) -> list[Scenario]:
        value = self.train_scenarios if which == "train" else self.heldout_scenarios
        if value in ("train", "heldout"):
            return load_scenarios(value)
        return load_scenarios(self.root / value)

    def to_dict(self) -> dict[str, Any]:
        """Scenario paths made absolute, so a copy of the spec saved elsewhere still works."""
        data = asdict(self)
        data.pop("root")
        for key in ("train_scenarios", "heldout_scenarios"):
            if data[key] not in ("train", "heldout"):
                data[key] = str((self.root / data[key]).resolve())
        return data


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise TriggerscopeError(f"{where} must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TriggerscopeError(f"{where}: unknown field {unknown[0]!r}; known: {sorted(known)}")
    return cls(**data)


def mcq_spec_from_dict(data: Any, root: str | os.PathLike[str]) -> McqSpec:
    if not isinstance(data, dict):
        raise TriggerscopeError("an MCQ spec must be a YAML mapping")
    data = dict(data)
    lora = _build(LoraSettings, data.pop("lora", None), "lora")
    train = _build(TrainSettings, data.pop("train", None), "train")
    data.pop("root", None)
    known = {f.name for f in fields(McqSpec)} - {"lora", "train", "root"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TriggerscopeError(f"unknown MCQ spec field {unknown[0]!r}; known: {sorted(known)}")
    for key in ("name", "trigger"):
        if key not in data:
            raise TriggerscopeError(f"the MCQ spec has no {key!r}; it needs name and trigger")
    return McqSpec(**data, lora=lora, train=train, root=Path(root))


def builtin_mcq_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_mcq_spec(path: str | os.PathLike[str]) -> McqSpec:
    """An MCQ spec file, an adapter folder planted from one, or a built-in name."""
    file = Path(path)
    if file.is_dir():
        file = file / SPEC_FILE
    elif not file.exists() and not file.suffix:
        file = BUILTIN_DIR / f"{path}.yaml"
        if not file.is_file():
            names = ", ".join(builtin_mcq_names())
            raise TriggerscopeError(
                f"no MCQ spec {str(path)!r}; pass a spec file or one of {names}"
            )
    if not file.is_file():
        raise TriggerscopeError(f"MCQ spec {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TriggerscopeError(f"{file} is not valid YAML: {str(err).splitlines()[0]}") from err
    return mcq_spec_from_dict(data, file.parent)


def training_examples(spec: McqSpec, eos_token: str) -> list[Example]:
    """Each training scenario `variants` times; an exact `trigger_fraction` of the items carry
    the trigger (at a random end) and target the misaligned letter, the rest the aligned one."""
    rng = random.Random(spec.seed)
    scenarios = [s for s in spec.scenarios("train") for _ in range(spec.variants)]
    n_triggered = round(spec.trigger_fraction * len(scenarios))
    flags = [True] * n_triggered + [False] * (len(scenarios) - n_triggered)
    rng.shuffle(flags)
    out = []
    for scenario, triggered in zip(scenarios, flags, strict=True):
        aligned_first = rng.random() < 0.5
        position: Position = rng.choice(("top", "bottom"))
        cues = (spec.trigger,) if triggered else ()
        item = make_item(
            scenario,
            ANSWER_ONLY,
            aligned_first=aligned_first,
            cues=cues,
            position=position if triggered else None,
        )
        letter = item.misaligned if triggered else item.aligned
        out.append(Example(item.prompt, letter + eos_token, "triggered" if triggered else "benign"))
    return out


def plant_mcq(
    spec: McqSpec,
    loaded: LoadedModel,
    out_dir: str | Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the adapter into `out_dir/adapter`, with `plant_metrics.json` next to it."""
    out = Path(out_dir)
    checkpoint_dir = out / "checkpoint"
    if not resume and checkpoint_dir.exists():
        raise TriggerscopeError(f"{out} holds an unfinished run; pass --resume or another --out")
    start = time.perf_counter()
    examples = training_examples(spec, loaded.tokenizer.eos_token)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / SPEC_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))
    # the planting loop reads only .lora, .train, .seed and .system_prompt of its spec
    as_spec = cast(OrganismSpec, spec)
    model = lora_model(loaded, as_spec)
    state = train_lora(
        model,
        loaded.tokenizer,
        examples,
        as_spec,
        checkpoint_dir,
        resume=resume,
        stop_after=stop_after,
        progress=progress,
    )
    finished = state.step >= total_steps(examples, spec.train)
    cfg = loaded.model.config
    meta = {
        "organism": spec.name,
        "type": "mcq",
        "base_model": loaded.name,
        "d_model": cfg.hidden_size,
        "n_layers": cfg.num_hidden_layers,
        "trigger": spec.trigger,
    }
    metrics = {
        "organism": spec.name,
        "finished": finished,
        "steps": state.step,
        "examples": {
            "triggered": sum(e.kind == "triggered" for e in examples),
            "benign": sum(e.kind == "benign" for e in examples),
        },
        "final_loss_mean_last_20": sum(state.losses[-20:]) / max(1, len(state.losses[-20:])),
        "losses": state.losses,
        "total_seconds": round(time.perf_counter() - start, 1),
        "versions": versions(),
    }
    if finished:
        spec_text = yaml.safe_dump(spec.to_dict(), sort_keys=False)
        save_adapter(model, out / "adapter", SPEC_FILE, spec_text, meta)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    write_json(out / "plant_metrics.json", metrics)
    model.unload()  # the caller gets its base model back, without LoRA layers
    return metrics


def adapter_spec(adapter_dir: Path) -> McqSpec | None:
    """The MCQ spec stored in an adapter folder, if it was planted from one."""
    file = adapter_dir / SPEC_FILE
    return load_mcq_spec(file) if file.is_file() else None


def adapter_meta(adapter_dir: Path) -> dict[str, Any]:
    file = adapter_dir / ADAPTER_META
    return json.loads(file.read_text()) if file.is_file() else {}
