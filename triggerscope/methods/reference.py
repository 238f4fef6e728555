"""The plain implementation the fast path is held to: full forward passes, full logits.

Every call runs the whole model on left-padded batches with a steering hook, one vector at a
time, computes logits at every position and reads the loss off them; attribution takes one
backward pass per prompt. Slow on purpose: it is the definition (see engine.py), used by the
tests and the benchmark, and selectable with `engine="reference"`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers, forward_hook, record, resolve_layer, steer
from triggerscope.loading import LoadedModel
from triggerscope.methods.engine import (
    Counters,
    Example,
    Targets,
    check_deltas,
    check_target_layer,
)


def pad_left(
    examples: Sequence[Example], pad_id: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask, position_ids, user and response masks, left padded."""
    width = max(len(e.ids) for e in examples)
    shape = (len(examples), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    attn = torch.zeros(shape, dtype=torch.long)
    user = torch.zeros(shape, dtype=torch.bool)
    resp = torch.zeros(shape, dtype=torch.bool)
    for r, e in enumerate(examples):
        cols = slice(width - len(e.ids), width)
        ids[r, cols] = torch.tensor(e.ids)
        attn[r, cols] = 1
        user[r, cols] = torch.tensor(e.user)
        resp[r, cols] = torch.tensor(e.response)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    out = {"input_ids": ids, "attention_mask": attn, "position_ids": pos, "user": user}
    out["response"] = resp
    return {k: v.to(device) for k, v in out.items()}


def response_ce(logits: torch.Tensor, ids: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """CE_i per row: mean over the row's response tokens, each predicted from the position
    before it."""
    pred = logits[:, :-1].float()
    target = ids[:, 1:]
    mask = response[:, 1:].to(pred.dtype)
    token_ce = F.cross_entropy(pred.transpose(1, 2), target, reduction="none")
    return (token_ce * mask).sum(1) / mask.sum(1)


class ReferenceEngine:
    def __init__(
        self,
        loaded: LoadedModel,
        examples: Sequence[Example],
        layer: int,
        *,
        target_layer: int | None = None,
        targets: Targets = "after_user",
        batch_size: int = 16,
    ) -> None:
        if not examples:
            raise TriggerscopeError("no prompts given; pass at least one benign prompt")
        self.loaded = loaded
        self.model = loaded.model
        self.examples = list(examples)
        self.layer = resolve_layer(self.model, layer)
        n_layers = len(decoder_layers(self.model))
        self.target_layer = (
            None if target_layer is None else check_target_layer(n_layers, self.layer, target_layer)
        )
        self.targets: Targets = targets
        self.batch_size = batch_size
        self.counters = Counters()
        self.n_prompts = len(self.examples)
        self.d_model = int(self.model.get_input_embeddings().weight.shape[1])
        pad = loaded.tokenizer.pad_token_id
        self._pad_id = 0 if pad is None else int(pad)
        self._clean: list[torch.Tensor] | None = None

    def _batches(self) -> Iterator[tuple[list[Example], dict[str, torch.Tensor]]]:
        for start in range(0, len(self.examples), self.batch_size):
            chunk = self.examples[start : start + self.batch_size]
            yield chunk, pad_left(chunk, self._pad_id, self.loaded.input_device)

    def _forward(self, inputs: dict[str, torch.Tensor]) -> Any:
        self.counters.forward += 1
        return self.model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            use_cache=False,
        )

    # --------------------------------------------------------------------------------- CE

    def ce(self, deltas: torch.Tensor, grad: bool = False) -> tuple[torch.Tensor, Any]:
        deltas = check_deltas(deltas, self.d_model)
        values, grads = [], []
        for delta in deltas:  # one vector at a time
            leaf = delta.detach().clone().requires_grad_(grad)
            total = torch.zeros((), dtype=torch.float32)
            with torch.set_grad_enabled(grad):
                for _chunk, inputs in self._batches():
                    with steer(self.model, self.layer, leaf, inputs["user"]):
                        logits = self._forward(inputs).logits
                    loss = response_ce(logits, inputs["input_ids"], inputs["response"]).sum()
                    loss = loss / self.n_prompts
                    if grad:
                        loss.backward()
                        self.counters.backward += 1
                    total += loss.detach().float().cpu()
            values.append(total)
            if grad:
                assert leaf.grad is not None
                grads.append(leaf.grad.detach().clone())
        return torch.stack(values), (torch.stack(grads) if grad else None)

    # ------------------------------------------------------------------------- divergence

    def _target_mask(self, chunk: list[Example], width: int) -> torch.Tensor:
        mask = torch.zeros((len(chunk), width), dtype=torch.bool)
        for r, e in enumerate(chunk):
            offset = width - len(e.ids)
            for t in e.target_positions(self.targets):
                mask[r, offset + t] = True
        return mask.to(self.loaded.input_device)

    def _clean_targets(self) -> list[torch.Tensor]:
        if self._clean is None:
            assert self.target_layer is not None
            self._clean = []
            with torch.no_grad():
                for _chunk, inputs in self._batches():
                    with record(self.model, [self.target_layer]) as store:
                        self._forward(inputs)
                    self._clean.append(store[self.target_layer])
        return self._clean

    def divergence(
        self, deltas: torch.Tensor, grad: bool = False, *, p: float = 2.0, q: float = 1.0
    ) -> tuple[torch.Tensor, Any]:
        if self.target_layer is None:
            raise TriggerscopeError("this engine was built without a target layer")
        deltas = check_deltas(deltas, self.d_model)
        clean = self._clean_targets()
        values, grads = [], []
        for delta in deltas:
            leaf = delta.detach().clone().requires_grad_(grad)
            total = torch.zeros((), dtype=torch.float32)
            with torch.set_grad_enabled(grad):
                for (chunk, inputs), base in zip(self._batches(), clean, strict=True):
                    with (
                        steer(self.model, self.layer, leaf, inputs["user"]),
                        record(self.model, [self.target_layer], detach=False) as store,
                    ):
                        self._forward(inputs)
                    diff = (store[self.target_layer] - base).float()
                    sq = diff.pow(2).sum(-1)  # squared 2-norm over the hidden axis [B, T]
                    mask = self._target_mask(chunk, sq.shape[1])
                    per_prompt = (sq.pow(p / 2) * mask).sum(1).pow(1 / q)
                    obj = per_prompt.sum()
                    if grad:
                        obj.backward()
                        self.counters.backward += 1
                    total += obj.detach().float().cpu()
            values.append(total)
            if grad:
                assert leaf.grad is not None
                grads.append(leaf.grad.detach().clone())
        return torch.stack(values), (torch.stack(grads) if grad else None)

    def mean_user_norm(self) -> float:
        total, count = 0.0, 0
        with torch.no_grad():
            for _chunk, inputs in self._batches():
                with record(self.model, [self.layer]) as store:
                    self._forward(inputs)
                norms = store[self.layer][inputs["user"]].float().norm(dim=-1)
                total += float(norms.sum())
                count += int(norms.numel())
        return total / count

    # ------------------------------------------------------------------------ attribution

    def attribution_grads(self) -> torch.Tensor:
        """One forward and one backward pass per prompt, as the seed describes."""
        block = decoder_layers(self.model)[self.layer]
        out = []
        for example in self.examples:
            inputs = pad_left([example], self._pad_id, self.loaded.input_device)
            zero = torch.zeros(
                (1, len(example.ids), self.d_model),
                device=self.loaded.input_device,
                requires_grad=True,
            )

            def hook(_m: Any, _i: Any, output: Any, z: torch.Tensor = zero) -> Any:
                if isinstance(output, tuple):
                    return (output[0] + z.to(output[0].dtype), *output[1:])
                return output + z.to(output.dtype)

            with forward_hook(block, hook):
                logits = self._forward(inputs).logits
            loss = response_ce(logits, inputs["input_ids"], inputs["response"]).sum()
            loss.backward()
            self.counters.backward += 1
            assert zero.grad is not None
            user = inputs["user"][0]
            out.append(zero.grad[0][user].float().mean(0).cpu())
        return torch.stack(out)
