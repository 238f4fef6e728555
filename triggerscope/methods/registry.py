"""`run_method(name, loaded, task, sae=None, **overrides)`: every method behind one call.

Overrides are fields of the method's config dataclass (validated; unknown names are refused with
the list of known ones); the config actually used is saved in the result. The result also gets
the wall time and the number of batched forward/backward passes the method made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import resolve_layer
from triggerscope.loading import LoadedModel
from triggerscope.methods import (
    internal,
    melbo,
    random_control,
    sae_attribution,
    supervised,
    token_baseline,
)
from triggerscope.methods.config import build_config
from triggerscope.methods.context import RunContext
from triggerscope.methods.result import MethodResult
from triggerscope.methods.task import FindTask
from triggerscope.sae.model import SAE


@dataclass(frozen=True)
class MethodSpec:
    config: type
    run: Callable[[RunContext, Any], MethodResult]
    needs_sae: bool
    summary: str


METHODS: dict[str, MethodSpec] = {
    "sae-attribution": MethodSpec(
        sae_attribution.SaeAttributionConfig,
        sae_attribution.run,
        True,
        "gradient of the response CE projected on SAE decoder rows",
    ),
    "melbo": MethodSpec(
        melbo.MelboConfig,
        melbo.run_melbo,
        False,
        "unsupervised: fixed-norm vectors that change a later layer most",
    ),
    "sae-melbo": MethodSpec(
        melbo.SaeMelboConfig, melbo.run_sae_melbo, True, "unsupervised MELBO in SAE latent space"
    ),
    "supervised-melbo": MethodSpec(
        supervised.SupervisedMelboConfig,
        supervised.run_supervised_melbo,
        False,
        "vectors that make the model say the response (CE + l2)",
    ),
    "supervised-sae-melbo": MethodSpec(
        supervised.SupervisedSaeMelboConfig,
        supervised.run_supervised_sae_melbo,
        True,
        "sparse SAE codes that make the model say the response (CE + l1)",
    ),
    "internal-melbo": MethodSpec(
        internal.InternalConfig,
        internal.run_internal_melbo,
        False,
        "fixed-norm vectors that push a late layer along the action-vs-benign direction",
    ),
    "internal-sae-melbo": MethodSpec(
        internal.InternalSaeConfig,
        internal.run_internal_sae_melbo,
        True,
        "internal-melbo in SAE latent space (+ l1)",
    ),
    "token": MethodSpec(
        token_baseline.TokenConfig,
        token_baseline.run,
        False,
        "the single inserted token that most lowers the response CE",
    ),
    "random": MethodSpec(
        random_control.RandomConfig,
        random_control.run,
        False,
        "control: random orthogonal vectors of the same norm",
    ),
}


def method_names() -> list[str]:
    return list(METHODS)


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise TriggerscopeError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def run_method(
    name: str,
    loaded: LoadedModel,
    task: FindTask,
    sae: SAE | None = None,
    *,
    labels: Mapping[int, str] | None = None,
    progress: bool = False,
    **overrides: Any,
) -> MethodResult:
    spec = method_spec(name)
    cfg = build_config(spec.config, dict(overrides))
    model = loaded.model
    layer = resolve_layer(model, task.layer)
    d_model = int(model.get_input_embeddings().weight.shape[1])
    if spec.needs_sae and sae is None:
        raise TriggerscopeError(f"{name} needs an SAE trained at layer {layer}; pass --sae PATH")
    if sae is not None:
        sae.check_fits(d_model, layer)
    k = getattr(cfg, "k", 1)
    if k > d_model:
        raise TriggerscopeError(
            f"k={k} orthogonal vectors cannot fit in d_model={d_model}; use k <= {d_model}"
        )
    model.requires_grad_(False)  # only the steering vector is optimised
    ctx = RunContext(loaded, task, layer, sae, labels, progress)
    start = time.perf_counter()
    result = spec.run(ctx, cfg)
    result.wall_seconds = time.perf_counter() - start
    result.forward_passes, result.backward_passes = ctx.passes()
    result.config = {
        "method": name,
        "model": loaded.name,
        "layer": layer,
        "system_prompt": task.system_prompt,
        "n_prompts": len(task.prompts),
        "n_heldout": len(task.heldout_prompts),
        "sae": None if sae is None else sae.cfg.to_dict(),
        **cfg.to_dict(),
    }
    return result
