"""Internal target (after Lee, Breck & Arditi's refusal-direction objective): instead of the
response's cross-entropy, push a late layer toward the action.

Direction. At a target layer L (default: two thirds of the way from the steering layer to the
last layer, as MELBO), on the training prompts:
  r = mean_i h_L(prompt_i + action prefilled) - mean_i h_L(prompt_i + benign answer prefilled),
each read at the first response token (`direction_at: first_response`) or averaged over the
response tokens (`direction_at: response`; the benign answer cut to the action's length in
tokens). The benign answer is the model's own greedy answer to the prompt; prompts it already
answers with the action are left out of both means. The auditor has no triggered prompts, so
the contrast is "the model reading its own action" vs "reading its own benign answer": the state
from which it goes on with the action.

Objective. With the action prefilled and the vector added at the user's tokens (as in every
method), the mean over prompts of <h_L(delta), r/|r|> at the same positions, minus its unsteered
value, in units of the gap |r| (1.0 = moved as far again as from benign to action); maximised
with delta on a sphere of radius R (as MELBO: the projection saturates as the vector grows,
so a fixed norm keeps vectors comparable with MELBO's and the random control's).
`internal-sae-melbo` learns an SAE code v, delta = v D, with the same objective minus lam1 ||v||_1.
Each step runs layers l+1..L only, with no logits (cheaper than the CE); the result's
`final_loss` is still the response CE, the yardstick every method shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from triggerscope.chat import clip_tokens, text_ids
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import record, steer
from triggerscope.methods.config import NORM_FRACTION, LearnedConfig, _non_negative, _positive
from triggerscope.methods.context import RunContext
from triggerscope.methods.engine import Example, check_deltas, tokenize
from triggerscope.methods.melbo import resolve_target_layer, sphere_vectors
from triggerscope.methods.optimize import Space
from triggerscope.methods.prefix import FastEngine
from triggerscope.methods.readout import answers, vectors_result
from triggerscope.methods.reference import ReferenceEngine
from triggerscope.methods.result import MethodResult
from triggerscope.organisms.matching import takes_action

DirectionAt = Literal["first_response", "response"]
DIRECTION_AT: tuple[str, ...] = ("first_response", "response")


@dataclass
class InternalConfig(LearnedConfig):
    target_layer: int | None = None  # None: two thirds of the way from layer l to the last
    direction_at: DirectionAt = "first_response"
    norm: float | None = None  # R; None: NORM_FRACTION x the layer's mean activation norm
    lr: float = 0.03
    max_steps: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.direction_at not in DIRECTION_AT:
            raise TriggerscopeError(
                f"direction_at must be one of {DIRECTION_AT}, not {self.direction_at!r}"
            )
        if self.norm is not None:
            _positive(self, "norm")


@dataclass
class InternalSaeConfig(InternalConfig):
    lam1: float = 1e-3  # weight of ||v||_1 (subtracted from the objective)

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "lam1")


def _per_prompt_mean(values: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of `values` rows [S, ...] per owner index (0..n-1) [n, ...]."""
    counts = torch.bincount(owner, minlength=n).clamp_min(1).to(values.dtype)
    sums = torch.zeros((n, *values.shape[1:]), dtype=values.dtype, device=values.device)
    sums = sums.index_add(0, owner, values)
    return sums / counts.view(-1, *([1] * (values.dim() - 1)))


class FastProjection(FastEngine):
    """The fast path (prefix KV, layers 0..l once, packed rows) for the projection objective."""

    def position_means(self) -> torch.Tensor:
        """Per prompt, the unsteered target-layer output averaged over its target positions."""
        out = torch.zeros((self.n_prompts, self.d_model))
        for chunk in self.chunks:
            assert chunk.clean is not None and chunk.sel_prompt is not None
            means = _per_prompt_mean(chunk.clean, chunk.sel_prompt, len(chunk.prompts))
            out[chunk.prompts] = means.float().cpu()
        return out

    def projection(
        self, deltas: torch.Tensor, direction: torch.Tensor, grad: bool = False
    ) -> tuple[torch.Tensor, Any]:
        """Mean over prompts of the mean over target positions of <h_L(delta), direction>."""
        m = self.n_prompts
        r = direction.detach().float().to(self.device)

        def fn(chunk: Any, leaf: torch.Tensor) -> torch.Tensor:
            g = leaf.shape[0]
            h = self._select(chunk, self._steered(chunk, leaf), g).float()
            proj = (h @ r).view(g, -1)  # [g, S]
            n = len(chunk.prompts)
            per_prompt = _per_prompt_mean(proj.T, chunk.sel_prompt, n)  # [n, g]
            return per_prompt.sum(0) / m

        return self._accumulate(deltas, grad, fn)


class ReferenceProjection(ReferenceEngine):
    """The plain definition: full forward passes with a steering hook, one vector at a time."""

    def position_means(self) -> torch.Tensor:
        out = []
        for (chunk, _inputs), clean in zip(self._batches(), self._clean_targets(), strict=True):
            mask = self._target_mask(chunk, clean.shape[1])
            for r in range(len(chunk)):
                out.append(clean[r][mask[r]].float().mean(0).cpu())
        return torch.stack(out)

    def projection(
        self, deltas: torch.Tensor, direction: torch.Tensor, grad: bool = False
    ) -> tuple[torch.Tensor, Any]:
        assert self.target_layer is not None
        deltas = check_deltas(deltas, self.d_model)
        r = direction.detach().float().to(self.loaded.input_device)
        values, grads = [], []
        for delta in deltas:
            leaf = delta.detach().clone().requires_grad_(grad)
            total = torch.zeros((), dtype=torch.float32)
            with torch.set_grad_enabled(grad):
                for chunk, inputs in self._batches():
                    with (
                        steer(self.model, self.layer, leaf, inputs["user"]),
                        record(self.model, [self.target_layer], detach=False) as store,
                    ):
                        self._forward(inputs)
                    proj = store[self.target_layer].float() @ r  # [B, T]
                    mask = self._target_mask(chunk, proj.shape[1]).float()
                    per_prompt = (proj * mask).sum(1) / mask.sum(1)
                    value = per_prompt.sum() / self.n_prompts
                    if grad:
                        value.backward()
                        self.counters.backward += 1
                    total += value.detach().float().cpu()
            values.append(total)
            if grad:
                assert leaf.grad is not None
                grads.append(leaf.grad.detach().clone())
        return torch.stack(values), (torch.stack(grads) if grad else None)


Projection = FastProjection | ReferenceProjection


def projection_engine(
    ctx: RunContext,
    cfg: InternalConfig,
    examples: Sequence[Example],
    target_layer: int,
    name: str,
) -> Projection:
    """An engine for the projection objective, kept in the run's engines (passes counted)."""
    key = ("internal", name, cfg.engine, target_layer, cfg.direction_at)
    if key not in ctx.engines:
        engine: Projection
        where: dict[str, Any] = {"target_layer": target_layer, "targets": cfg.direction_at}
        if cfg.engine == "reference":
            engine = ReferenceProjection(
                ctx.loaded, examples, ctx.layer, batch_size=cfg.batch_size, **where
            )
        else:
            engine = FastProjection(
                ctx.loaded, examples, ctx.layer, max_tokens=cfg.max_tokens, **where
            )
        ctx.engines[key] = engine
    found = ctx.engines[key]
    assert isinstance(found, FastProjection | ReferenceProjection)
    return found


def benign_answers(
    ctx: RunContext, cfg: InternalConfig, n_tokens: int
) -> tuple[list[int], list[str]]:
    """The model's own greedy answers to the training prompts that do not take the action
    (cut to `n_tokens` tokens for `direction_at: response`); their prompt indices."""
    tokenizer = ctx.loaded.tokenizer
    said = answers(ctx, cfg, ctx.task.prompts, None)
    keep, texts = [], []
    for i, text in enumerate(said):
        if not text.strip() or takes_action(text, ctx.task.response):
            continue
        if cfg.direction_at == "response":
            text = clip_tokens(tokenizer, text, n_tokens)
        keep.append(i)
        texts.append(text)
    if not keep:
        raise TriggerscopeError(
            "the model gives no benign answer to any training prompt (each is empty or already "
            "takes the action), so there is no contrast for the internal direction; pass benign "
            "prompts the model answers normally"
        )
    return keep, texts


def internal_direction(
    ctx: RunContext, cfg: InternalConfig, target_layer: int
) -> tuple[torch.Tensor, Projection, dict[str, Any]]:
    """r = mean(action side) - mean(benign side) at the target layer; the action-side engine
    (the one the objective then steers); what was measured."""
    action = projection_engine(ctx, cfg, ctx.examples(True), target_layer, "action")
    tokenizer = ctx.loaded.tokenizer
    n_tokens = len(text_ids(tokenizer, ctx.task.response))
    keep, texts = benign_answers(ctx, cfg, n_tokens)
    benign_examples = tokenize(
        tokenizer, [ctx.task.prompts[i] for i in keep], texts, ctx.task.system_prompt
    )
    benign = projection_engine(ctx, cfg, benign_examples, target_layer, "benign")
    direction = action.position_means()[keep].mean(0) - benign.position_means().mean(0)
    gap = float(direction.norm())
    if not gap > 0:
        raise TriggerscopeError(
            "the action and the benign answers give the same activations at the target layer; "
            "pick another target_layer"
        )
    info = {
        "target_layer": target_layer,
        "direction_at": cfg.direction_at,
        "gap": gap,
        "benign_prompts": len(keep),
        "benign_answers": texts[:8],
    }
    return direction, action, info


def _run(ctx: RunContext, cfg: InternalConfig, sae_space: bool, method: str) -> MethodResult:
    target = resolve_target_layer(ctx, cfg.target_layer)
    direction, engine, info = internal_direction(ctx, cfg, target)
    unit = direction / direction.norm()
    gap = info["gap"]
    space = Space(engine.d_model, ctx.decoder() if sae_space else None)
    norm = cfg.norm if cfg.norm is not None else NORM_FRACTION * engine.mean_user_norm()
    base, _ = engine.projection(torch.zeros(1, engine.d_model), unit)
    lam1 = cfg.lam1 if isinstance(cfg, InternalSaeConfig) else 0.0

    def evaluate(deltas: torch.Tensor, grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        values, grads = engine.projection(deltas, unit, grad)
        gain = (values - base) / gap  # the projection gain, in gaps
        return -gain, (None if grads is None else -grads / gap)

    vectors = sphere_vectors(ctx, cfg, space, evaluate, norm, lam1, method)
    extras = {**info, "norm": norm, "unsteered_projection": float(base[0])}
    return vectors_result(ctx, cfg, method, vectors, extras)


def run_internal_melbo(ctx: RunContext, cfg: InternalConfig) -> MethodResult:
    return _run(ctx, cfg, False, "internal-melbo")


def run_internal_sae_melbo(ctx: RunContext, cfg: InternalSaeConfig) -> MethodResult:
    if ctx.sae is None:
        raise TriggerscopeError("internal-sae-melbo needs an SAE for the layer; pass --sae PATH")
    return _run(ctx, cfg, True, "internal-sae-melbo")
