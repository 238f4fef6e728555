"""While planting, the layers below the first LoRA layer never change, so their output for an
example is the same every epoch: it is computed once and kept (`FrozenLayers`).

A step then runs only the adapted layers: the prompt prefix every example shares (system prompt
and template) through them once, with gradient, and each row's tokens after that prefix from
its kept hidden state. On fruit-refusal (LoRA in layers 15-29 of 30, 2 epochs) the second epoch
meets about 80% of its examples again. The first step is checked against the plain forward pass
(`check`); a model this does not reproduce is planted the plain way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from triggerscope.decoder import (
    KV,
    PrefixKV,
    RecordKV,
    attention_kind,
    attention_mask,
    backbone,
    run_layers,
)
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers


class FrozenLayers:
    def __init__(self, model: Any, start: int, prefix: Sequence[int]) -> None:
        """`model` is the peft model; layers 0..start-1 carry no adapter; `prefix` is the token
        ids every example starts with (empty for plain documents)."""
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.layers = decoder_layers(causal_lm)
        body = backbone(causal_lm, self.layers)
        self.embed = causal_lm.get_input_embeddings()
        self.rotary = getattr(body, "rotary_emb", None)
        self.norm: Any = body.norm
        self.attention = attention_kind(causal_lm)
        self.start = start
        self.device = self.embed.weight.device
        self.prefix = torch.tensor(list(prefix), dtype=torch.long, device=self.device)
        self.kept: dict[int, torch.Tensor] = {}  # example index -> [tokens after prefix, d]
        self._prefix_low: KV = {}
        self._prefix_h: torch.Tensor | None = None  # input of layer `start` at the prefix
        if len(self.prefix):
            with torch.no_grad():
                h = self.embed(self.prefix[None])
                pos = torch.arange(len(self.prefix), device=self.device)[None]
                record = RecordKV()
                causal = self._mask(self._causal(len(self.prefix))[None])
                rope = self._rope(h, pos)
                if start > 0:
                    h = run_layers(self.layers, h, 0, start - 1, causal, pos, rope, record)
                self._prefix_low = record.kv
                self._prefix_h = h

    @property
    def prefix_len(self) -> int:
        return len(self.prefix)

    def _causal(self, n: int) -> torch.Tensor:
        return torch.ones(n, n, dtype=torch.bool, device=self.device).tril()

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        return attention_mask(allowed, self.attention, self.embed.weight.dtype)

    def _rope(self, h: torch.Tensor, pos: torch.Tensor) -> Any:
        return None if self.rotary is None else self.rotary(h, pos)

    def fits(self, ids: torch.Tensor, labels: torch.Tensor) -> bool:
        """Every row starts with the prefix, and no label is predicted from inside it."""
        p = self.prefix_len
        if ids.shape[1] <= p or not bool((ids[:, :p] == self.prefix).all()):
            return False
        labelled = (labels != -100).any(0).nonzero()
        return p == 0 or not len(labelled) or int(labelled[0]) >= p + 1

    def _allowed(self, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, P + T]: the prefix, and this row's real tokens up to the query."""
        b, t = mask.shape
        own = self._causal(t)[None] & mask.bool()[:, None, :]
        seen = torch.ones(b, t, self.prefix_len, dtype=torch.bool, device=self.device)
        return torch.cat([seen, own], dim=-1)

    def _low(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Inputs of layer `start` at the rows' tokens after the prefix (no gradient)."""
        p = self.prefix_len
        t = ids.shape[1]
        pos = (p + torch.arange(t, device=self.device))[None].expand(len(ids), -1)
        with torch.no_grad():
            h = self.embed(ids)
            if self.start == 0:
                return h
            kv = PrefixKV(self._prefix_low) if p else None
            allowed = self._mask(self._allowed(mask))
            return run_layers(
                self.layers, h, 0, self.start - 1, allowed, pos, self._rope(h, pos), kv
            )

    def hidden(self, inputs: dict[str, torch.Tensor], keys: Sequence[int]) -> torch.Tensor:
        """Final (normed) hidden states of positions prefix.. of every row; `keys` name the
        rows' examples, whose frozen part is computed once and kept (on the model's device:
        tokens x d_model: about 200 MB for fruit-refusal on the default model)."""
        p = self.prefix_len
        ids, mask = inputs["input_ids"][:, p:], inputs["attention_mask"][:, p:]
        b, t = ids.shape
        lengths = mask.sum(1).tolist()
        missing = [r for r in range(b) if keys[r] not in self.kept]
        h = torch.zeros(
            b, t, self.embed.weight.shape[1], dtype=self.embed.weight.dtype, device=self.device
        )
        if missing:
            fresh = self._low(ids[missing], mask[missing])
            for j, r in enumerate(missing):
                h[r] = fresh[j]
                self.kept[keys[r]] = fresh[j, : lengths[r]].clone()
        for r in range(b):
            if r not in missing:
                h[r, : lengths[r]] = self.kept[keys[r]]
        top = len(self.layers) - 1
        pos = (p + torch.arange(t, device=self.device))[None].expand(b, -1)
        kv = None
        if p:
            assert self._prefix_h is not None
            record = RecordKV(detach=False)  # the adapters make these keys/values
            ppos = torch.arange(p, device=self.device)[None]
            causal = self._mask(self._causal(p)[None])
            prope = self._rope(self._prefix_h, ppos)
            run_layers(self.layers, self._prefix_h, self.start, top, causal, ppos, prope, record)
            kv = PrefixKV({**self._prefix_low, **record.kv})
        allowed = self._mask(self._allowed(mask))
        h = run_layers(self.layers, h, self.start, top, allowed, pos, self._rope(h, pos), kv)
        return self.norm(h)


def frozen_layers(model: Any, start: int, prefix: Sequence[int]) -> FrozenLayers | None:
    """A `FrozenLayers`, or None where the model cannot be run layer by layer."""
    try:
        return FrozenLayers(model, start, prefix)
    except (TriggerscopeError, RuntimeError, TypeError, AttributeError, KeyError):
        return None
