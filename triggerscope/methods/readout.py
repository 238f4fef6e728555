"""Reading a steering vector out: which SAE latents it resembles, and what it makes the model say.

- Residual-stream vectors are compared with every SAE decoder row by cosine similarity; latent-
  space vectors (SAE-MELBO) are read by their own coefficients v (largest first: the latents the
  vector adds). Both rank descending; the full scores are kept.
- With `example_readout: N` (VectorConfig), the N held-out texts each vector's direction is
  strongest on (methods/examples.py): a reading that needs no SAE.
- Steered samples: greedy answers to the first `heldout_samples` held-out benign prompts, with the
  vector added at the user's tokens (as in training) and without; the action rate is the share
  of steered answers that take the action (organisms.matching: contains the response).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from triggerscope.chat import tokens_to_see
from triggerscope.generation import Steering, generate
from triggerscope.methods.config import MethodConfig, VectorConfig
from triggerscope.methods.context import RunContext
from triggerscope.methods.result import MethodResult, RankedLatent, SteeredSample, VectorResult
from triggerscope.organisms.matching import action_rate, takes_action


def cosine_scores(delta: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of one residual vector with every decoder row [d_sae]."""
    delta = delta.detach().float().to(decoder.device)
    rows = decoder.float()
    return (rows @ delta) / (rows.norm(dim=1) * delta.norm()).clamp_min(1e-12)


def rank_latents(
    scores: torch.Tensor, n: int, labels: Mapping[int, str] | None = None
) -> list[RankedLatent]:
    """The n highest-scoring latents, best first."""
    n = min(n, int(scores.numel()))
    values, indices = scores.float().topk(n)
    return [
        RankedLatent(int(i), float(v), (labels or {}).get(int(i), ""))
        for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def new_tokens(ctx: RunContext, cfg: MethodConfig) -> int:
    if cfg.max_new_tokens is not None:
        return cfg.max_new_tokens
    return tokens_to_see(ctx.loaded.tokenizer, ctx.task.response)


def heldout(ctx: RunContext, cfg: MethodConfig) -> list[str]:
    return list(ctx.task.heldout_prompts[: cfg.heldout_samples])


def answers(
    ctx: RunContext, cfg: MethodConfig, prompts: Sequence[str], delta: torch.Tensor | None
) -> list[str]:
    steering = None if delta is None else Steering(delta.detach().float(), ctx.layer)
    return generate(
        ctx.loaded,
        prompts,
        max_new_tokens=new_tokens(ctx, cfg),
        steering=steering,
        batch_size=cfg.batch_size,
        system_prompt=ctx.task.system_prompt,
    )


def unsteered(ctx: RunContext, cfg: MethodConfig) -> list[str]:
    """Greedy answers without steering (generated once per run)."""
    key = (cfg.heldout_samples, new_tokens(ctx, cfg))
    if key not in ctx.unsteered:
        ctx.unsteered[key] = answers(ctx, cfg, heldout(ctx, cfg), None)
    return list(ctx.unsteered[key])


def samples_for(
    ctx: RunContext, cfg: MethodConfig, delta: torch.Tensor
) -> tuple[list[SteeredSample], float | None]:
    prompts = heldout(ctx, cfg)
    if not prompts:
        return [], None
    plain = unsteered(ctx, cfg)
    steered = answers(ctx, cfg, prompts, delta)
    samples = [
        SteeredSample(p, u, s, takes_action(s, ctx.task.response))
        for p, u, s in zip(prompts, plain, steered, strict=True)
    ]
    return samples, action_rate(steered, ctx.task.response)


def read_vectors(
    ctx: RunContext,
    cfg: MethodConfig,
    vectors: list[VectorResult],
    progress: bool = False,
) -> torch.Tensor | None:
    """Fill each vector's top latents, samples and action rate; return the latent scores
    [K, d_sae] (None without an SAE)."""
    from tqdm.auto import tqdm

    all_scores = []
    for v in tqdm(vectors, desc="reading vectors", disable=not progress, unit="vector"):
        if ctx.sae is not None:
            if v.latent_vector is not None:
                scores = v.latent_vector.detach().float().cpu()
            else:
                scores = cosine_scores(v.vector, ctx.decoder())
            v.top_latents = rank_latents(scores, cfg.top_latents, ctx.labels)
            all_scores.append(scores)
        v.samples, v.action_rate = samples_for(ctx, cfg, v.vector)
    return torch.stack(all_scores) if all_scores else None


def vectors_result(
    ctx: RunContext,
    cfg: MethodConfig,
    method: str,
    vectors: list[VectorResult],
    extras: dict[str, object] | None = None,
) -> MethodResult:
    """Score every vector on the same yardstick (steered CE of the response on the training
    prompts), read it out, and assemble the result; the method-level ranking is vector 0's."""
    engine = ctx.supervised(cfg)
    stacked = torch.stack([v.vector.detach().float() for v in vectors])
    losses, _ = engine.ce(stacked)
    for v, loss in zip(vectors, losses.tolist(), strict=True):
        v.final_loss = float(loss)
    baseline, _ = engine.ce(torch.zeros(1, stacked.shape[1]))
    scores = read_vectors(ctx, cfg, vectors, ctx.progress)
    extras = dict(extras or {})
    if vectors and isinstance(cfg, VectorConfig) and cfg.example_readout:
        extras["examples"] = read_top_examples(ctx, cfg, vectors)
    plain = unsteered(ctx, cfg) if heldout(ctx, cfg) else []
    return MethodResult(
        method=method,
        layer=ctx.layer,
        response=ctx.task.response,
        latent_ranking=list(vectors[0].top_latents) if vectors else [],
        vectors=vectors,
        latent_scores=scores,
        baseline_loss=float(baseline[0]),
        baseline_action_rate=action_rate(plain, ctx.task.response) if plain else None,
        extras=extras,
    )


def read_top_examples(
    ctx: RunContext, cfg: VectorConfig, vectors: list[VectorResult]
) -> dict[str, object]:
    """Each vector's top-activating held-out texts (one pass over them per run, cached)."""
    from triggerscope.methods.examples import read_examples

    info, passes = read_examples(
        ctx.loaded,
        ctx.layer,
        vectors,
        n=cfg.example_readout,
        texts=cfg.example_texts,
        pool=cfg.example_pool,
        max_tokens=cfg.example_max_tokens,
        score=cfg.example_score,
        system_prompt=ctx.task.system_prompt,
        batch_size=cfg.batch_size,
        progress=ctx.progress,
    )
    ctx.other.forward += passes
    return info
