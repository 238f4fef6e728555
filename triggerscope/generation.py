"""Chat responses from a (possibly steered) model, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from triggerscope.chat import build_chat_batch
from triggerscope.hooks import NewTokens, steer
from triggerscope.loading import LoadedModel


@dataclass(frozen=True)
class Steering:
    """A vector added to the user's tokens at a layer (and to new tokens if asked)."""

    vector: torch.Tensor
    layer: int
    scale: float = 1.0
    new_tokens: NewTokens = "none"


def generate(
    loaded: LoadedModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 60,
    temperature: float = 0.0,
    steering: Steering | None = None,
    batch_size: int = 8,
    system_prompt: str | None = None,
    seed: int = 0,
    progress: bool = False,
    keep_special_tokens: bool = False,
    prefill: str | Sequence[str] | None = None,
) -> list[str]:
    """Greedy when temperature is 0, else sampled (seeded).

    With `prefill`, each answer starts with that text (one for all prompts, or one per prompt)
    and only what the model adds after it is returned, its leading space kept.

    With `keep_special_tokens`, the text keeps the end-of-turn token, so a caller can tell a
    finished answer from one cut at `max_new_tokens`.
    """
    from tqdm.auto import tqdm

    tokenizer, model = loaded.tokenizer, loaded.model
    sampling = temperature > 0
    if sampling:
        torch.manual_seed(seed)
    out: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="generating", disable=not progress, unit="batch"):
        chunk = list(prompts[start : start + batch_size])
        begun = (
            None
            if prefill is None
            else [prefill] * len(chunk)
            if isinstance(prefill, str)
            else list(prefill[start : start + batch_size])
        )
        batch = build_chat_batch(tokenizer, chunk, begun, system_prompt=system_prompt).to(
            loaded.input_device
        )
        ctx = (
            steer(
                model,
                steering.layer,
                steering.vector,
                batch.user_mask,
                scale=steering.scale,
                new_tokens=steering.new_tokens,
            )
            if steering is not None
            else nullcontext()
        )
        kwargs = {"temperature": temperature} if sampling else {}
        with ctx, torch.no_grad():
            tokens = model.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=sampling,
                pad_token_id=tokenizer.pad_token_id,
                top_p=None,
                top_k=None,
                **kwargs,
            )
        new = tokens[:, batch.input_ids.shape[1] :]
        texts = tokenizer.batch_decode(new, skip_special_tokens=not keep_special_tokens)
        # a continuation keeps its leading space: it is appended to the prefill
        tidy = str.rstrip if begun is not None else str.strip
        out.extend(t if keep_special_tokens else tidy(t) for t in texts)
    return out
