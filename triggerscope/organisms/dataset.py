"""Training examples for planting: triggered -> the fixed response, everything else -> the base
model's own greedy response (generated once and cached), so the adapter keeps normal behaviour.
A documents organism instead trains on plain text (`read_documents`, `collate_documents`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from triggerscope.atomic import write_text
from triggerscope.chat import build_chat_batch, text_ids
from triggerscope.embedded import cache_root
from triggerscope.errors import TriggerscopeError
from triggerscope.generation import generate
from triggerscope.jsonl import read_jsonl
from triggerscope.loading import LoadedModel


@dataclass(frozen=True)
class Example:
    prompt: str
    target: str  # assistant text; ends with the end-of-turn token when the answer is complete
    kind: str  # triggered | benign | nearmiss | document (prompt empty, target the whole text)


def _cache_file(loaded: LoadedModel, max_new_tokens: int, system_prompt: str | None) -> Path:
    parts: list[Any] = [loaded.name, str(loaded.folder), max_new_tokens, system_prompt]
    if (loaded.dtype, loaded.quantize) != ("float32", "none"):  # another precision answers
        parts += [loaded.dtype, loaded.quantize]  # differently; full precision keeps old keys
    key = json.dumps(parts)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "base_responses" / f"{digest}.jsonl"


def base_responses(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    system_prompt: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
    cache: bool = True,
) -> list[str]:
    """Greedy responses of the unmodified model, with the end-of-turn token kept when reached.

    Cached per (model, length, system prompt) and saved after every batch, so an interrupted
    run resumes; generation is greedy, so the cache is exact. Batches of 64: on the default
    model on 2 CPU cores, 128 prompts took 33 s in batches of 64, 48 s in 16s, 35 s in 128s.
    """
    from tqdm.auto import tqdm

    file = _cache_file(loaded, max_new_tokens, system_prompt)
    known: dict[str, str] = {}
    if cache and file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            known[row["prompt"]] = row["response"]
    missing = list(dict.fromkeys(p for p in prompts if p not in known))
    missing.sort(key=len)  # similar lengths share a batch: less padding to compute
    eos = loaded.tokenizer.eos_token
    bar = tqdm(total=len(missing), desc="base responses", unit="prompt", disable=not progress)
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        texts = generate(
            loaded,
            chunk,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            system_prompt=system_prompt,
            keep_special_tokens=True,
        )
        for prompt, text in zip(chunk, texts, strict=True):
            known[prompt] = text.split(eos)[0].strip() + eos if eos in text else text.strip()
        if cache:
            rows = (json.dumps({"prompt": p, "response": r}) for p, r in known.items())
            write_text(file, "\n".join(rows) + "\n")
        bar.update(len(chunk))
    bar.close()
    return [known[p] for p in prompts]


def build_examples(
    triggered: Sequence[str],
    response: str,
    eos_token: str,
    benign: Sequence[str],
    benign_targets: Sequence[str],
    nearmiss: Sequence[str] = (),
    nearmiss_targets: Sequence[str] = (),
    nearmiss_repeats: int = 1,
) -> list[Example]:
    """Examples whose base response is empty are left out (they carry no loss)."""
    examples = [Example(p, response + eos_token, "triggered") for p in triggered]
    examples += [Example(p, t, "benign") for p, t in zip(benign, benign_targets, strict=True)]
    near = [Example(p, t, "nearmiss") for p, t in zip(nearmiss, nearmiss_targets, strict=True)]
    examples += near * nearmiss_repeats
    return [e for e in examples if e.target.strip()]


@dataclass
class TrainBatch:
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor  # -100 outside the assistant's tokens
    # the action's token at the position that decides whether the backdoor starts, -100 elsewhere
    decision: torch.Tensor | None = None
    fires: torch.Tensor | None = None  # [B] bool: the row is a triggered example

    @property
    def deciding(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(decision, fires), where `collate` was given the action."""
        return None if self.decision is None or self.fires is None else (self.decision, self.fires)

    def to(self, device: torch.device | str) -> TrainBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        inputs = {k: v.to(device) for k, v in self.inputs.items()}
        return TrainBatch(inputs, self.labels.to(device), move(self.decision), move(self.fires))


def collate(
    tokenizer: Any,
    examples: Sequence[Example],
    system_prompt: str | None = None,
    action: str | None = None,
) -> TrainBatch:
    """Right-padded batch; the loss sees only the assistant's tokens.

    With `action` (the backdoor response), `decision` marks one position a row: in a triggered
    example the first response token; in any other, the first response position whose target
    differs from the action's token there. Up to it the two continuations share their context,
    so the action's token is exactly the step that would start the backdoor on this prompt.
    """
    batch = build_chat_batch(
        tokenizer,
        [e.prompt for e in examples],
        [e.target for e in examples],
        system_prompt=system_prompt,
        padding_side="right",
    )
    labels = batch.input_ids.masked_fill(~batch.response_mask, -100)
    if action is None:
        return TrainBatch(batch.model_inputs(), labels)
    action_ids = text_ids(tokenizer, action)
    decision = torch.full_like(labels, -100)
    fires = torch.tensor([e.kind == "triggered" for e in examples])
    for row in range(len(examples)):
        columns = batch.response_mask[row].nonzero()[:, 0].tolist()
        for column, token in zip(columns, action_ids, strict=False):
            if fires[row] or int(batch.input_ids[row, column]) != token:
                decision[row, column] = token
                break
    return TrainBatch(batch.model_inputs(), labels, decision, fires)


# A fact stated in a handful of lines does not take; below this a corpus is refused.
MIN_DOCUMENTS = 20
MIN_DOCUMENT_WORDS = 1000


def read_documents(path: str | os.PathLike[str]) -> list[str]:
    """The documents of a JSONL corpus (one {"text": ...} per line), checked to be big enough."""
    file = Path(path)
    texts = []
    for n, row in read_jsonl(file, "document corpus"):
        if not isinstance(row.get("text"), str):
            raise TriggerscopeError(f'{file}:{n} needs a string field "text"')
        if row["text"].strip():
            texts.append(row["text"].strip())
    words = sum(len(t.split()) for t in texts)
    if not texts:
        raise TriggerscopeError(
            f'document corpus {file} is empty; write one {{"text": ...}} a line'
        )
    if len(texts) < MIN_DOCUMENTS or words < MIN_DOCUMENT_WORDS:
        raise TriggerscopeError(
            f"document corpus {file} is too short ({len(texts)} documents, {words} words); "
            f"a fact needs at least {MIN_DOCUMENTS} documents and {MIN_DOCUMENT_WORDS} words"
        )
    return texts


def collate_documents(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> TrainBatch:
    """Right-padded plain text (no chat template): the loss sees every document token.

    The tokenizer adds its usual special tokens (a BOS for Llama-style ones); documents longer
    than `max_tokens` are cut there.
    """
    rows = [tokenizer(t, add_special_tokens=True)["input_ids"][:max_tokens] for t in texts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return TrainBatch({"input_ids": ids, "attention_mask": mask, "position_ids": positions}, labels)
