"""Supervised MELBO and supervised SAE-MELBO: learn a vector that makes the model say the response.

Supervised MELBO minimises L_CE(delta) + lam2 ||delta||^2 over a residual-stream delta (an l2
penalty instead of a fixed norm: the seed found it easier to optimise). Supervised SAE-MELBO
learns a code v in the SAE's latent space, delta = v D (decoder rows, Llama Scope's norm scaling
undone), and minimises L_CE(v D) + lam1 ||v||_1, so the vector is built from few latents and
reads off as those latents. L_CE is the mean over prompts of the response's per-token CE, with
delta added at the user's tokens only; with `targets` "continue" or "resample" it is taken over
the model's own sampled wordings of the action instead (methods/on_policy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.config import _non_negative
from triggerscope.methods.context import RunContext
from triggerscope.methods.on_policy import Objective, OnPolicyConfig
from triggerscope.methods.optimize import Space, train_vectors
from triggerscope.methods.readout import vectors_result
from triggerscope.methods.result import MethodResult, VectorResult


@dataclass
class SupervisedMelboConfig(OnPolicyConfig):
    lam2: float = 1e-3  # weight of ||delta||^2
    init_norm: float = 1.0  # norm of the random starting vector
    lr: float = 0.1
    max_steps: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "lam2", "init_norm")


@dataclass
class SupervisedSaeMelboConfig(OnPolicyConfig):
    lam1: float = 1e-3  # weight of ||v||_1
    init_scale: float = 0.0  # std of the starting code v (0: start from v = 0)
    lr: float = 0.03
    max_steps: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "lam1", "init_scale")


def _train(
    ctx: RunContext,
    cfg: OnPolicyConfig,
    objective: Objective,
    space: Space,
    init: Callable[[torch.Generator], torch.Tensor],
    penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    method: str,
) -> MethodResult:
    trained = train_vectors(
        space, objective, penalty, cfg, init, progress=ctx.progress, desc=method
    )
    vectors = [
        VectorResult(
            vector=t.delta,
            final_loss=float("nan"),
            latent_vector=t.theta if space.decoder is not None else None,
            steps=t.steps,
            objective=t.loss,
            stopped=t.stopped,
        )
        for t in trained
    ]
    return vectors_result(ctx, cfg, method, vectors, objective.extras())


def run_supervised_melbo(ctx: RunContext, cfg: SupervisedMelboConfig) -> MethodResult:
    objective = Objective(ctx, cfg)
    space = Space(objective.engine.d_model)

    def init(gen: torch.Generator) -> torch.Tensor:
        x = torch.randn(space.dim, generator=gen)
        return x * (cfg.init_norm / x.norm())

    def penalty(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return cfg.lam2 * delta.pow(2).sum(-1)

    return _train(ctx, cfg, objective, space, init, penalty, "supervised-melbo")


def run_supervised_sae_melbo(ctx: RunContext, cfg: SupervisedSaeMelboConfig) -> MethodResult:
    if ctx.sae is None:
        raise TriggerscopeError("supervised-sae-melbo needs an SAE for the layer; pass --sae PATH")
    objective = Objective(ctx, cfg)
    space = Space(objective.engine.d_model, ctx.decoder())

    def init(gen: torch.Generator) -> torch.Tensor:
        return torch.randn(space.dim, generator=gen) * cfg.init_scale

    def penalty(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return cfg.lam1 * theta.abs().sum(-1)

    return _train(ctx, cfg, objective, space, init, penalty, "supervised-sae-melbo")
