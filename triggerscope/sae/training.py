"""Train a TopK SAE on cached activations: Adam, AuxK against dead latents, resumable.

The recipe (OpenAI's "Scaling and evaluating sparse autoencoders", as in EleutherAI sparsify):
TopK with k ~32; loss = fraction of variance unexplained + 1/32 * AuxK, where AuxK asks the
top `aux_k` *dead* latents to reconstruct the remaining error, so latents that stopped firing get
gradient again; decoder rows kept at unit norm (the gradient's radial part is removed before
each step and rows are renormalised after it); b_dec starts at the data mean; Adam with
lr = 2e-4 / sqrt(n_latents / 16384).

Determinism: the initialisation comes from `seed`, the order of epoch e from (seed, e), and
nothing else draws random numbers, so a run resumed from a checkpoint computes the same SAE as
one that was never stopped (on the same machine and thread count).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from triggerscope.atomic import write_json
from triggerscope.errors import TriggerscopeError
from triggerscope.sae.model import SAE, SAEConfig
from triggerscope.safetensors_io import load_state_dict, save_state_dict

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint.json"
CONFIG_FILE = "train_config.json"
_PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")
# fields that may change between a run and its resumption without changing the result
_RESUME_FREE = ("checkpoint_every", "log_every")


@dataclass
class TrainConfig:
    """How to train one TopK SAE; checks itself on creation."""

    n_latents: int = 4608  # SAE width (8x d_model for the default model)
    k: int = 32  # active latents per token
    lr: float | None = None  # None: 2e-4 / sqrt(n_latents / 16384)
    batch_size: int = 4096  # tokens per step
    epochs: int = 1  # passes over the cached tokens
    max_tokens: int | None = None  # use only the first N cached tokens (None: all)
    aux_k: int | None = None  # dead latents asked to explain the residual (None: d_in // 2)
    aux_coef: float = 1 / 32  # weight of the AuxK loss
    dead_after_tokens: int = 500_000  # a latent unfired for this many tokens counts as dead
    warmup_steps: int = 50  # linear lr warm-up
    decay_fraction: float = 0.2  # lr decays linearly to 0 over this last share of the steps
    seed: int = 0
    checkpoint_every: int = 100  # steps between checkpoints (0: only at the end)
    log_every: int = 10  # steps between history rows

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TriggerscopeError(f"bad training config: {message}")

        need(self.n_latents > 0, f"n_latents must be positive, got {self.n_latents}")
        need(0 < self.k <= self.n_latents, f"k must be in 1..n_latents, got {self.k}")
        need(self.lr is None or self.lr > 0, f"lr must be positive, got {self.lr}")
        need(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        need(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        need(
            self.max_tokens is None or self.max_tokens > 0,
            f"max_tokens must be positive, got {self.max_tokens}",
        )
        need(self.aux_k is None or self.aux_k > 0, f"aux_k must be positive, got {self.aux_k}")
        need(self.aux_coef >= 0, f"aux_coef must be >= 0, got {self.aux_coef}")
        need(self.dead_after_tokens > 0, "dead_after_tokens must be positive")
        need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        need(0 <= self.decay_fraction < 1, "decay_fraction must be in [0, 1)")
        need(self.checkpoint_every >= 0, "checkpoint_every must be >= 0")
        need(self.log_every > 0, "log_every must be positive")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(self.n_latents / 16384)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    sae: SAE
    steps: int
    tokens_seen: int
    seconds: float  # training time, summed over resumed runs
    history: list[dict[str, float]]
    finished: bool


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    lr = cfg.learning_rate
    if cfg.warmup_steps and step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    decay_start = int(total * (1 - cfg.decay_fraction))
    if cfg.decay_fraction and step >= decay_start:
        lr *= max(0.0, (total - step) / max(1, total - decay_start))
    return lr


def _decode(indices: torch.Tensor, values: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """sum_j values[:, j] * W_dec[indices[:, j]]: k rows per token instead of a dense matmul."""
    return F.embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")


class _SelectedPre(torch.autograd.Function):
    """Entries pre[b, idx[b, j]] of pre = xc @ W_enc + b_enc (given, computed without grad).

    The backward touches only the selected entries (k + aux_k per token, not all latents), so a
    step costs one dense matmul instead of three: the gradients of W_enc, b_enc and xc are
    scatter-adds of the selected rows (a sparse matmul and an embedding bag).
    """

    @staticmethod
    def forward(
        ctx: Any,
        xc: torch.Tensor,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        pre: torch.Tensor,
        idx: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(xc, W_enc, idx)
        return pre.gather(1, idx)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xc, W_enc, idx = ctx.saved_tensors
        batch, per_row = idx.shape
        flat, g = idx.reshape(-1), grad.reshape(-1).contiguous()
        grad_xc = None
        if ctx.needs_input_grad[0]:
            grad_xc = _decode(idx, grad.contiguous(), W_enc.t().contiguous())
        rows = torch.arange(batch, device=idx.device).repeat_interleave(per_row)
        shape = (W_enc.shape[1], batch)
        select = torch.sparse_coo_tensor(
            torch.stack([flat, rows]), g, shape, check_invariants=False
        )
        grad_w = torch.sparse.mm(select, xc).t()
        grad_b = torch.zeros(W_enc.shape[1], dtype=g.dtype, device=g.device)
        grad_b = grad_b.index_add_(0, flat, g)
        return grad_xc, grad_w, grad_b, None, None


def train_step_loss(
    sae: SAE, x: torch.Tensor, dead: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Loss of one batch, its parts, and which latents fired."""
    xc = x * sae.cfg.input_scale
    if sae.cfg.apply_b_dec_to_input:
        xc = xc - sae.b_dec
    with torch.no_grad():
        pre = torch.addmm(sae.b_enc, xc, sae.W_enc)
        indices = pre.topk(cfg.k, dim=-1, sorted=False).indices
        n_dead = int(dead.sum())
        use_aux = bool(n_dead and cfg.aux_coef > 0)
        k_aux = min(cfg.aux_k or x.shape[1] // 2, n_dead)
        if use_aux:
            aux_pre = pre.masked_fill(~dead, float("-inf"))
            aux_indices = aux_pre.topk(k_aux, dim=-1, sorted=False).indices
            indices = torch.cat([indices, aux_indices], dim=1)
    selected = _SelectedPre.apply(xc, sae.W_enc, sae.b_enc, pre, indices).relu()
    values, indices_k = selected[:, : cfg.k], indices[:, : cfg.k]
    x_hat = _decode(indices_k, values, sae.W_dec) + sae.b_dec
    err = x - x_hat
    total_var = (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    fvu = err.pow(2).sum() / total_var
    loss = fvu
    aux = torch.zeros((), device=x.device)
    if use_aux:
        err_hat = _decode(indices[:, cfg.k :], selected[:, cfg.k :], sae.W_dec)
        aux = (err_hat - err.detach()).pow(2).sum() / total_var
        loss = loss + cfg.aux_coef * min(n_dead / k_aux, 1.0) * aux
    fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=x.device)
    fired[indices_k[values > 0]] = True
    parts = {
        "fvu": float(fvu.detach()),
        "aux": float(aux.detach()),
        "dead_fraction": n_dead / sae.d_sae,
    }
    return loss, parts, fired


@torch.no_grad()
def _remove_parallel_grad(sae: SAE) -> None:
    grad = sae.W_dec.grad
    if grad is not None:
        grad -= (grad * sae.W_dec).sum(dim=1, keepdim=True) * sae.W_dec


def _data_fingerprint(acts: np.ndarray, n: int) -> str:
    """Shape plus a few rows: enough to refuse resuming on different activations."""
    import hashlib

    h = hashlib.sha256(f"{n}x{acts.shape[1]}".encode())
    for i in sorted({0, n // 3, n // 2, n - 1}):
        h.update(np.ascontiguousarray(acts[i]).tobytes())
    return h.hexdigest()[:16]


def _save_checkpoint(
    folder: Path,
    sae: SAE,
    opt: torch.optim.Optimizer,
    since_fired: torch.Tensor,
    state: dict[str, Any],
) -> None:
    tensors = {f"sae.{name}": getattr(sae, name).detach() for name in _PARAMS}
    tensors["since_fired"] = since_fired
    opt_state = opt.state_dict()["state"]
    for i, name in enumerate(_PARAMS):
        for key, value in opt_state.get(i, {}).items():
            tensors[f"opt.{name}.{key}"] = (
                torch.as_tensor(value).reshape(-1) if key == "step" else value
            )
    save_state_dict(tensors, folder / CHECKPOINT)
    write_json(folder / CHECKPOINT_STATE, state)


def _load_checkpoint(
    folder: Path, sae: SAE, opt: torch.optim.Optimizer
) -> tuple[torch.Tensor, dict[str, Any]]:
    tensors = load_state_dict(folder / CHECKPOINT)
    with torch.no_grad():
        for name in _PARAMS:
            getattr(sae, name).copy_(tensors[f"sae.{name}"])
    opt_state = opt.state_dict()
    for i, name in enumerate(_PARAMS):
        prefix = f"opt.{name}."
        entry = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if entry:
            entry["step"] = entry["step"].reshape(())
            opt_state["state"][i] = entry
    opt.load_state_dict(opt_state)
    return tensors["since_fired"].clone(), json.loads((folder / CHECKPOINT_STATE).read_text())


def train_sae(
    acts: np.ndarray,
    cfg: TrainConfig,
    *,
    folder: str | Path | None = None,
    resume: bool = False,
    model_name: str = "",
    layer: int | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train on rows of `acts` ([n_tokens, d_in], any float dtype; a memmap is fine).

    With `folder`, checkpoints (and `train_config.json`) are written there; `resume=True`
    continues from its checkpoint. `stop_after_steps` ends the run early (time limits, tests):
    run again with `resume=True` to finish it. The SAE trains (and is returned) on `device`;
    the activations stay where they are and travel a batch at a time.
    """
    n_rows = len(acts) if cfg.max_tokens is None else min(len(acts), cfg.max_tokens)
    if acts.ndim != 2 or n_rows == 0:
        raise TriggerscopeError("no activations to train on; the cache is empty")
    d_in = int(acts.shape[1])
    steps_per_epoch = n_rows // cfg.batch_size
    if steps_per_epoch == 0:
        raise TriggerscopeError(
            f"only {n_rows} activation rows for batch size {cfg.batch_size}; cache more tokens "
            "or pass a smaller --batch-size"
        )
    total_steps = steps_per_epoch * cfg.epochs
    torch.manual_seed(cfg.seed)
    sae = SAE(SAEConfig(d_in, cfg.n_latents, "topk", cfg.k, model_name=model_name, layer=layer))
    sae.to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.learning_rate)
    since_fired = torch.zeros(cfg.n_latents, dtype=torch.long, device=device)
    fingerprint = _data_fingerprint(acts, n_rows)
    out = Path(folder) if folder is not None else None
    state: dict[str, Any] = {"step": 0, "seconds": 0.0, "history": []}
    if out is not None and resume and (out / CHECKPOINT_STATE).is_file():
        since_fired, state = _load_checkpoint(out, sae, opt)
        since_fired = since_fired.to(device)
        saved = TrainConfig.from_dict(state["config"]).to_dict()
        now = cfg.to_dict()
        diff = sorted(k for k in now if k not in _RESUME_FREE and saved.get(k) != now[k])
        if diff:
            raise TriggerscopeError(
                f"cannot resume {out}: the checkpoint was trained with different settings "
                f"({', '.join(diff)}); use the same settings or a new output folder"
            )
        if state.get("data") != fingerprint:
            raise TriggerscopeError(
                f"cannot resume {out}: the checkpoint was trained on other activations"
            )
    else:
        from triggerscope.sae.activations import data_mean

        with torch.no_grad():
            sae.b_dec.copy_(data_mean(acts[:n_rows]))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, {**cfg.to_dict(), "learning_rate": cfg.learning_rate})
    step = int(state["step"])
    seconds = float(state["seconds"])
    history: list[dict[str, float]] = list(state["history"])

    def checkpoint() -> None:
        if out is not None:
            state = {
                "step": step,
                "seconds": seconds,
                "history": history,
                "config": cfg.to_dict(),
                "data": fingerprint,
                "total_steps": total_steps,
                "pending": {**sums, "count": count},
            }
            _save_checkpoint(out, sae, opt, since_fired, state)

    bar = tqdm(
        total=total_steps,
        initial=step,
        unit="step",
        desc=f"training SAE{'' if layer is None else f' layer {layer}'}",
        disable=not progress,
        dynamic_ncols=True,
    )
    last = {"fvu": float("nan"), "aux": 0.0, "dead_fraction": 0.0}
    pending = state.get("pending", {"fvu": 0.0, "aux": 0.0, "count": 0})
    sums = {"fvu": float(pending["fvu"]), "aux": float(pending["aux"])}
    count = int(pending["count"])
    perm_epoch, perm = -1, np.empty(0, dtype=np.int64)
    try:
        while step < total_steps:
            if stop_after_steps is not None and step >= stop_after_steps:
                break
            started = time.perf_counter()
            epoch, i = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:
                perm_epoch = epoch
                perm = np.random.default_rng([cfg.seed, epoch]).permutation(n_rows)
            rows = np.sort(perm[i * cfg.batch_size : (i + 1) * cfg.batch_size])
            x = torch.from_numpy(np.asarray(acts[rows], dtype=np.float32)).to(device)
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total_steps, cfg)
            dead = since_fired >= cfg.dead_after_tokens
            loss, last, fired = train_step_loss(sae, x, dead, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _remove_parallel_grad(sae)
            opt.step()
            sae.normalize_decoder_()
            since_fired += x.shape[0]
            since_fired[fired] = 0
            step += 1
            seconds += time.perf_counter() - started
            sums["fvu"] += last["fvu"]
            sums["aux"] += last["aux"]
            count += 1
            if step % cfg.log_every == 0 or step == total_steps:
                row = {
                    "step": step,
                    "fvu": sums["fvu"] / count,
                    "aux": sums["aux"] / count,
                    "dead_fraction": last["dead_fraction"],
                    "lr": opt.param_groups[0]["lr"],
                }
                history.append(row)
                sums = {"fvu": 0.0, "aux": 0.0}
                count = 0
                bar.set_postfix(fvu=f"{row['fvu']:.3f}", dead=f"{row['dead_fraction']:.1%}")
            bar.update(1)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint()
    finally:
        bar.close()
    checkpoint()
    sae.requires_grad_(False)
    return TrainResult(
        sae=sae,
        steps=step,
        tokens_seen=step * cfg.batch_size,
        seconds=seconds,
        history=history,
        finished=step >= total_steps,
    )
