"""Reading a steering vector through the held-out texts where it is strongest (no SAE needed).

The seed read its vectors only through SAE latent labels, and proposed max-activating examples
instead ("Discussion"). For a vector v added at layer l, a text's score is the max over its user
tokens of <h_l, v/|v|>, h_l the unsteered output of layer l (where the vector is added); the texts
with the highest scores are the vector's top-activating examples, shown with their strongest
tokens marked «like this». The mean activation's projection shifts every score by the same amount,
so the ranking is also that of the centred projection. Tokens with a large norm can still win on
size alone; `example_score: cosine` scores each token by the cosine of its centred activation
(minus the texts' mean) with v instead.

Texts: a file (`example_texts`, one a line or .jsonl with "text"), else the SAE corpus's held-out
split balanced over sources (never used to train the SAE or any method). Each text is read as the
user message of a chat under the task's system prompt, as the prompts were during training.

The activations are computed once per (model, layer, system prompt, texts, cut) and kept while
the model lives (at most two sets per model), so reading several vectors, or several runs in one
process, costs one pass through layers 0..l.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from triggerscope.chat import build_chat_batch, clip_tokens
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import run_to_layer
from triggerscope.loading import LoadedModel
from triggerscope.methods.result import RankedExample, VectorResult

MARK = ("«", "»")
MARKED_TOKENS = 3  # strongest tokens marked in each example
WINDOW = (24, 8)  # tokens kept before and after the strongest one
KEPT_PER_MODEL = 2


@dataclass
class TextActivations:
    """User-token activations of every text at one layer, flattened [T, d] (float32, CPU)."""

    acts: torch.Tensor
    owner: torch.Tensor  # [T] index of the text each row belongs to
    ids: list[list[int]]  # each text's user token ids, in order (rows of `acts` follow them)
    n_batches: int  # forward passes it took (0 when taken from the cache)


_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], TextActivations]] = (
    weakref.WeakKeyDictionary()
)


def _default_corpus() -> Path:
    from triggerscope.sae.corpus import corpus_dir

    return corpus_dir() / "heldout.jsonl"


def check_source(path: Any) -> None:
    """Refuse, before any compute, a text source that cannot be read."""
    if path is not None:
        if not isinstance(path, str) or not path.strip():
            raise TriggerscopeError(f"example_texts must be a file path, got {path!r}")
        if not Path(path).expanduser().is_file():
            raise TriggerscopeError(
                f"example_texts file {path} does not exist; pass a file with one text per line"
            )
        return
    if not _default_corpus().is_file():
        raise TriggerscopeError(
            "example_readout needs texts: the SAE corpus is not built; build it with "
            "`triggerscope sae corpus` or pass example_texts=FILE (one text per line)"
        )


def load_texts(path: str | None, pool: int) -> tuple[list[str], str]:
    """The texts to read and a line saying where they came from."""
    from triggerscope.sae.metrics import read_texts

    check_source(path)
    if path is not None:
        return read_texts(path, limit=pool), str(path)
    from triggerscope.sae.corpus import balanced_heldout

    corpus = _default_corpus()
    texts = balanced_heldout(corpus.parent, pool)
    if not texts:
        raise TriggerscopeError(
            f"{corpus} holds no texts; rebuild it with `triggerscope sae corpus`"
        )
    return texts, f"{corpus} (balanced over sources)"


def _key(layer: int, system_prompt: str | None, max_tokens: int, texts: Sequence[str]) -> tuple:
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    return (layer, system_prompt, max_tokens, len(texts), digest)


@torch.no_grad()
def text_activations(
    loaded: LoadedModel,
    texts: Sequence[str],
    layer: int,
    *,
    system_prompt: str | None = None,
    max_tokens: int = 64,
    batch_size: int = 16,
    progress: bool = False,
) -> TextActivations:
    """Layer-`layer` outputs at every text's user tokens: one pass, then from the cache."""
    from tqdm.auto import tqdm

    if not texts:
        raise TriggerscopeError("no texts to read the vectors with; pass at least one")
    model = loaded.model
    key = _key(layer, system_prompt, max_tokens, texts)
    kept = _CACHE.setdefault(model, {})
    if key in kept:
        hit = kept[key]
        return TextActivations(hit.acts, hit.owner, hit.ids, 0)
    tokenizer = loaded.tokenizer
    clipped = [clip_tokens(tokenizer, t, max_tokens) for t in texts]
    order = sorted(range(len(clipped)), key=lambda i: len(clipped[i]))  # less padding
    per_text: dict[int, tuple[list[int], torch.Tensor]] = {}
    n_batches = 0
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="example texts", disable=not progress, unit="batch"):
        chunk = order[start : start + batch_size]
        batch = build_chat_batch(
            tokenizer, [clipped[i] for i in chunk], system_prompt=system_prompt
        ).to(loaded.input_device)
        hidden = run_to_layer(model, layer, **batch.model_inputs())
        n_batches += 1
        for r, i in enumerate(chunk):
            user = batch.user_mask[r]
            per_text[i] = (batch.input_ids[r][user].tolist(), hidden[r][user].float().cpu())
    ids = [per_text[i][0] for i in range(len(clipped))]
    acts = torch.cat([per_text[i][1] for i in range(len(clipped))])
    owner = torch.cat(
        [torch.full((len(per_text[i][0]),), i, dtype=torch.long) for i in range(len(clipped))]
    )
    found = TextActivations(acts, owner, ids, n_batches)
    if len(kept) >= KEPT_PER_MODEL:
        kept.pop(next(iter(kept)))
    kept[key] = found
    return found


def _render(tokenizer: Any, ids: list[int], scores: torch.Tensor) -> tuple[str, str]:
    """The window around the strongest token, the strongest tokens marked; and that token."""
    best = int(scores.argmax())
    lo, hi = max(0, best - WINDOW[0]), min(len(ids), best + WINDOW[1] + 1)
    marked = set(scores[lo:hi].topk(min(MARKED_TOKENS, hi - lo)).indices.add(lo).tolist())
    parts, run_start = [], lo
    for j in range(lo, hi):
        if j in marked:
            parts.append(tokenizer.decode(ids[run_start:j]))
            parts.append(f"{MARK[0]}{tokenizer.decode(ids[j : j + 1])}{MARK[1]}")
            run_start = j + 1
    parts.append(tokenizer.decode(ids[run_start:hi]))
    text = ("…" if lo > 0 else "") + "".join(parts) + ("…" if hi < len(ids) else "")
    return text.replace("\n", "\\n"), str(tokenizer.decode(ids[best : best + 1]))


def token_scores(found: TextActivations, vector: torch.Tensor, score: str) -> torch.Tensor:
    """Each token's <h, v/|v|> ("projection"), or cosine(h - mean h, v) ("cosine") [T]."""
    unit = vector.detach().float().cpu()
    unit = unit / unit.norm().clamp_min(1e-12)
    if score == "cosine":
        centred = found.acts - found.acts.mean(0)
        return (centred @ unit) / centred.norm(dim=1).clamp_min(1e-12)
    return found.acts @ unit


def rank_examples(
    found: TextActivations,
    tokenizer: Any,
    vector: torch.Tensor,
    n: int,
    score: str = "projection",
) -> list[RankedExample]:
    """The n texts whose best token scores highest on v, best first."""
    proj = token_scores(found, vector, score)  # [T]
    n_texts = len(found.ids)
    best = torch.full((n_texts,), float("-inf")).scatter_reduce(0, found.owner, proj, reduce="amax")
    values, order = best.topk(min(n, n_texts))
    starts = torch.zeros(n_texts + 1, dtype=torch.long)
    starts[1:] = torch.bincount(found.owner, minlength=n_texts).cumsum(0)
    out = []
    for value, t in zip(values.tolist(), order.tolist(), strict=True):
        scores = proj[int(starts[t]) : int(starts[t + 1])]
        text, token = _render(tokenizer, found.ids[t], scores)
        out.append(RankedExample(text=text, score=float(value), token=token, index=int(t)))
    return out


def read_examples(
    loaded: LoadedModel,
    layer: int,
    vectors: Sequence[VectorResult],
    *,
    n: int,
    texts: str | None,
    pool: int,
    max_tokens: int,
    score: str = "projection",
    system_prompt: str | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[dict[str, Any], int]:
    """Fill each vector's `top_examples`; return what was read (for the result's extras) and
    the forward passes it took."""
    chosen, source = load_texts(texts, pool)
    found = text_activations(
        loaded,
        chosen,
        layer,
        system_prompt=system_prompt,
        max_tokens=max_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    for v in vectors:
        v.top_examples = rank_examples(found, loaded.tokenizer, v.vector, n, score)
    info = {
        "source": source,
        "n_texts": len(chosen),
        "n_tokens": int(found.acts.shape[0]),
        "score": score,
    }
    return info, found.n_batches
