"""Unsupervised MELBO and unsupervised SAE-MELBO (Mack & Turner): no response needed to train.

A vector of fixed norm R, added at layer l on the user's tokens, is trained to maximise
sum over prompts of (sum over target positions of ||h_L(delta) - h_L(0)||_2^p)^(1/q) at a later
layer L (norm over the hidden axis; target positions: the template tokens after the user's text
by default). The gradient is projected on the sphere's tangent and the vector renormalised to R
after every Adam step. SAE-MELBO learns a latent code v, delta = v D, with the same objective
minus lam1 ||v||_1 and ||v D|| held at R. The response only enters the read-out (final_loss,
action rate), never the training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers
from triggerscope.methods.config import NORM_FRACTION, LearnedConfig, _non_negative, _positive
from triggerscope.methods.context import RunContext
from triggerscope.methods.engine import TARGETS as TARGET_CHOICES
from triggerscope.methods.engine import Targets, check_target_layer
from triggerscope.methods.optimize import Evaluate, Space, train_vectors
from triggerscope.methods.readout import vectors_result
from triggerscope.methods.result import MethodResult, VectorResult


@dataclass
class MelboConfig(LearnedConfig):
    norm: float | None = None  # R; None: NORM_FRACTION x the layer's mean activation norm
    target_layer: int | None = None  # None: two thirds of the way from layer l to the last layer
    p: float = 2.0
    q: float = 1.0
    targets: Targets = "after_user"
    lr: float = 0.03
    max_steps: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "p", "q")
        if self.norm is not None:
            _positive(self, "norm")
        if self.targets not in TARGET_CHOICES:
            raise TriggerscopeError(
                f"targets must be one of {TARGET_CHOICES}, not {self.targets!r}"
            )


@dataclass
class SaeMelboConfig(MelboConfig):
    lam1: float = 1e-3  # weight of ||v||_1 (subtracted from the objective)

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "lam1")


def default_target_layer(n_layers: int, layer: int) -> int:
    return layer + (n_layers - 1 - layer) * 2 // 3


def resolve_target_layer(ctx: RunContext, target_layer: int | None) -> int:
    """The configured target layer, checked, or the default for the steering layer."""
    n_layers = len(decoder_layers(ctx.loaded.model))
    if target_layer is not None:
        return check_target_layer(n_layers, ctx.layer, target_layer)
    return default_target_layer(n_layers, ctx.layer)


def sphere_vectors(
    ctx: RunContext,
    cfg: LearnedConfig,
    space: Space,
    evaluate: Evaluate,
    norm: float,
    lam1: float,
    method: str,
) -> list[VectorResult]:
    """cfg.k orthogonal vectors of norm `norm` minimising `evaluate` (an objective to maximise,
    negated), plus lam1 ||theta||_1 in an SAE space; `objective` is the maximised value."""
    sae_space = space.decoder is not None

    def penalty(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return lam1 * theta.abs().sum(-1)

    def init(gen: torch.Generator) -> torch.Tensor:
        return torch.randn(space.dim, generator=gen)  # renormalised to R by the trainer

    trained = train_vectors(
        space,
        evaluate,
        penalty if sae_space else None,
        cfg,
        init,
        sphere=norm,
        progress=ctx.progress,
        desc=method,
    )
    return [
        VectorResult(
            vector=t.delta,
            final_loss=float("nan"),
            latent_vector=t.theta if sae_space else None,
            steps=t.steps,
            objective=-t.loss,  # the maximised objective
            stopped=t.stopped,
        )
        for t in trained
    ]


def _run(ctx: RunContext, cfg: MelboConfig, sae_space: bool, method: str) -> MethodResult:
    target = resolve_target_layer(ctx, cfg.target_layer)
    engine = ctx.unsupervised(cfg, target, cfg.targets)
    space = Space(engine.d_model, ctx.decoder() if sae_space else None)
    norm = cfg.norm if cfg.norm is not None else NORM_FRACTION * engine.mean_user_norm()
    lam1 = cfg.lam1 if isinstance(cfg, SaeMelboConfig) else 0.0

    def evaluate(deltas: torch.Tensor, grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        values, grads = engine.divergence(deltas, grad, p=cfg.p, q=cfg.q)  # type: ignore[call-arg]
        return -values, (None if grads is None else -grads)

    vectors = sphere_vectors(ctx, cfg, space, evaluate, norm, lam1, method)
    return vectors_result(ctx, cfg, method, vectors, {"target_layer": target, "norm": norm})


def run_melbo(ctx: RunContext, cfg: MelboConfig) -> MethodResult:
    return _run(ctx, cfg, False, "melbo")


def run_sae_melbo(ctx: RunContext, cfg: SaeMelboConfig) -> MethodResult:
    if ctx.sae is None:
        raise TriggerscopeError("sae-melbo needs an SAE for the layer; pass --sae PATH")
    return _run(ctx, cfg, True, "sae-melbo")
