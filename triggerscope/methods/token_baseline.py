"""Token baseline (the seed's "simplistic token-level method"): which single vocabulary token,
inserted into every benign prompt, most lowers the response's cross-entropy?

1. Gradient-guided candidates: insert a placeholder whose embedding is the mean embedding e0 at
   the start (or end) of each user text; g = d L_CE / d e0. Swapping in token j changes the loss
   by about (E_j - e0) . g, so the `candidates` most negative tokens are kept.
2. Exact evaluation: each candidate is inserted for real and L_CE measured with a full forward
   pass (the fast engine, layer 0 as the split point).

Only word-like tokens are considered (letters, optionally one leading space; no special tokens),
and by default none of the response's own words: inserting "answer" to make the model say "I
won't answer" would only measure copying. The ranking holds (token, L_CE drop), largest drop
first. The best token is then inserted as text into the held-out prompts for the action rate.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.config import MethodConfig, _positive
from triggerscope.methods.context import RunContext, build_engine
from triggerscope.methods.engine import Example, insert_token
from triggerscope.methods.readout import answers, heldout, unsteered
from triggerscope.methods.reference import pad_left, response_ce
from triggerscope.methods.result import MethodResult, SteeredSample
from triggerscope.organisms.matching import action_rate, normalize, takes_action

_WORD = re.compile(r" ?[A-Za-z]+")


@dataclass
class TokenConfig(MethodConfig):
    candidates: int = 48  # tokens evaluated exactly (one full pass over the prompts each)
    top_tokens: int = 20
    where: Literal["start", "end"] = "start"
    exclude_response_words: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "candidates", "top_tokens")
        if self.where not in ("start", "end"):
            raise TriggerscopeError(f"where must be 'start' or 'end', not {self.where!r}")


def allowed_tokens(
    tokenizer: Any, n_vocab: int, response: str, exclude_response: bool
) -> list[int]:
    """Word-like, non-special token ids (optionally without the response's own words)."""
    n = min(n_vocab, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)])
    special = set(tokenizer.all_special_ids)
    words = set(re.findall(r"[a-z]+", normalize(response))) if exclude_response else set()
    return [
        i
        for i, t in enumerate(texts)
        if i not in special and _WORD.fullmatch(t) and t.strip().lower() not in words
    ]


def embedding_gradient(
    ctx: RunContext, cfg: TokenConfig, examples: list[Example], at: list[int], e0: torch.Tensor
) -> torch.Tensor:
    """d L_CE / d e0 with e0 the embedding at position `at[i]` of every example."""
    model = ctx.loaded.model
    embed = model.get_input_embeddings()
    pad = ctx.loaded.tokenizer.pad_token_id
    leaf = e0.detach().clone().requires_grad_(True)
    m = len(examples)
    for start in range(0, m, cfg.batch_size):
        chunk = examples[start : start + cfg.batch_size]
        inputs = pad_left(chunk, 0 if pad is None else int(pad), ctx.loaded.input_device)
        width = inputs["input_ids"].shape[1]
        mask = torch.zeros(inputs["input_ids"].shape, dtype=torch.bool)
        for r, (e, a) in enumerate(zip(chunk, at[start : start + len(chunk)], strict=True)):
            mask[r, width - len(e.ids) + a] = True
        mask = mask.to(ctx.loaded.input_device)
        with torch.enable_grad():
            emb = embed(inputs["input_ids"]).detach()
            emb = torch.where(mask[..., None], leaf.to(emb.dtype).expand_as(emb), emb)
            logits = model(
                inputs_embeds=emb,
                attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"],
                use_cache=False,
            ).logits
            loss = response_ce(logits, inputs["input_ids"], inputs["response"]).sum() / m
            loss.backward()
        ctx.other.forward += 1
        ctx.other.backward += 1
    assert leaf.grad is not None
    return leaf.grad.detach().float()


def exact_loss(ctx: RunContext, cfg: TokenConfig, examples: list[Example], check: bool) -> float:
    engine = build_engine(cfg.engine, ctx.loaded, examples, 0, cfg, check=check)
    value, _ = engine.ce(torch.zeros(1, engine.d_model))
    ctx.other.forward += engine.counters.forward
    return float(value[0])


def with_text(prompt: str, token: str, where: str) -> str:
    word = token.strip()
    return f"{word} {prompt}" if where == "start" else f"{prompt} {word}"


def run(ctx: RunContext, cfg: TokenConfig) -> MethodResult:
    from tqdm.auto import tqdm

    tokenizer = ctx.loaded.tokenizer
    embed = ctx.loaded.model.get_input_embeddings().weight.detach()
    examples = ctx.examples(True)
    allowed = allowed_tokens(
        tokenizer, embed.shape[0], ctx.task.response, cfg.exclude_response_words
    )
    if not allowed:
        raise TriggerscopeError("the vocabulary has no word-like tokens to try")
    base = ctx.supervised(cfg).ce(torch.zeros(1, embed.shape[1]))[0]
    baseline = float(base[0])
    table = embed[allowed].float().cpu()
    e0 = table.mean(0)
    placed = [insert_token(e, allowed[0], cfg.where) for e in examples]
    at = [e.first_user if cfg.where == "start" else e.last_user + 1 for e in examples]
    grad = embedding_gradient(ctx, cfg, placed, at, e0.to(embed.dtype).to(embed.device)).cpu()
    predicted = (table - e0) @ grad
    n = min(cfg.candidates, len(allowed))
    order = predicted.topk(n, largest=False).indices.tolist()
    candidates = [allowed[i] for i in order]
    drops = []
    bar = tqdm(candidates, desc="token candidates", disable=not ctx.progress, unit="token")
    for j, token in enumerate(bar):
        trial = [insert_token(e, token, cfg.where) for e in examples]
        drops.append((token, baseline - exact_loss(ctx, cfg, trial, check=j == 0)))
    drops.sort(key=lambda t: -t[1])
    texts = {t: tokenizer.decode([t]) for t, _ in drops}
    ranking = [(texts[t], float(d)) for t, d in drops[: cfg.top_tokens]]
    extras: dict[str, Any] = {
        "candidates": n,
        "allowed_tokens": len(allowed),
        "where": cfg.where,
        "predicted_change": {
            texts[candidates[i]]: float(predicted[o]) for i, o in enumerate(order[: cfg.top_tokens])
        },
    }
    prompts = heldout(ctx, cfg)
    rate = None
    if prompts and drops:
        best = texts[drops[0][0]]
        changed = [with_text(p, best, cfg.where) for p in prompts]
        plain = unsteered(ctx, cfg)
        steered = answers(ctx, cfg, changed, None)
        rate = action_rate(steered, ctx.task.response)
        extras["best_token"] = best
        extras["best_token_action_rate"] = rate
        extras["samples"] = [
            asdict(SteeredSample(c, u, s, takes_action(s, ctx.task.response)))
            for c, u, s in zip(changed, plain, steered, strict=True)
        ]
    return MethodResult(
        method="token",
        layer=ctx.layer,
        response=ctx.task.response,
        token_ranking=ranking,
        baseline_loss=baseline,
        baseline_action_rate=(
            action_rate(unsteered(ctx, cfg), ctx.task.response) if prompts else None
        ),
        extras=extras,
    )
