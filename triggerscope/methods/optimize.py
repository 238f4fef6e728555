"""The one optimisation loop of the learned methods: Adam, orthogonal vectors, plateau stop.

A vector lives in a parameter space: the residual stream itself (delta = theta) or an SAE's
latent space (delta = theta @ D, D the decoder rows). Vector k is kept in the orthogonal
complement of the earlier vectors *in the residual stream*: for a latent-space theta that is the
complement of {D e_j} in latent space, so delta_k . e_j = 0 exactly. Each step (as in Mack &
Turner's code): gradient projected off the earlier vectors (and, with a fixed norm R, off the
radial direction: the sphere's tangent), Adam step, then theta re-projected and renormalised.

Sequential mode trains vector k after vectors 0..k-1 are final. Parallel mode trains all k in one
batched pass, vector k projected off the *current* vectors 0..k-1 each step (Gram-Schmidt order):
vector 0 follows exactly the path it would alone, and at the end every pair is orthogonal; the
later vectors can differ from sequential ones because their constraint moved while they trained.

A non-finite loss or gradient stops the run with a TriggerscopeError naming the step and a
smaller learning rate; no vector is returned, so none can be written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.config import LearnedConfig

# (deltas [N, d], grad) -> (loss to minimise [N], d loss / d delta [N, d])
Evaluate = Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]
# (theta [N, p], delta [N, d]) -> penalty [N] (differentiable)
Penalty = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Space:
    """Residual space (decoder None) or an SAE latent space (decoder [d_sae, d_model])."""

    def __init__(self, d_model: int, decoder: torch.Tensor | None = None) -> None:
        self.d_model = d_model
        self.decoder = decoder
        self.dim = d_model if decoder is None else int(decoder.shape[0])

    def to_residual(self, theta: torch.Tensor) -> torch.Tensor:
        return theta if self.decoder is None else theta @ self.decoder

    def to_theta_grad(self, grad_delta: torch.Tensor) -> torch.Tensor:
        return grad_delta if self.decoder is None else grad_delta @ self.decoder.T

    def basis(self, earlier: list[torch.Tensor]) -> torch.Tensor | None:
        """Orthonormal basis [dim, k] of the theta directions that would touch `earlier`."""
        if not earlier:
            return None
        e = torch.stack(earlier).T  # [d, k]
        if self.decoder is not None:
            e = self.decoder @ e
        q, _ = torch.linalg.qr(e)
        return q

    @staticmethod
    def project(x: torch.Tensor, basis: torch.Tensor | None) -> torch.Tensor:
        return x if basis is None else x - basis @ (basis.T @ x)

    def normal(self, theta: torch.Tensor) -> torch.Tensor:
        """Direction in which ||delta(theta)|| grows (for the sphere's tangent)."""
        delta = self.to_residual(theta)
        return delta if self.decoder is None else self.decoder @ delta

    def renormalise(self, theta: torch.Tensor, norm: float) -> torch.Tensor:
        size = self.to_residual(theta).norm()
        if not torch.isfinite(size) or size == 0:
            return theta
        return theta * (norm / size)


@dataclass
class Trained:
    theta: torch.Tensor
    delta: torch.Tensor
    loss: float  # the minimised quantity (objective + penalty) of the returned vector
    steps: int
    stopped: str  # "plateau" or "max_steps"


def _check_finite(desc: str, what: str, values: torch.Tensor, step: int, k: int, lr: float) -> None:
    if not bool(torch.isfinite(values).all()):
        bad = values[~torch.isfinite(values)][0].item()
        raise TriggerscopeError(
            f"{desc}: the {what} became {bad} at step {step} of vector {k}; lower the learning "
            f"rate (lr={lr:g}), e.g. lr={lr / 10:g}"
        )


def train_vectors(
    space: Space,
    evaluate: Evaluate,
    penalty: Penalty | None,
    cfg: LearnedConfig,
    init: Callable[[torch.Generator], torch.Tensor],
    *,
    sphere: float | None = None,
    progress: bool = False,
    desc: str = "vectors",
) -> list[Trained]:
    """Train cfg.k mutually orthogonal vectors; `init(gen)` draws one theta [dim]."""
    from tqdm.auto import tqdm

    if cfg.k > space.d_model:
        raise TriggerscopeError(
            f"k={cfg.k} orthogonal vectors cannot fit in d_model={space.d_model}; "
            f"use k <= {space.d_model}"
        )
    groups = [list(range(cfg.k))] if cfg.parallel else [[k] for k in range(cfg.k)]
    finished: list[Trained] = []
    bar = tqdm(total=cfg.k * cfg.max_steps, desc=desc, disable=not progress, unit="step")
    try:
        for group in groups:
            finished.extend(
                _train_group(
                    space, evaluate, penalty, cfg, init, group, finished, sphere, bar, desc
                )
            )
    finally:
        bar.close()
    return finished


def _train_group(
    space: Space,
    evaluate: Evaluate,
    penalty: Penalty | None,
    cfg: LearnedConfig,
    init: Callable[[torch.Generator], torch.Tensor],
    group: list[int],
    done: list[Trained],
    sphere: float | None,
    bar: object,
    desc: str,
) -> list[Trained]:
    fixed = [t.delta for t in done]
    thetas: list[torch.Tensor] = []
    for k in group:
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + k)
        thetas.append(init(gen).float().clone())

    def constrain(j: int) -> None:
        """Re-project theta j off everything before it, then back onto the sphere."""
        earlier = fixed + [space.to_residual(thetas[i]).detach() for i in range(j)]
        theta = space.project(thetas[j], space.basis(earlier))
        thetas[j] = space.renormalise(theta, sphere) if sphere is not None else theta

    for j in range(len(group)):
        constrain(j)
    params = [torch.nn.Parameter(t) for t in thetas]
    opts = [torch.optim.Adam([p], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) for p in params]
    best = [float("inf")] * len(group)
    stale = [0] * len(group)
    steps = [0] * len(group)
    last = [float("nan")] * len(group)
    stopped = ["max_steps"] * len(group)
    active = list(range(len(group)))
    for step in range(cfg.max_steps):
        if not active:
            break
        theta = torch.stack([params[j].detach() for j in active]).requires_grad_(True)
        delta = space.to_residual(theta)
        values, grad_delta = evaluate(delta.detach(), True)
        assert grad_delta is not None
        total = values.clone()
        if penalty is not None:
            pen = penalty(theta, delta)
            pen.sum().backward()
            total = total + pen.detach().cpu()
        grad_theta = space.to_theta_grad(grad_delta.to(theta.dtype))
        if theta.grad is not None:
            grad_theta = grad_theta + theta.grad
        for row, j in enumerate(active):
            _check_finite(desc, "loss", total[row : row + 1], step, group[j], cfg.lr)
            _check_finite(desc, "gradient", grad_theta[row], step, group[j], cfg.lr)
        for row, j in enumerate(active):
            g = grad_theta[row]
            earlier = fixed + [space.to_residual(params[i].detach()) for i in range(j)]
            g = space.project(g, space.basis(earlier))
            if sphere is not None:
                n = space.normal(params[j].detach())
                n = n / n.norm().clamp_min(1e-12)
                g = g - (g @ n) * n
            params[j].grad = g.detach().clone()
            opts[j].step()
            opts[j].zero_grad(set_to_none=True)
            with torch.no_grad():
                thetas[j] = params[j].detach()
                constrain(j)
                params[j].copy_(thetas[j])
            steps[j] = step + 1
            last[j] = float(total[row])
            if last[j] < best[j] - cfg.tol * max(1.0, abs(best[j])) or best[j] == float("inf"):
                best[j], stale[j] = last[j], 0
            else:
                stale[j] += 1
        # A vector stops only after every earlier vector of its group has stopped: it must stay
        # orthogonal to vectors that still move.
        for j in list(active):
            if stale[j] >= cfg.patience and all(i not in active for i in range(j)):
                stopped[j] = "plateau"
                active.remove(j)
        if hasattr(bar, "update"):
            bar.update(len(group))
            bar.set_postfix(loss=f"{min(last):.4g}")  # type: ignore[attr-defined]
    thetas = [p.detach().clone() for p in params]
    deltas = torch.stack([space.to_residual(t) for t in thetas]).detach()
    if not bool(torch.isfinite(deltas).all()):
        raise TriggerscopeError(
            f"{desc}: a vector is not finite after training; lower the learning rate "
            f"(lr={cfg.lr:g}), e.g. lr={cfg.lr / 10:g}"
        )
    with torch.no_grad():  # the exact final objective of the vectors returned
        final, _ = evaluate(deltas, False)
        if penalty is not None:
            final = final + penalty(torch.stack(thetas), deltas).cpu()
    return [
        Trained(thetas[j], deltas[j], float(final[j]), steps[j], stopped[j])
        for j in range(len(group))
    ]
