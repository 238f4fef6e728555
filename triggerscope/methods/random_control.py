"""Random control: k random orthogonal vectors of a given norm, scored like the learned ones.

A method whose vectors do no better than these (steered CE, action rate, top latents) has found
nothing. `norm` None uses NORM_FRACTION (0.13) of the mean norm of the unsteered residual
stream at layer l over the user's tokens, the norm supervised MELBO's vectors reach on
fruit-refusal; pass the learned vectors' norm to match a method exactly. (At the full activation
norm, random vectors already make the fruit-refusal organism refuse: large perturbations of an
early layer fire this backdoor, so the action rate alone proves little.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from triggerscope.methods.config import NORM_FRACTION, VectorConfig, _positive
from triggerscope.methods.context import RunContext
from triggerscope.methods.readout import vectors_result
from triggerscope.methods.result import MethodResult, VectorResult


@dataclass
class RandomConfig(VectorConfig):
    k: int = 4
    norm: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "k")
        if self.norm is not None:
            _positive(self, "norm")


def run(ctx: RunContext, cfg: RandomConfig) -> MethodResult:
    engine = ctx.supervised(cfg)
    norm = cfg.norm if cfg.norm is not None else NORM_FRACTION * engine.mean_user_norm()
    gen = torch.Generator().manual_seed(cfg.seed)
    q, _ = torch.linalg.qr(torch.randn(engine.d_model, cfg.k, generator=gen))
    vectors = [VectorResult(vector=q[:, i] * norm, final_loss=float("nan")) for i in range(cfg.k)]
    return vectors_result(ctx, cfg, "random", vectors, {"norm": float(norm)})
