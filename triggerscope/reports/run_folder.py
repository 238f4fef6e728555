"""Read a method's run folder back (result.json, vectors.safetensors, config.json), refusing
folders that are incomplete or were written by another result version."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.bench import EVALUATION_FILE
from triggerscope.methods.result import (
    RESULT_VERSION,
    MethodResult,
    RankedExample,
    RankedLatent,
    SteeredSample,
    VectorResult,
)
from triggerscope.safetensors_io import load_state_dict


@dataclass
class RunFolder:
    path: Path
    result: MethodResult
    config: dict[str, Any] = field(default_factory=dict)  # config.json's "config", if any
    meta: dict[str, Any] = field(default_factory=dict)  # config.json's seed and versions
    evaluation: dict[str, Any] | None = None  # scores against the planted trigger, if known

    def setting(self, *names: str, kind: type | None = None) -> Any:
        """The first of `names` set in the run's config or the method's own config (of type
        `kind` when given: result.json's "sae" is the SAE's config, config.json's a path)."""
        for source in (self.config, self.result.config):
            for name in names:
                value = source.get(name)
                if value in (None, "", []) or (kind is not None and not isinstance(value, kind)):
                    continue
                return value
        return None


def _read_json(file: Path, what: str, run: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TriggerscopeError(
            f"{run} is incomplete: {what} is unreadable ({err}); run `triggerscope find` again"
        ) from err


def _ranked(rows: Any) -> list[RankedLatent]:
    return [RankedLatent(int(r["index"]), float(r["score"]), str(r.get("label", ""))) for r in rows]


def _known(cls: type, row: dict[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    """The row's plain fields that `cls` has (newer optional fields read, unknown ones ignored)."""
    names = {f.name for f in fields(cls)} - set(skip)
    return {k: v for k, v in row.items() if k in names}


def result_from_summary(
    data: dict[str, Any], tensors: dict[str, torch.Tensor], scores: torch.Tensor | None = None
) -> MethodResult:
    """Invert MethodResult.summary() (plus its vectors file)."""
    nested = ("vector", "latent_vector", "top_latents", "samples", "top_examples")
    out = []
    for row in data["vectors"]:
        i = int(row["index"])
        out.append(
            VectorResult(
                vector=tensors.get(f"vector_{i}", torch.zeros(0)),
                latent_vector=tensors.get(f"latent_vector_{i}"),
                top_latents=_ranked(row.get("top_latents", [])),
                samples=[SteeredSample(**s) for s in row.get("samples", [])],
                top_examples=[RankedExample(**x) for x in row.get("top_examples", [])],
                **_known(VectorResult, row, nested),
            )
        )
    plain = ("latent_ranking", "vectors", "token_ranking", "latent_scores", "config", "extras")
    return MethodResult(
        latent_ranking=_ranked(data.get("latent_ranking", [])),
        vectors=out,
        token_ranking=[(str(t), float(s)) for t, s in data.get("token_ranking", [])],
        config=dict(data.get("config") or {}),
        extras=dict(data.get("extras") or {}),
        latent_scores=scores,
        **_known(MethodResult, data, plain),
    )


def load_run(path: str | Path) -> RunFolder:
    run = Path(path).expanduser()
    if not run.is_dir():
        raise TriggerscopeError(f"run folder {run} does not exist; pass a `triggerscope find` run")
    result_file = run / "result.json"
    if not result_file.is_file():
        raise TriggerscopeError(
            f"{run} is incomplete: it has no result.json (was the run interrupted?); run "
            f"`triggerscope find` again"
        )
    data = _read_json(result_file, "result.json", run)
    if not isinstance(data, dict):
        raise TriggerscopeError(f"{result_file} should hold a JSON object; is it a run folder?")
    version = data.get("version")
    if version != RESULT_VERSION:
        raise TriggerscopeError(
            f"{run} was written by another triggerscope version (result version {version!r}, "
            f"this one reads {RESULT_VERSION}); run `triggerscope find` again with this version"
        )
    vectors: dict[str, torch.Tensor] = {}
    if data.get("vectors"):
        vector_file = run / "vectors.safetensors"
        if not vector_file.is_file():
            raise TriggerscopeError(
                f"{run} is incomplete: result.json lists {len(data['vectors'])} vectors but "
                f"vectors.safetensors is missing; run `triggerscope find` again"
            )
        vectors = load_state_dict(vector_file)
    scores = None
    if (run / "latent_scores.safetensors").is_file():
        scores = load_state_dict(run / "latent_scores.safetensors").get("scores")
    try:
        result = result_from_summary(data, vectors, scores)
    except (KeyError, TypeError, ValueError) as err:
        raise TriggerscopeError(
            f"{result_file} is incomplete or malformed (missing or bad field {err}); run "
            f"`triggerscope find` again"
        ) from err
    config: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if (run / "config.json").is_file():
        raw = _read_json(run / "config.json", "config.json", run)
        if isinstance(raw, dict):
            inner = raw.get("config")
            config = dict(inner) if isinstance(inner, dict) else {}
            meta = {k: v for k, v in raw.items() if k != "config"}
    evaluation = None
    if (run / EVALUATION_FILE).is_file():
        evaluation = _read_json(run / EVALUATION_FILE, EVALUATION_FILE, run)
    return RunFolder(run, result, config, meta, evaluation)
