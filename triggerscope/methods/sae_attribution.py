"""SAE-Attribution: which latents, added at layer l, would most lower the response's loss.

For each prompt x: g(x) = the gradient of CE(response | x) with respect to the residual stream
at layer l, averaged over x's user tokens (no steering). v = mean over prompts of g(x). The
first-order change of the loss when latent i is added with activation a is a * (d_i . v), d_i its
decoder row; so the score of latent i is -(d_i . v): positive scores lower the loss, and latents
are ranked by it, highest first (the sign is tested). No vectors are learned.
"""

from __future__ import annotations

from dataclasses import dataclass

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.config import MethodConfig
from triggerscope.methods.context import RunContext
from triggerscope.methods.readout import rank_latents
from triggerscope.methods.result import MethodResult


@dataclass
class SaeAttributionConfig(MethodConfig):
    pass


def run(ctx: RunContext, cfg: SaeAttributionConfig) -> MethodResult:
    if ctx.sae is None:
        raise TriggerscopeError("sae-attribution needs an SAE for the layer; pass --sae PATH")
    engine = ctx.supervised(cfg)
    grads = engine.attribution_grads()  # [m, d]
    mean = grads.mean(0)
    scores = -(ctx.decoder() @ mean)
    return MethodResult(
        method="sae-attribution",
        layer=ctx.layer,
        response=ctx.task.response,
        latent_ranking=rank_latents(scores, cfg.top_latents, ctx.labels),
        latent_scores=scores,
        extras={"mean_gradient_norm": float(mean.norm())},
    )
