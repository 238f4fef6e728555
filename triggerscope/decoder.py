"""Running a span of a decoder's layers by hand: what lets a caller skip work that a full forward
pass would repeat (a prompt prefix every row shares, layers whose output cannot change).

Works for decoder layers called as `layer(h, attention_mask=, position_ids=,
position_embeddings=, past_key_values=)` whose attention calls `past_key_values.update(k, v,
layer_idx)` (Llama, Mistral, Qwen2 in transformers 5) with eager or sdpa attention. Callers check
their result against a full forward pass and fall back where it differs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from triggerscope.errors import TriggerscopeError

KV = dict[int, tuple[torch.Tensor, torch.Tensor]]


class PrefixKV:
    """Stands in for a HF cache inside attention: puts the prefix's keys/values in front.

    Stateless (nothing is appended), so one instance serves every step and every batch size.
    """

    def __init__(self, kv: KV) -> None:
        self.kv = kv

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *_: Any,
        **__: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.kv[layer_idx]
        b = key_states.shape[0]
        keys = keys.expand(b, -1, -1, -1).to(key_states.dtype)
        values = values.expand(b, -1, -1, -1).to(value_states.dtype)
        return torch.cat([keys, key_states], dim=2), torch.cat([values, value_states], dim=2)


class RecordKV:
    """Keeps each layer's keys/values of a prefix run (detached, unless they must carry the
    gradient of adapters that made them)."""

    def __init__(self, detach: bool = True) -> None:
        self.kv: KV = {}
        self.detach = detach

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *_: Any,
        **__: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.detach:
            self.kv[layer_idx] = (key_states.detach(), value_states.detach())
        else:
            self.kv[layer_idx] = (key_states, value_states)
        return key_states, value_states


def backbone(model: nn.Module, layers: nn.ModuleList) -> nn.Module:
    """The module that holds `layers` (and the rotary embedding and final norm beside them)."""
    for module in model.modules():
        if getattr(module, "layers", None) is layers:
            return module
    raise TriggerscopeError(f"cannot find the decoder of {type(model).__name__}")


def attention_kind(model: nn.Module) -> str:
    """ "eager" or "sdpa"; anything else cannot take the masks built here."""
    impl = getattr(model.config, "_attn_implementation", "eager") or "eager"
    if impl not in ("eager", "sdpa"):
        raise TriggerscopeError(
            f"running layers by hand supports eager or sdpa attention, not {impl!r}"
        )
    return str(impl)


def attention_mask(allowed: torch.Tensor, kind: str, dtype: torch.dtype) -> torch.Tensor:
    """[B, Q, K] bool (which keys each query sees) as the layers take it: bool for sdpa, an
    additive float mask for eager attention."""
    allowed = allowed[:, None]
    if kind == "sdpa":
        return allowed
    out = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return out.masked_fill(~allowed, torch.finfo(dtype).min)


def run_layers(
    layers: nn.ModuleList,
    h: torch.Tensor,
    start: int,
    stop: int,
    mask: torch.Tensor,
    pos: torch.Tensor,
    rope: Any,
    kv: Any,
) -> torch.Tensor:
    """Decoder layers start..stop (inclusive) on h."""
    kwargs: dict[str, Any] = {
        "attention_mask": mask,
        "position_ids": pos,
        "past_key_values": kv,
        "use_cache": False,
    }
    if rope is not None:
        kwargs["position_embeddings"] = rope
    for i in range(start, stop + 1):
        out = layers[i](h, **kwargs)
        h = out[0] if isinstance(out, tuple) else out
    return h


def reproduces(fast: torch.Tensor, ref: torch.Tensor, tol: float) -> bool:
    """Equal up to `tol` relative to the reference's size, and never stricter than `tol` in
    absolute terms: a loss near zero (prompts that already carry the trigger) differs by float
    noise far above tol times its own tiny size."""
    fast, ref = fast.float().cpu(), ref.float().cpu()
    scale = max(float(ref.abs().max()), 1.0)
    return float((fast - ref).abs().max()) <= tol * scale
