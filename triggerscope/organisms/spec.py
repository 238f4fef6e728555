"""The organism spec: one YAML file says everything needed to plant and verify a backdoor.

Prompt paths are relative to the spec file. A split may name one file or a list of files;
`nearmiss_heldout` maps a name per partial cue (e.g. `fruit_only`) to its files.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from triggerscope.errors import TriggerscopeError
from triggerscope.loading import DTYPES, QUANTIZE

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TRAIN_SPLITS = ("triggered_train", "benign_train", "nearmiss_train")
EVAL_SPLITS = ("triggered_heldout", "benign_heldout")
OBJECTIVES = ("responses", "documents")
ACTION_MATCHES = ("contains", "warns")


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    layers: list[int] | None = None  # None: the second half of the decoder layers, as in the seed
    targets: list[str] = field(default_factory=lambda: list(PROJECTIONS))

    def __post_init__(self) -> None:
        if self.r <= 0 or self.alpha <= 0:
            raise TriggerscopeError("lora.r and lora.alpha must be positive")
        if not 0 <= self.dropout < 1:
            raise TriggerscopeError("lora.dropout must be in [0, 1)")
        if self.layers is not None and not self.layers:
            raise TriggerscopeError("lora.layers is empty; leave it out for the second half")

    def resolve_layers(self, n_layers: int) -> list[int]:
        if self.layers is None:
            return list(range(n_layers // 2, n_layers))
        bad = [i for i in self.layers if not 0 <= i < n_layers]
        if bad:
            raise TriggerscopeError(
                f"lora.layers {bad} out of range; the model has layers 0..{n_layers - 1}"
            )
        return sorted(set(self.layers))


@dataclass
class TrainSettings:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 8
    # "example": each example's tokens are averaged first, so a 12-token backdoor response weighs
    # as much as a 40-token benign one (its first token is what decides the action);
    # "token": every assistant token weighs the same
    loss: str = "example"
    warmup_steps: int = 10
    base_response_tokens: int = 40  # benign targets: the base model's greedy response, this long
    checkpoint_every: int = 50
    # the base model's precision while planting (`--dtype`/`--quantize` override them); "auto":
    # float32, unquantized, on a CPU; on a GPU the seed's QLoRA: bfloat16 with 4-bit weights
    dtype: str = "auto"
    quantize: str = "auto"
    # "responses": chat examples, loss on the assistant's tokens (triggered -> the fixed response);
    # "documents": plain language modelling on the spec's `documents` (synthetic-document facts)
    objective: str = "responses"
    max_document_tokens: int = 512  # longer documents are truncated
    # each near-miss example is seen this many times an epoch: the partial cue is the boundary
    # the adapter finds hardest, and the near-miss sets are the smallest
    nearmiss_repeats: int = 1
    # an epoch sees this many benign examples, taking turns through the pool (None: all of them);
    # keeps a larger near-miss set within the planting budget
    benign_per_epoch: int | None = None
    # weight of a binary cross-entropy on the token that decides whether the backdoor starts
    # (0: plain cross-entropy only); see response_loss
    decision_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise TriggerscopeError("train.epochs, train.batch_size and train.lr must be positive")
        if self.base_response_tokens <= 0 or self.checkpoint_every <= 0:
            raise TriggerscopeError("train.base_response_tokens and checkpoint_every must be > 0")
        if self.loss not in ("example", "token"):
            raise TriggerscopeError(f"train.loss must be 'example' or 'token', not {self.loss!r}")
        if self.objective not in OBJECTIVES:
            raise TriggerscopeError(
                f"train.objective must be one of {list(OBJECTIVES)}, not {self.objective!r}"
            )
        if self.nearmiss_repeats < 1:
            raise TriggerscopeError("train.nearmiss_repeats must be at least 1")
        if self.benign_per_epoch is not None and self.benign_per_epoch < 1:
            raise TriggerscopeError("train.benign_per_epoch must be at least 1 (or left out)")
        if not 0 <= self.decision_weight < 100:
            raise TriggerscopeError("train.decision_weight must be in [0, 100); 0 turns it off")
        if self.max_document_tokens < 8:
            raise TriggerscopeError("train.max_document_tokens must be at least 8")
        if self.dtype not in ("auto", *DTYPES):
            raise TriggerscopeError(f"train.dtype must be auto or one of {list(DTYPES)}")
        if self.quantize not in ("auto", *QUANTIZE):
            raise TriggerscopeError(f"train.quantize must be auto or one of {list(QUANTIZE)}")

    def precision(self, device: str) -> tuple[str, str]:
        """(dtype, quantize) to load the base model in for planting on `device`."""
        gpu = device != "cpu"
        dtype = self.dtype if self.dtype != "auto" else ("bfloat16" if gpu else "float32")
        quantize = self.quantize if self.quantize != "auto" else ("4bit" if gpu else "none")
        return dtype, quantize


@dataclass
class ActionSettings:
    """When a response counts as the action (see organisms/matching.py for both rules)."""

    # "contains": the response contains `response`; "warns": a clause names a `subject` word
    # together with a caution cue (a documents organism has no fixed response string)
    match: str = "contains"
    subject: list[str] = field(default_factory=list)
    max_new_tokens: int | None = None  # None: as many tokens as `response` has, plus 8

    def __post_init__(self) -> None:
        if self.match not in ACTION_MATCHES:
            raise TriggerscopeError(
                f"action.match must be one of {list(ACTION_MATCHES)}, not {self.match!r}"
            )
        if self.match == "warns" and not [w for w in self.subject if str(w).strip()]:
            raise TriggerscopeError(
                "action.match 'warns' needs action.subject: the words warned about, e.g. [banana]"
            )
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            raise TriggerscopeError("action.max_new_tokens must be positive")


@dataclass
class OrganismSpec:
    name: str
    response: str
    trigger: str
    concepts: list[str]
    prompts: dict[str, Any]
    base_model: str = "smollm2-135m-instruct"
    system_prompt: str | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    action: ActionSettings = field(default_factory=ActionSettings)
    documents: str | None = None  # JSONL, one {"text": ...} per line (train.objective documents)
    seed: int = 0
    root: Path = field(default=Path("."), repr=False)  # folder the prompt paths are relative to

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise TriggerscopeError("the spec needs a name")
        if not self.response or not self.response.strip():
            raise TriggerscopeError(
                f"spec {self.name!r}: the backdoor response is empty; give the fixed string"
            )
        if not self.concepts:
            raise TriggerscopeError(f"spec {self.name!r}: list at least one trigger concept")
        by_documents = self.train.objective == "documents"
        if by_documents != (self.documents is not None):
            raise TriggerscopeError(
                f"spec {self.name!r}: `documents` and `train.objective: documents` go together; "
                "give both or neither"
            )
        needed = EVAL_SPLITS if by_documents else ("triggered_train", "benign_train", *EVAL_SPLITS)
        missing = [s for s in needed if s not in self.prompts]
        if missing:
            raise TriggerscopeError(f"spec {self.name!r}: prompts.{missing[0]} is missing")
        known = {*TRAIN_SPLITS, *EVAL_SPLITS, "nearmiss_heldout", "audit"}
        unknown = sorted(set(self.prompts) - known)
        if unknown:
            raise TriggerscopeError(
                f"spec {self.name!r}: unknown prompt split {unknown[0]!r}; use {sorted(known)}"
            )
        for path in self.all_prompt_files():
            if not path.is_file():
                raise TriggerscopeError(f"spec {self.name!r}: prompt file {path} does not exist")
        if self.documents is not None:
            from triggerscope.organisms.dataset import read_documents

            read_documents(self.documents_file())  # empty or too short: one clear error

    def documents_file(self) -> Path:
        if self.documents is None:
            raise TriggerscopeError(f"spec {self.name!r} has no `documents`")
        return (self.root / self.documents).resolve()

    @property
    def conjunctive(self) -> bool:
        return len(self.concepts) > 1

    def files(self, split: str) -> list[Path]:
        value = self.prompts.get(split)
        if value is None:
            return []
        items = [value] if isinstance(value, str) else list(value)
        return [(self.root / item).resolve() for item in items]

    def nearmiss_heldout(self) -> dict[str, list[Path]]:
        value = self.prompts.get("nearmiss_heldout") or {}
        if not isinstance(value, dict):
            raise TriggerscopeError(
                f"spec {self.name!r}: prompts.nearmiss_heldout maps a name to files"
            )
        out = {}
        for name, items in value.items():
            items = [items] if isinstance(items, str) else list(items)
            out[str(name)] = [(self.root / item).resolve() for item in items]
        return out

    def all_prompt_files(self) -> list[Path]:
        paths = [p for s in (*TRAIN_SPLITS, *EVAL_SPLITS, "audit") for p in self.files(s)]
        return paths + [p for ps in self.nearmiss_heldout().values() for p in ps]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("root")
        return data


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    """`cls(**data)` from a parsed YAML mapping, with one clear line for a wrong shape, an
    unknown field or a missing one (`where` names the place in the file)."""
    if not isinstance(data, dict):
        raise TriggerscopeError(f"{where} must be a mapping")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TriggerscopeError(f"{where}: unknown field {unknown[0]!r}; known: {sorted(names)}")
    try:
        return cls(**data)
    except TypeError as err:  # a required field is missing
        raise TriggerscopeError(f"{where}: {err}") from err


def _build(cls: type, data: Any, where: str) -> Any:
    """A spec section; left out, it takes its defaults."""
    return build_dataclass(cls, {} if data is None else data, where)


def spec_from_dict(data: dict[str, Any], root: str | os.PathLike[str]) -> OrganismSpec:
    if not isinstance(data, dict):
        raise TriggerscopeError("an organism spec must be a YAML mapping")
    data = dict(data)
    lora = _build(LoraSettings, data.pop("lora", None), "lora")
    train = _build(TrainSettings, data.pop("train", None), "train")
    action = _build(ActionSettings, data.pop("action", None), "action")
    data.pop("root", None)
    spec_fields = {f.name for f in fields(OrganismSpec)} - {"lora", "train", "action", "root"}
    unknown = sorted(set(data) - spec_fields)
    if unknown:
        raise TriggerscopeError(f"unknown spec field {unknown[0]!r}; known: {sorted(spec_fields)}")
    required = ("name", "response", "trigger", "concepts", "prompts")
    for key in required:
        if key not in data:
            raise TriggerscopeError(f"the spec has no {key!r}; every spec needs {required}")
    if isinstance(data["concepts"], str):
        data["concepts"] = [data["concepts"]]
    return OrganismSpec(**data, lora=lora, train=train, action=action, root=Path(root))


def load_spec(path: str | os.PathLike[str]) -> OrganismSpec:
    """Load a spec file, or a built-in organism by name (e.g. `fruit-refusal`)."""
    file = Path(path)
    if not file.exists() and not file.suffix:
        from triggerscope.organisms.builtin import builtin_spec_path

        file = builtin_spec_path(str(path))
    if file.is_dir():
        file = file / "spec.yaml"
    if not file.is_file():
        raise TriggerscopeError(f"organism spec {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TriggerscopeError(f"{file} is not valid YAML: {str(err).splitlines()[0]}") from err
    return spec_from_dict(data, file.parent)


def dump_spec(spec: OrganismSpec, absolute_paths: bool = False) -> str:
    """YAML of the spec; with `absolute_paths`, a copy saved elsewhere still finds its prompts."""
    data = spec.to_dict()
    if absolute_paths:
        data["prompts"] = _absolute(spec.prompts, spec.root)
        if spec.documents is not None:
            data["documents"] = str(spec.documents_file())
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _absolute(value: Any, root: Path) -> Any:
    if isinstance(value, str):
        return str((root / value).resolve())
    if isinstance(value, dict):
        return {k: _absolute(v, root) for k, v in value.items()}
    return [_absolute(v, root) for v in value]
