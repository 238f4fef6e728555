"""What every method asks of the model, and the tokenised prompts both engines start from.

Two engines answer the same three questions: the steered cross-entropy of the prefilled response
(`ce`), the MELBO divergence at a later layer (`divergence`), and the per-prompt gradient of the
response cross-entropy at the steering layer (`attribution_grads`). `FastEngine` (prefix.py) is
the lean one; `ReferenceEngine` (reference.py) is the plain one the tests hold it to.

Definitions, shared by both:
- steering adds `delta` to the output of decoder layer `layer` at the user's own tokens only;
- CE_i = mean over the response tokens of prompt i of -log p(token | everything before it), and
  the supervised loss is the mean of CE_i over prompts (the seed's L_CE);
- the divergence of prompt i is (sum over target positions t of ||h_L,t(delta) - h_L,t(0)||_2^p)
  ^(1/q), summed over prompts (Mack & Turner's objective, the 2-norm taken over the hidden axis;
  with the default p = 2 this equals the issue's ||.||_p^2 reading too). Target positions are the
  template tokens after the user's text ("after_user", where the model decides what to say) or
  every position from the first user token on ("all").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError

Targets = Literal["after_user", "all", "first_response", "response"]
TARGETS: tuple[str, ...] = ("after_user", "all")  # unsupervised MELBO's (no response there)


@dataclass(frozen=True)
class Example:
    """One prompt's token ids, unpadded, with its user and response masks."""

    ids: tuple[int, ...]
    user: tuple[bool, ...]
    response: tuple[bool, ...]

    @property
    def first_user(self) -> int:
        return self.user.index(True)

    @property
    def last_user(self) -> int:
        return len(self.user) - 1 - self.user[::-1].index(True)

    def response_positions(self) -> list[int]:
        return [j for j, r in enumerate(self.response) if r]

    def target_positions(self, targets: Targets) -> list[int]:
        """Positions whose later-layer activations the objective reads: the template after the
        user's text, everything from the first user token on, or (internal target, methods/
        internal.py) the first response token or every response token."""
        if targets == "all":
            return list(range(self.first_user, len(self.ids)))
        if targets == "first_response":
            return self.response_positions()[:1]
        if targets == "response":
            return self.response_positions()
        return list(range(self.last_user + 1, len(self.ids)))


def tokenize(
    tokenizer: Any,
    prompts: Sequence[str],
    response: str | Sequence[str] | None,
    system_prompt: str | None = None,
) -> list[Example]:
    """Chat-formatted examples (exact masks from `build_chat_batch`), one per prompt; one
    response for all prompts, or one per prompt."""
    batch = build_chat_batch(
        tokenizer, prompts, response, system_prompt=system_prompt, padding_side="right"
    )
    out = []
    for r in range(len(batch)):
        n = int(batch.attention_mask[r].sum())
        ids = tuple(int(t) for t in batch.input_ids[r, :n])
        user = tuple(bool(u) for u in batch.user_mask[r, :n])
        resp = tuple(bool(u) for u in batch.response_mask[r, :n])
        if not any(user):
            raise TriggerscopeError(f"prompt {r} has no tokens of its own after tokenising")
        if response is not None and not any(resp):
            raise TriggerscopeError("the response has no tokens after tokenising; give some text")
        out.append(Example(ids, user, resp))
    return out


def insert_token(example: Example, token_id: int, where: Literal["start", "end"]) -> Example:
    """The example with one extra user token at the start or end of the user's text."""
    at = example.first_user if where == "start" else example.last_user + 1
    ids = (*example.ids[:at], token_id, *example.ids[at:])
    user = (*example.user[:at], True, *example.user[at:])
    resp = (*example.response[:at], False, *example.response[at:])
    return Example(ids, user, resp)


@dataclass
class Counters:
    """Batched passes through (part of) the model, and backward passes through them."""

    forward: int = 0
    backward: int = 0


class Engine(Protocol):
    counters: Counters
    n_prompts: int
    d_model: int

    def ce(self, deltas: torch.Tensor, grad: bool = False) -> tuple[torch.Tensor, Any]:
        """Loss per vector [N] (mean CE over prompts) and, with grad, d loss / d delta [N, d]."""
        ...

    def divergence(self, deltas: torch.Tensor, grad: bool = False) -> tuple[torch.Tensor, Any]:
        """MELBO objective per vector [N] (to maximise) and, with grad, its gradient [N, d]."""
        ...

    def attribution_grads(self) -> torch.Tensor:
        """Per prompt, d CE_i / d h at layer `layer`, averaged over its user tokens [m, d]."""
        ...

    def mean_user_norm(self) -> float:
        """Mean norm of the unsteered residual stream at layer `layer` over user tokens."""
        ...


def check_deltas(deltas: torch.Tensor, d_model: int) -> torch.Tensor:
    if deltas.dim() == 1:
        deltas = deltas[None]
    if deltas.dim() != 2 or deltas.shape[1] != d_model:
        raise TriggerscopeError(
            f"steering vectors must be [N, {d_model}], got {tuple(deltas.shape)}"
        )
    return deltas


def check_target_layer(n_layers: int, layer: int, target_layer: int) -> int:
    """The target must be strictly after the steering layer: reading it at the layer where the
    vector is added would only measure the vector itself."""
    target = target_layer % n_layers if -n_layers <= target_layer < n_layers else None
    if target is None:
        raise TriggerscopeError(
            f"target layer {target_layer} is out of range; this model has layers 0..{n_layers - 1}"
        )
    if target <= layer:
        raise TriggerscopeError(
            f"the target layer ({target}) must come after the steering layer ({layer}); "
            f"pass a later --target-layer"
        )
    return target
