"""How good is an SAE on held-out text: explained variance, L0, dead latents, CE-loss score.

Definitions follow SAELens/SAEBench. The SAE is read (and, for the CE-loss score, spliced) at the
evaluated positions only: the user's own tokens of chat-formatted texts, or every token but the
first of raw texts, so the attention-sink first token (whose norm is huge) does not dominate.
CE is next-token cross-entropy predicted from those positions, with the layer's output left
clean, replaced by the SAE's reconstruction, or zero-ablated; the score is
(CE_zero - CE_sae) / (CE_zero - CE_clean): 1 means the reconstruction loses nothing downstream.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from triggerscope.chat import build_chat_batch, clip_tokens
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers, forward_hook, resolve_layer, run_to_layer
from triggerscope.sae.model import SAE


@dataclass
class TextBatch:
    """Model inputs plus `positions`: bool [batch, seq], where the SAE is read and scored."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor
    first_text: int  # index of row 0 in the list of texts

    def model_inputs(self) -> dict[str, torch.Tensor]:
        position_ids = (self.attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": position_ids,
        }


def read_texts(path: str | Path, limit: int | None = None) -> list[str]:
    """Held-out texts: one per line, or a .jsonl file of objects with a "text" field."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise TriggerscopeError(f"text file {file} does not exist; pass one text per line")
    texts: list[str] = []
    for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if file.suffix == ".jsonl":
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise TriggerscopeError(f"{file}:{lineno} is not valid JSON ({err})") from err
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise TriggerscopeError(f'{file}:{lineno} needs a "text" string field')
            line = row["text"]
        texts.append(line.strip())
        if limit is not None and len(texts) >= limit:
            break
    texts = [t for t in texts if t]
    if not texts:
        raise TriggerscopeError(f"{file} holds no text; pass a file with one text per line")
    return texts


def text_batches(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    chat: bool = True,
    batch_size: int = 8,
    max_tokens: int = 128,
) -> Iterator[TextBatch]:
    """Batches of held-out texts; each text is cut to `max_tokens` tokens of its own."""
    if not texts:
        raise TriggerscopeError("no held-out texts given; pass at least one")
    if batch_size < 1 or max_tokens < 2:
        raise TriggerscopeError("batch_size must be >= 1 and max_tokens >= 2")
    for start in range(0, len(texts), batch_size):
        chunk = [clip_tokens(tokenizer, t, max_tokens) for t in texts[start : start + batch_size]]
        if chat:
            batch = build_chat_batch(tokenizer, chunk)
            yield TextBatch(batch.input_ids, batch.attention_mask, batch.user_mask, start)
            continue
        rows = [tokenizer(t)["input_ids"][: max_tokens + 1] for t in chunk]
        width = max(len(r) for r in rows)
        pad = int(tokenizer.pad_token_id or 0)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attn[i, : len(row)] = 1
        positions = attn.bool().clone()
        positions[:, 0] = False  # the first token is an attention sink, not text
        yield TextBatch(ids, attn, positions, start)


def sae_layer(model: Any, sae: SAE, layer: int | None = None) -> int:
    """The decoder layer whose output the SAE reads, checked against the model."""
    chosen = layer if layer is not None else sae.cfg.layer
    if chosen is None:
        hook = sae.cfg.hook_name or "an unknown hook"
        raise TriggerscopeError(
            f"the SAE reads {hook}, not the output of a decoder layer; pass --layer L if it "
            f"reads the output of decoder layer L"
        )
    resolved = resolve_layer(model, chosen)
    sae.check_fits(int(model.config.hidden_size), resolved)
    return resolved


def layer_device(model: Any, layer: int) -> torch.device:
    """Where decoder layer `layer` runs (models spread over GPUs put layers apart)."""
    block = decoder_layers(model)[resolve_layer(model, layer)]
    param = next(block.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def splice(
    model: Any,
    layer: int,
    fn: Callable[[torch.Tensor], torch.Tensor],
    positions: torch.Tensor | None = None,
) -> Iterator[None]:
    """Replace decoder layer `layer`'s output by fn(output) where `positions` is true."""
    block = decoder_layers(model)[resolve_layer(model, layer)]

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        hidden = _hidden(output)
        new = fn(hidden).to(hidden.dtype)
        if positions is not None:
            new = torch.where(positions.to(hidden.device)[..., None], new, hidden)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    with forward_hook(block, hook):
        yield


@dataclass
class SAEMetrics:
    explained_variance: float
    mse: float  # mean over tokens of ||x - x_hat||^2
    l0: float
    dead_fraction: float
    n_dead: int
    ce_clean: float | None
    ce_sae: float | None
    ce_zero: float | None
    ce_score: float | None
    n_texts: int
    n_tokens: int
    layer: int
    positions: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ce_sum(logits: torch.Tensor, batch: TextBatch) -> tuple[float, int]:
    """Summed next-token CE over predictions made at the evaluated positions."""
    ids = batch.input_ids.to(logits.device)
    scored = batch.positions[:, :-1].to(logits.device) & batch.attention_mask[:, 1:].bool().to(
        logits.device
    )
    if not scored.any():
        return 0.0, 0
    chosen = logits[:, :-1][scored].float()
    loss = torch.nn.functional.cross_entropy(chosen, ids[:, 1:][scored], reduction="sum")
    return float(loss), int(scored.sum())


@torch.no_grad()
def evaluate_sae(
    model: Any,
    tokenizer: Any,
    sae: SAE,
    texts: Sequence[str],
    *,
    layer: int | None = None,
    chat: bool = True,
    batch_size: int = 8,
    max_tokens: int = 128,
    ce: bool = True,
    progress: bool = False,
) -> SAEMetrics:
    """Three forward passes per batch (clean, SAE spliced, zero-ablated); with ce=False, one
    pass that stops at the SAE's layer."""
    from tqdm import tqdm

    layer = sae_layer(model, sae, layer)
    device = model.get_input_embeddings().weight.device
    sae.to(layer_device(model, layer))
    d_in = sae.cfg.d_in
    sum_x = torch.zeros(d_in, dtype=torch.float64)
    sum_x2 = sum_err2 = sum_l0 = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.bool)
    n_tokens = 0
    ce_sums = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    ce_count = 0

    def reconstruct(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        nonlocal sum_x2, sum_err2, sum_l0, n_tokens
        x = hidden[positions.to(hidden.device)].float()
        latents = sae.encode(x)
        x_hat = sae.decode(latents)
        xd = x.double()
        sum_x.add_(xd.sum(0).cpu())
        sum_x2 += float((xd**2).sum())
        sum_err2 += float(((xd - x_hat.double()) ** 2).sum())
        active = latents > 0
        sum_l0 += float(active.sum())
        fired.logical_or_(active.any(0).cpu())
        n_tokens += x.shape[0]
        out = hidden.clone()
        out[positions.to(hidden.device)] = x_hat.to(hidden.dtype)
        return out

    batches = list(
        text_batches(tokenizer, texts, chat=chat, batch_size=batch_size, max_tokens=max_tokens)
    )
    for batch in tqdm(batches, desc="sae eval", disable=not progress, leave=False):
        inputs = {k: v.to(device) for k, v in batch.model_inputs().items()}
        pos = batch.positions.to(device)
        if not ce:  # the statistics only need the model up to the SAE's layer
            reconstruct(run_to_layer(model, layer, **inputs), pos)
            continue
        with splice(model, layer, functools.partial(reconstruct, positions=pos), pos):
            spliced = model(**inputs, use_cache=False).logits
        loss, count = _ce_sum(spliced, batch)
        ce_sums["sae"] += loss
        ce_count += count
        ce_sums["clean"] += _ce_sum(model(**inputs, use_cache=False).logits, batch)[0]
        with splice(model, layer, torch.zeros_like, pos):
            ce_sums["zero"] += _ce_sum(model(**inputs, use_cache=False).logits, batch)[0]
    if n_tokens == 0:
        raise TriggerscopeError("the texts gave no tokens to evaluate; pass longer texts")
    mean = sum_x / n_tokens
    total_var = sum_x2 - n_tokens * float((mean**2).sum())
    ce_vals: dict[str, float | None] = dict.fromkeys(ce_sums)
    score = None
    if ce and ce_count:
        ce_vals = {k: v / ce_count for k, v in ce_sums.items()}
        clean, spliced_ce, zero = ce_vals["clean"], ce_vals["sae"], ce_vals["zero"]
        assert clean is not None and spliced_ce is not None and zero is not None
        score = (zero - spliced_ce) / (zero - clean) if zero != clean else None
    n_dead = int((~fired).sum())
    return SAEMetrics(
        explained_variance=1.0 - sum_err2 / total_var if total_var > 0 else float("nan"),
        mse=sum_err2 / n_tokens,
        l0=sum_l0 / n_tokens,
        dead_fraction=n_dead / sae.d_sae,
        n_dead=n_dead,
        ce_clean=ce_vals["clean"],
        ce_sae=ce_vals["sae"],
        ce_zero=ce_vals["zero"],
        ce_score=score,
        n_texts=len(texts),
        n_tokens=n_tokens,
        layer=layer,
        positions="user tokens (chat)" if chat else "all tokens but the first (raw)",
    )
