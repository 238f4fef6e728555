"""Difference-of-means steering vectors: the simplest way to turn a concept into a direction."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from triggerscope.chat import build_chat_batch
from triggerscope.hooks import record
from triggerscope.loading import LoadedModel


def mean_user_activation(loaded: LoadedModel, prompts: Sequence[str], layer: int) -> torch.Tensor:
    """Mean residual-stream output of `layer` over the user-content tokens of all prompts."""
    batch = build_chat_batch(loaded.tokenizer, prompts).to(loaded.input_device)
    with record(loaded.model, [layer]) as store, torch.no_grad():
        loaded.model(**batch.model_inputs(), use_cache=False)
    hidden = store[layer].float()
    mask = batch.user_mask.to(hidden.device)[..., None]
    return (hidden * mask).sum((0, 1)) / mask.sum()


def contrast_vector(
    loaded: LoadedModel, positive: Sequence[str], negative: Sequence[str], layer: int
) -> torch.Tensor:
    """Unit vector from the mean of `negative` to the mean of `positive` at `layer`."""
    diff = mean_user_activation(loaded, positive, layer) - mean_user_activation(
        loaded, negative, layer
    )
    return diff / diff.norm()
