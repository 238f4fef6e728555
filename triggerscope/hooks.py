"""Forward hooks on decoder layers: steer the residual stream, record it, or stop after a layer.

Every hook lives in a context manager that removes it in `finally`, also when the body raises.
"The residual stream at layer L" is the output of decoder layer L (SAELens `hook_resid_post`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Literal

import torch
from torch import nn

from triggerscope.errors import TriggerscopeError

NewTokens = Literal["none", "all"]
_LAYER_PATHS = ("model.layers", "model.model.layers", "transformer.h", "gpt_neox.layers", "layers")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a HF causal LM, also when wrapped by peft."""
    inner: Any = model
    for _ in range(4):  # PeftModel -> LoraModel -> CausalLM
        for path in _LAYER_PATHS:
            obj: Any = inner
            for attr in path.split("."):
                obj = getattr(obj, attr, None)
                if obj is None:
                    break
            if isinstance(obj, nn.ModuleList):
                return obj
        base = getattr(inner, "base_model", None)
        inner = getattr(base, "model", base) if base is not None else None
        if inner is None:
            break
    raise TriggerscopeError(f"cannot find the decoder layers of {type(model).__name__}")


def resolve_layer(model: nn.Module, layer: int) -> int:
    """A non-negative layer index; negative indices count from the last layer."""
    n = len(decoder_layers(model))
    if not -n <= layer < n:
        raise TriggerscopeError(f"layer {layer} is out of range; this model has layers 0..{n - 1}")
    return layer % n


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_hidden(output: Any, hidden: torch.Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def forward_hook(module: nn.Module, fn: Callable[..., Any]) -> Iterator[None]:
    handle = module.register_forward_hook(fn)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def steer(
    model: nn.Module,
    layer: int,
    vectors: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: float = 1.0,
    new_tokens: NewTokens = "none",
) -> Iterator[None]:
    """Add `scale * vector` to the output of decoder layer `layer` where `mask` is true.

    `vectors` is [d_model] (one for all rows) or [batch, d_model] (one per row); `mask` is
    bool [batch, seq] (None: every position). A forward pass over the full sequence is steered
    at the mask. In `generate()`, later passes see only new tokens: `new_tokens="none"` leaves
    them alone (steer the prompt only), `"all"` steers every new position too.
    """
    if new_tokens not in ("none", "all"):
        raise TriggerscopeError(f"new_tokens must be 'none' or 'all', not {new_tokens!r}")
    block = decoder_layers(model)[resolve_layer(model, layer)]
    if vectors.dim() not in (1, 2):
        raise TriggerscopeError("steering vectors must be [d_model] or [batch, d_model]")

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        hidden = _hidden(output)
        if vectors.shape[-1] != hidden.shape[-1]:
            raise TriggerscopeError(
                f"steering vector has size {vectors.shape[-1]} but d_model is {hidden.shape[-1]}"
            )
        v = (scale * vectors).to(device=hidden.device, dtype=hidden.dtype)
        v = v[:, None, :] if v.dim() == 2 else v[None, None, :]
        if mask is None or hidden.shape[1] == mask.shape[1]:
            if mask is None:
                return _replace_hidden(output, hidden + v)
            weight = mask.to(device=hidden.device, dtype=hidden.dtype)[..., None]
            return _replace_hidden(output, hidden + weight * v)
        if new_tokens == "all":
            return _replace_hidden(output, hidden + v)
        return output

    with forward_hook(block, hook):
        yield


@contextmanager
def record(
    model: nn.Module, layers: Sequence[int], *, detach: bool = True
) -> Iterator[dict[int, torch.Tensor]]:
    """Yield a dict filled with the output of each layer (keyed as given) on every forward pass."""
    store: dict[int, torch.Tensor] = {}
    blocks = decoder_layers(model)
    handles = []
    try:
        for layer in layers:

            def hook(_m: nn.Module, _i: Any, output: Any, key: int = layer) -> None:
                hidden = _hidden(output)
                store[key] = hidden.detach() if detach else hidden

            handles.append(blocks[resolve_layer(model, layer)].register_forward_hook(hook))
        yield store
    finally:
        for handle in handles:
            handle.remove()


class _StopForward(Exception):
    """Raised inside a hook to skip the layers after the one we need."""


def run_to_layer(model: nn.Module, layer: int, **inputs: torch.Tensor) -> torch.Tensor:
    """Run the model only up to decoder layer `layer` and return that layer's output."""
    block = decoder_layers(model)[resolve_layer(model, layer)]
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, output: Any) -> None:
        captured.append(_hidden(output))
        raise _StopForward

    with forward_hook(block, hook), torch.no_grad(), suppress(_StopForward):
        model(**inputs, use_cache=False)
    if not captured:
        raise TriggerscopeError(f"layer {layer} never ran; is it part of the forward pass?")
    return captured[0]
