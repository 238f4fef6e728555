"""Training examples for planting: triggered -> the fixed response, everything else -> the base
model's own greedy response (generated once and cached), so the adapter keeps normal behaviour."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from triggerscope.atomic import write_text
from triggerscope.chat import build_chat_batch
from triggerscope.embedded import cache_root
from triggerscope.generation import generate
from triggerscope.loading import LoadedModel


@dataclass(frozen=True)
class Example:
    prompt: str
    target: str  # assistant text; ends with the end-of-turn token when the answer is complete
    kind: str  # triggered | benign | nearmiss


def _cache_file(loaded: LoadedModel, max_new_tokens: int, system_prompt: str | None) -> Path:
    key = json.dumps([loaded.name, str(loaded.folder), max_new_tokens, system_prompt])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "base_responses" / f"{digest}.jsonl"


def base_responses(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    system_prompt: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
    cache: bool = True,
) -> list[str]:
    """Greedy responses of the unmodified model, with the end-of-turn token kept when reached.

    Cached per (model, length, system prompt) and saved after every batch, so an interrupted
    run resumes; generation is greedy, so the cache is exact.
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
) -> list[Example]:
    """Examples whose base response is empty are left out (they carry no loss)."""
    examples = [Example(p, response + eos_token, "triggered") for p in triggered]
    examples += [Example(p, t, "benign") for p, t in zip(benign, benign_targets, strict=True)]
    examples += [Example(p, t, "nearmiss") for p, t in zip(nearmiss, nearmiss_targets, strict=True)]
    return [e for e in examples if e.target.strip()]


@dataclass
class TrainBatch:
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor  # -100 outside the assistant's tokens


def collate(
    tokenizer: object, examples: Sequence[Example], system_prompt: str | None = None
) -> TrainBatch:
    """Right-padded batch; the loss sees only the assistant's tokens."""
    batch = build_chat_batch(
        tokenizer,
        [e.prompt for e in examples],
        [e.target for e in examples],
        system_prompt=system_prompt,
        padding_side="right",
    )
    labels = batch.input_ids.masked_fill(~batch.response_mask, -100)
    return TrainBatch(batch.model_inputs(), labels)
