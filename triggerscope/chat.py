"""Chat-formatted model inputs with exact masks over the user's content and the prefilled response.

The template is rendered once with sentinel strings in place of the user text, split at the
sentinel, and each piece is tokenized on its own. The masks are therefore exact by construction:
decoding the masked tokens gives back the user text (or the response) character for character.
For ChatML and Llama-3 style templates, whose pieces meet at special tokens, this equals
tokenizing the whole string (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from triggerscope.errors import TriggerscopeError

USER_SENTINEL = "\u2063TRIGGERSCOPE_USER\u2063"
Padding = Literal["left", "right"]


@dataclass
class ChatBatch:
    """A padded batch. `user_mask` and `response_mask` are bool [batch, seq]."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    user_mask: torch.Tensor
    response_mask: torch.Tensor
    padding_side: Padding

    def to(self, device: torch.device | str) -> ChatBatch:
        return ChatBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.user_mask.to(device),
            self.response_mask.to(device),
            self.padding_side,
        )

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def position_ids(self) -> torch.Tensor:
        """Positions that ignore padding, so a padded row computes what it would alone."""
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Arguments for a plain forward pass (not `generate`, which derives positions itself)."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
        }


@dataclass(frozen=True)
class TemplateParts:
    """The rendered generation prompt split around the user's content."""

    before_user: str
    after_user: str


def template_parts(tokenizer: Any, system_prompt: str | None = None) -> TemplateParts:
    messages = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": USER_SENTINEL})
    if getattr(tokenizer, "chat_template", None) is None:
        raise TriggerscopeError(
            "the tokenizer has no chat template; use an instruction-tuned (chat) model"
        )
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if rendered.count(USER_SENTINEL) != 1:
        raise TriggerscopeError("the chat template does not place the user message exactly once")
    before, after = rendered.split(USER_SENTINEL)
    return TemplateParts(before, after)


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """The tokens of text as it sits inside a chat: no special tokens added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def clip_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    """The text cut to its first `max_tokens` tokens (unchanged when it is shorter)."""
    ids = text_ids(tokenizer, text)
    return text if len(ids) <= max_tokens else str(tokenizer.decode(ids[:max_tokens]))


def tokens_to_see(tokenizer: Any, response: str) -> int:
    """New tokens enough to tell whether an answer gives `response`: its length, plus 8."""
    return len(text_ids(tokenizer, response)) + 8


def prefix_ids(tokenizer: Any, system_prompt: str | None = None) -> list[int]:
    """The tokens every chat row starts with: everything before the user's text."""
    before = template_parts(tokenizer, system_prompt).before_user
    return _bos_prefix(tokenizer, before) + text_ids(tokenizer, before)


def _bos_prefix(tokenizer: Any, before_user: str) -> list[int]:
    """Tokenizers that add BOS themselves (and templates that do not write it) need it here."""
    bos = tokenizer.bos_token_id
    if bos is None or (tokenizer.bos_token and before_user.startswith(tokenizer.bos_token)):
        return []
    probe = tokenizer("a")["input_ids"]
    return [bos] if probe and probe[0] == bos else []


def build_chat_batch(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str] | str | None = None,
    *,
    system_prompt: str | None = None,
    padding_side: Padding = "left",
) -> ChatBatch:
    """Tokenize (user prompt, optional prefilled response) pairs.

    Left padding (the default) keeps the last real token at the end of every row, which is what
    `generate()` needs; right padding is offered for training-style batches.
    A single response string is used for every prompt.
    """
    if not prompts:
        raise TriggerscopeError("no prompts given; pass at least one non-empty prompt")
    if isinstance(responses, str):
        responses = [responses] * len(prompts)
    if responses is not None and len(responses) != len(prompts):
        raise TriggerscopeError(f"{len(prompts)} prompts but {len(responses)} responses")
    parts = template_parts(tokenizer, system_prompt)
    prefix = prefix_ids(tokenizer, system_prompt)
    middle = text_ids(tokenizer, parts.after_user)
    rows: list[tuple[list[int], list[bool], list[bool]]] = []
    for i, prompt in enumerate(prompts):
        if not prompt or not prompt.strip():
            raise TriggerscopeError(f"prompt {i} is empty; every prompt needs some text")
        user = text_ids(tokenizer, prompt)
        response = text_ids(tokenizer, responses[i]) if responses is not None else []
        ids = prefix + user + middle + response
        n_pre, n_user, n_mid = len(prefix), len(user), len(middle)
        user_mask = [n_pre <= j < n_pre + n_user for j in range(len(ids))]
        resp_mask = [j >= n_pre + n_user + n_mid for j in range(len(ids))]
        rows.append((ids, user_mask, resp_mask))
    return _pad(rows, tokenizer.pad_token_id, padding_side)


def _pad(
    rows: list[tuple[list[int], list[bool], list[bool]]], pad_id: int | None, side: Padding
) -> ChatBatch:
    if side not in ("left", "right"):
        raise TriggerscopeError(f"padding_side must be 'left' or 'right', not {side!r}")
    width = max(len(ids) for ids, _, _ in rows)
    pad = 0 if pad_id is None else int(pad_id)
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    user = torch.zeros((len(rows), width), dtype=torch.bool)
    resp = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, (ids, umask, rmask) in enumerate(rows):
        n = len(ids)
        cols = slice(width - n, width) if side == "left" else slice(0, n)
        out[r, cols] = torch.tensor(ids, dtype=torch.long)
        attn[r, cols] = 1
        user[r, cols] = torch.tensor(umask)
        resp[r, cols] = torch.tensor(rmask)
    return ChatBatch(out, attn, user, resp, side)
