"""The fast path: do only the work that depends on the steering vector, and prove it exact.

What is computed once per prompt set (at construction):
- the shared prefix (system prompt and template up to the first user token; identical in every
  prompt, and never steered) runs once, and its keys/values at every layer are kept;
- every prompt's remaining tokens run through layers 0..l once, attending to that prefix; the
  output of layer l (`h0`) is kept;
- prompts are packed several to a row (block-diagonal causal masks, positions restarting after
  the prefix), so little compute goes to padding.

What each step computes: h0 + delta at the user tokens, then layers l+1..L only, on the suffix
tokens only, several vectors stacked in one batch. Supervised: the final norm and lm_head only at
the positions that predict response tokens. Unsupervised: layers up to the target layer, nothing
after it. Construction runs a self-check against a full forward pass of the first prompt and
refuses (TriggerscopeError) an architecture it does not reproduce, naming the reference engine.

Supported: decoder layers called as `layer(h, attention_mask=, position_embeddings=,
past_key_values=)` whose attention calls `past_key_values.update(k, v, layer_idx)` (Llama,
Mistral, Qwen2 in transformers 5), with eager or sdpa attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from triggerscope.decoder import (
    PrefixKV,
    RecordKV,
    attention_kind,
    attention_mask,
    backbone,
    reproduces,
    run_layers,
)
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers, resolve_layer
from triggerscope.loading import LoadedModel
from triggerscope.methods.engine import (
    Counters,
    Example,
    Targets,
    check_deltas,
    check_target_layer,
)

PACK_WIDTH = 64  # rows are at least this wide, so short prompts share a row


@dataclass
class _Chunk:
    """Rows of packed prompt suffixes, with everything a step needs precomputed."""

    ids: torch.Tensor  # [R, W]
    pos: torch.Tensor  # [R, W] absolute positions (prefix included)
    user: torch.Tensor  # [R, W] 1.0 at the user's tokens
    mask: torch.Tensor  # [R, 1, W, P + W] bool (sdpa) or additive float (eager)
    rope: Any  # (cos, sin) for these positions, or None
    prompts: list[int]  # global prompt index of each local prompt
    h0: torch.Tensor | None = None  # output of layer l, unsteered
    sel: torch.Tensor | None = None  # flat positions that score (CE: predict a response token)
    sel_prompt: torch.Tensor | None = None  # their local prompt index
    tgt: torch.Tensor | None = None  # CE: the token each one predicts
    weight: torch.Tensor | None = None  # CE: 1 / (response tokens of its prompt)
    clean: torch.Tensor | None = None  # divergence: unsteered target activations [S, d]
    usel: torch.Tensor | None = None  # user-token flat positions
    usel_prompt: torch.Tensor | None = None
    allowed: torch.Tensor | None = None  # [R, W, P + W] bool: which keys each position sees
    # last layer at the scoring positions only: per row its query columns (padded), their mask,
    # positions and rope, and where each entry of `sel` sits among them
    qcols: torch.Tensor | None = None  # [R, Sq]
    qmask: torch.Tensor | None = None  # [R, 1, Sq, P + W + Sq]
    qpos: torch.Tensor | None = None
    qrope: Any = None
    sel_in_q: torch.Tensor | None = None  # [S]
    _expanded: dict[int, tuple[torch.Tensor, torch.Tensor, Any]] = field(default_factory=dict)
    _expanded_q: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]] = field(
        default_factory=dict
    )

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])

    @property
    def width(self) -> int:
        return int(self.ids.shape[1])

    def expanded(self, g: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """mask, positions and rope repeated for `g` stacked vectors (cached)."""
        if g not in self._expanded:
            rope = None if self.rope is None else tuple(t.repeat(g, 1, 1) for t in self.rope)
            self._expanded[g] = (self.mask.repeat(g, 1, 1, 1), self.pos.repeat(g, 1), rope)
        return self._expanded[g]

    def expanded_q(self, g: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """Query columns, mask, positions and rope of the trimmed last layer, for g vectors."""
        assert self.qcols is not None and self.qmask is not None and self.qpos is not None
        if g not in self._expanded_q:
            rope = None if self.qrope is None else tuple(t.repeat(g, 1, 1) for t in self.qrope)
            self._expanded_q[g] = (
                self.qcols.repeat(g, 1),
                self.qmask.repeat(g, 1, 1, 1),
                self.qpos.repeat(g, 1),
                rope,
            )
        return self._expanded_q[g]


def shared_prefix(examples: Sequence[Example]) -> int:
    """Length of the token prefix all examples share before any user token."""
    limit = min(e.first_user for e in examples)
    first = examples[0].ids
    n = 0
    while n < limit and all(e.ids[n] == first[n] for e in examples):
        n += 1
    return n


def pack(lengths: Sequence[int], width: int) -> list[list[int]]:
    """First-fit decreasing: segment indices per row, each row's lengths summing to <= width."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(width - lengths[i])
    return rows


class FastEngine:
    def __init__(
        self,
        loaded: LoadedModel,
        examples: Sequence[Example],
        layer: int,
        *,
        target_layer: int | None = None,
        targets: Targets = "after_user",
        max_tokens: int = 4096,
        pack_rows: bool = True,
        trim_last: bool = True,
        check: bool = True,
    ) -> None:
        """`target_layer=None`: supervised (CE through the final norm and lm_head); else the
        unsupervised objective reads the output of `target_layer`. `trim_last`: run the last
        layer's queries, attention output and MLP only at the scoring positions (supervised)."""
        if not examples:
            raise TriggerscopeError("no prompts given; pass at least one benign prompt")
        if max_tokens <= 0:
            raise TriggerscopeError("max_tokens must be positive")
        model = loaded.model
        self.loaded = loaded
        self.model = model
        self.layers = decoder_layers(model)
        n_layers = len(self.layers)
        self.layer = resolve_layer(model, layer)
        self.supervised = target_layer is None
        self.stop = n_layers - 1 if target_layer is None else target_layer
        if target_layer is not None:
            self.stop = check_target_layer(n_layers, self.layer, target_layer)
        self.targets: Targets = targets
        self.examples = list(examples)
        self.n_prompts = len(self.examples)
        self.max_tokens = max_tokens
        self.counters = Counters()
        body = backbone(model, self.layers)
        self.embed = model.get_input_embeddings()
        self.rotary = getattr(body, "rotary_emb", None)
        self.norm = getattr(body, "norm", None)
        self.head = model.get_output_embeddings()
        if self.supervised and (self.norm is None or self.head is None):
            raise TriggerscopeError(
                f"the fast path cannot find the final norm / lm_head of {type(model).__name__}; "
                "use engine='reference'"
            )
        try:
            self._attention = attention_kind(model)
        except TriggerscopeError as err:
            raise TriggerscopeError(
                f"the fast path: {err}; load the model with attn_implementation='sdpa' or use "
                "engine='reference'"
            ) from err
        self.device = self.embed.weight.device
        self.dtype = self.embed.weight.dtype
        self.d_model = int(self.embed.weight.shape[1])
        self.prefix_len = shared_prefix(self.examples)
        self._rotate = self._rotary_function() if trim_last else None
        self.trim = self._rotate is not None
        try:
            with torch.no_grad():
                self._prefix_kv = self._run_prefix()
                self.chunks = self._build_chunks(pack_rows)
                for chunk in self.chunks:
                    self._prepare(chunk)
            if check:
                self._checked()
        except (RuntimeError, TypeError, AttributeError, KeyError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise TriggerscopeError(
                f"the fast path cannot run {type(model).__name__} ({first}); use engine='reference'"
            ) from err

    # ------------------------------------------------------------------------ plumbing

    def _rotary_function(self) -> Any:
        """`apply_rotary_pos_emb` of a Llama-style last layer, or None (then no trimming)."""
        import sys

        if not self.supervised or self.stop <= self.layer or self.rotary is None:
            return None
        block = self.layers[self.stop]
        attn = getattr(block, "self_attn", None)
        needed = ("k_proj", "v_proj", "head_dim")
        if not hasattr(block, "input_layernorm") or attn is None:
            return None
        if not all(hasattr(attn, a) for a in needed) or hasattr(attn, "k_norm"):
            return None
        module = sys.modules.get(type(attn).__module__)
        return getattr(module, "apply_rotary_pos_emb", None)

    def _checked(self) -> None:
        """Self-check; if the trimmed last layer is what fails, drop the trim and check again."""
        try:
            self.self_check()
        except (TriggerscopeError, RuntimeError, TypeError, AttributeError, KeyError):
            if not self.trim:
                raise
            self.trim = False
            self.self_check()

    def _run(self, h: torch.Tensor, *span: Any) -> torch.Tensor:
        """Layers start..stop on h: `span` is run_layers' (start, stop, mask, pos, rope, kv)."""
        return run_layers(self.layers, h, *span)

    def _rope(self, h: torch.Tensor, pos: torch.Tensor) -> Any:
        return None if self.rotary is None else self.rotary(h, pos)

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        return attention_mask(allowed, self._attention, self.dtype)

    def _run_prefix(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]] | None:
        p = self.prefix_len
        if p == 0:
            return None
        ids = torch.tensor([self.examples[0].ids[:p]], device=self.device)
        pos = torch.arange(p, device=self.device)[None]
        h = self.embed(ids)
        causal = torch.ones(p, p, dtype=torch.bool, device=self.device).tril()[None]
        record = RecordKV()
        self._run(h, 0, self.stop, self._mask(causal), pos, self._rope(h, pos), record)
        if sorted(record.kv) != list(range(self.stop + 1)):
            raise TriggerscopeError(
                f"the fast path cannot share the prompt prefix in {type(self.model).__name__} "
                "(its attention does not use the cache as Llama does); use engine='reference'"
            )
        return record.kv

    def _segment(self, e: Example) -> tuple[int, ...]:
        """The example's tokens after the prefix, cut after the last position that matters."""
        end = e.response_positions()[-1] if self.supervised else len(e.ids)
        return e.ids[self.prefix_len : end]

    def _build_chunks(self, pack_rows: bool) -> list[_Chunk]:
        segments = [self._segment(e) for e in self.examples]
        lengths = [len(s) for s in segments]
        width = max(lengths)
        if pack_rows:
            rows = pack(lengths, max(width, PACK_WIDTH))
            width = max(sum(lengths[i] for i in row) for row in rows)
        else:
            rows = [[i] for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))]
        per_chunk = max(1, self.max_tokens // width)
        self._placement: dict[int, tuple[int, int, int]] = {}
        chunks = []
        for c, start in enumerate(range(0, len(rows), per_chunk)):
            chunk_rows = rows[start : start + per_chunk]
            chunks.append(self._layout(c, chunk_rows, segments, width))
        return chunks

    def _layout(
        self, c: int, rows: list[list[int]], segments: list[tuple[int, ...]], width: int
    ) -> _Chunk:
        n_rows, p = len(rows), self.prefix_len
        ids = torch.zeros((n_rows, width), dtype=torch.long)
        pos = torch.zeros((n_rows, width), dtype=torch.long)
        seg = torch.full((n_rows, width), -1, dtype=torch.long)
        user = torch.zeros((n_rows, width), dtype=self.dtype)
        prompts: list[int] = []
        for r, row in enumerate(rows):
            col = 0
            for i in row:
                s = segments[i]
                cols = slice(col, col + len(s))
                ids[r, cols] = torch.tensor(s)
                pos[r, cols] = torch.arange(p, p + len(s))
                seg[r, cols] = len(prompts)
                user[r, cols] = torch.tensor(
                    self.examples[i].user[p : p + len(s)], dtype=self.dtype
                )
                self._placement[i] = (c, r, col)
                prompts.append(i)
                col += len(s)
        valid = seg >= 0
        same = (seg[:, :, None] == seg[:, None, :]) & valid[:, :, None]
        causal = torch.ones(width, width, dtype=torch.bool).tril()[None]
        pad_self = torch.eye(width, dtype=torch.bool)[None] & ~valid[:, :, None]
        inner = (same & causal) | pad_self
        prefix = valid[:, :, None].expand(n_rows, width, p)
        allowed = torch.cat([prefix, inner], dim=-1).to(self.device)
        ids, pos = ids.to(self.device), pos.to(self.device)
        h = self.embed(ids[:1])
        return _Chunk(
            ids=ids,
            pos=pos,
            user=user.to(self.device),
            mask=self._mask(allowed),
            rope=self._rope(h, pos),
            prompts=prompts,
            allowed=allowed,
        )

    def _local_positions(
        self, chunk: _Chunk, which: str
    ) -> tuple[list[int], list[int], list[int], list[float]]:
        """Flat positions, local prompt index, target token and weight for each scored spot."""
        p, w = self.prefix_len, chunk.width
        flat, local, tgt, weight = [], [], [], []
        for li, i in enumerate(chunk.prompts):
            e = self.examples[i]
            _c, r, col = self._placement[i]
            if which == "ce":
                resp = e.response_positions()
                for j in resp:
                    flat.append(r * w + col + (j - 1 - p))
                    local.append(li)
                    tgt.append(e.ids[j])
                    weight.append(1.0 / len(resp))
            elif which == "user":
                for j in range(e.first_user, e.last_user + 1):
                    if e.user[j]:
                        flat.append(r * w + col + (j - p))
                        local.append(li)
            else:
                for t in e.target_positions(self.targets):
                    flat.append(r * w + col + (t - p))
                    local.append(li)
        return flat, local, tgt, weight

    def _prepare(self, chunk: _Chunk) -> None:
        """Layers 0..l once; the index tensors; the unsteered targets (unsupervised)."""
        dev = self.device
        kv = PrefixKV(self._prefix_kv) if self._prefix_kv is not None else None
        h = self.embed(chunk.ids)
        chunk.h0 = self._run(h, 0, self.layer, chunk.mask, chunk.pos, chunk.rope, kv)
        self.counters.forward += 1
        flat, local, _, _ = self._local_positions(chunk, "user")
        chunk.usel = torch.tensor(flat, device=dev)
        chunk.usel_prompt = torch.tensor(local, device=dev)
        if self.supervised:
            flat, local, tgt, weight = self._local_positions(chunk, "ce")
            chunk.tgt = torch.tensor(tgt, device=dev)
            chunk.weight = torch.tensor(weight, dtype=torch.float32, device=dev)
        else:
            flat, local, _, _ = self._local_positions(chunk, "targets")
            if not flat:
                raise TriggerscopeError(
                    "no target positions: the template puts nothing after the user's text; "
                    "use targets='all'"
                )
        chunk.sel = torch.tensor(flat, device=dev)
        chunk.sel_prompt = torch.tensor(local, device=dev)
        if self.trim:
            self._prepare_queries(chunk, flat)
        if not self.supervised:
            out = self._run(
                chunk.h0, self.layer + 1, self.stop, chunk.mask, chunk.pos, chunk.rope, kv
            )
            self.counters.forward += 1
            chunk.clean = out.reshape(-1, self.d_model).index_select(0, chunk.sel).float()

    def _prepare_queries(self, chunk: _Chunk, flat: list[int]) -> None:
        """Per row, the columns whose last-layer output is scored; the rest only give keys."""
        assert chunk.allowed is not None
        w, dev = chunk.width, self.device
        per_row: list[list[int]] = [[] for _ in range(chunk.rows)]
        slot = []
        for f in flat:
            r, col = divmod(f, w)
            if col not in per_row[r]:
                per_row[r].append(col)
            slot.append((r, per_row[r].index(col)))
        sq = max(len(cols) for cols in per_row)
        qcols = torch.tensor(
            [cols + [cols[0] if cols else 0] * (sq - len(cols)) for cols in per_row]
        )
        chunk.qcols = qcols.to(dev)
        chunk.sel_in_q = torch.tensor([r * sq + j for r, j in slot], device=dev)
        rows = torch.arange(chunk.rows, device=dev)[:, None]
        seen = chunk.allowed[rows, chunk.qcols]  # [R, Sq, P + W]
        # the queries' own new keys duplicate keys already in the cache: never attend to them
        own = torch.zeros((chunk.rows, sq, sq), dtype=torch.bool, device=dev)
        chunk.qmask = self._mask(torch.cat([seen, own], dim=-1))
        chunk.qpos = chunk.pos.gather(1, chunk.qcols)
        chunk.qrope = self._rope(self.embed(chunk.ids[:1]), chunk.qpos)

    def _last_layer(self, chunk: _Chunk, h: torch.Tensor, g: int) -> torch.Tensor:
        """Output of the last layer at the scoring positions only [g * S, d]: keys and values
        for every position, queries, attention output and MLP only where they are scored."""
        assert chunk.sel_in_q is not None and self._rotate is not None
        block: Any = self.layers[self.stop]
        attn: Any = block.self_attn
        b, w, d = h.shape
        x = block.input_layernorm(h)
        shape = (b, w, -1, attn.head_dim)
        keys = attn.k_proj(x).view(shape).transpose(1, 2)
        values = attn.v_proj(x).view(shape).transpose(1, 2)
        _mask, _pos, rope = chunk.expanded(g)
        keys = self._rotate(keys, keys, rope[0], rope[1])[1]
        if self._prefix_kv is not None:
            pk, pv = self._prefix_kv[self.stop]
            keys = torch.cat([pk.expand(b, -1, -1, -1).to(keys.dtype), keys], dim=2)
            values = torch.cat([pv.expand(b, -1, -1, -1).to(values.dtype), values], dim=2)
        qcols, qmask, qpos, qrope = chunk.expanded_q(g)
        hq = h.gather(1, qcols[..., None].expand(-1, -1, d))
        out = block(
            hq,
            attention_mask=qmask,
            position_ids=qpos,
            past_key_values=PrefixKV({self.stop: (keys, values)}),
            use_cache=False,
            position_embeddings=qrope,
        )
        out = out[0] if isinstance(out, tuple) else out
        sq = qcols.shape[1]
        offsets = torch.arange(g, device=out.device)[:, None] * (chunk.rows * sq)
        index = (chunk.sel_in_q[None] + offsets).reshape(-1)
        return out.reshape(-1, d).index_select(0, index)

    def _scored(self, chunk: _Chunk, h: torch.Tensor, g: int) -> torch.Tensor:
        """From the (steered) output of layer l to the last layer's output at the scoring
        positions [g * S, d]."""
        mask, pos, rope = chunk.expanded(g)
        self.counters.forward += 1
        if self.trim:
            h = self._run(h, self.layer + 1, self.stop - 1, mask, pos, rope, self._kv())
            return self._last_layer(chunk, h, g)
        h = self._run(h, self.layer + 1, self.stop, mask, pos, rope, self._kv())
        return self._select(chunk, h, g)

    def _kv(self) -> PrefixKV | None:
        return PrefixKV(self._prefix_kv) if self._prefix_kv is not None else None

    def _add(self, chunk: _Chunk, deltas: torch.Tensor) -> torch.Tensor:
        """h0 + delta at the user tokens, one block of rows per vector [g * R, W, d]."""
        assert chunk.h0 is not None
        g = deltas.shape[0]
        d = deltas.to(device=chunk.h0.device, dtype=chunk.h0.dtype)
        h = chunk.h0[None] + chunk.user[None, :, :, None] * d[:, None, None, :]
        return h.reshape(g * chunk.rows, chunk.width, self.d_model)

    def _steered(self, chunk: _Chunk, deltas: torch.Tensor) -> torch.Tensor:
        """Layers l+1..stop on h0 + delta, every position."""
        mask, pos, rope = chunk.expanded(deltas.shape[0])
        self.counters.forward += 1
        h = self._add(chunk, deltas)
        return self._run(h, self.layer + 1, self.stop, mask, pos, rope, self._kv())

    def _groups(self, chunk: _Chunk, n: int) -> list[slice]:
        g = max(1, self.max_tokens // (chunk.rows * chunk.width))
        return [slice(s, min(n, s + g)) for s in range(0, n, g)]

    def _select(self, chunk: _Chunk, out: torch.Tensor, g: int) -> torch.Tensor:
        assert chunk.sel is not None
        block = chunk.rows * chunk.width
        offsets = torch.arange(g, device=chunk.sel.device)[:, None] * block
        return out.reshape(-1, self.d_model).index_select(
            0, (chunk.sel[None] + offsets).reshape(-1)
        )

    # -------------------------------------------------------------------------- losses

    def _ce_per_prompt(self, chunk: _Chunk, deltas: torch.Tensor) -> torch.Tensor:
        """CE_i of each local prompt, per vector [G, n_local]."""
        assert self.norm is not None and self.head is not None
        assert chunk.tgt is not None and chunk.weight is not None and chunk.sel_prompt is not None
        g = deltas.shape[0]
        x = self.norm(self._scored(chunk, self._add(chunk, deltas), g))
        logits = self.head(x).float()
        token_ce = F.cross_entropy(logits, chunk.tgt.repeat(g), reduction="none")
        token_ce = (token_ce * chunk.weight.repeat(g)).view(g, -1)
        out = torch.zeros((g, len(chunk.prompts)), device=token_ce.device)
        return out.index_add(1, chunk.sel_prompt, token_ce)

    def _divergence(self, chunk: _Chunk, deltas: torch.Tensor, p: float, q: float) -> torch.Tensor:
        assert chunk.clean is not None and chunk.sel_prompt is not None
        g = deltas.shape[0]
        h = self._select(chunk, self._steered(chunk, deltas), g).float()
        sq = (h - chunk.clean.repeat(g, 1)).pow(2).sum(-1).pow(p / 2).view(g, -1)
        per_prompt = torch.zeros((g, len(chunk.prompts)), device=sq.device)
        per_prompt = per_prompt.index_add(1, chunk.sel_prompt, sq)
        return per_prompt.pow(1 / q).sum(1)

    def _accumulate(
        self, deltas: torch.Tensor, grad: bool, fn: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        deltas = check_deltas(deltas, self.d_model).detach()
        n = deltas.shape[0]
        values = torch.zeros(n, dtype=torch.float32)
        grads = torch.zeros_like(deltas, dtype=torch.float32) if grad else None
        for chunk in self.chunks:
            for sl in self._groups(chunk, n):
                leaf = deltas[sl].clone().requires_grad_(grad)
                with torch.set_grad_enabled(grad):
                    value = fn(chunk, leaf)
                    if grad:
                        value.sum().backward()
                        self.counters.backward += 1
                        assert leaf.grad is not None and grads is not None
                        grads[sl] += leaf.grad.float().to(grads.device)
                values[sl] += value.detach().float().cpu()
        return values, grads

    def ce(self, deltas: torch.Tensor, grad: bool = False) -> tuple[torch.Tensor, Any]:
        if not self.supervised:
            raise TriggerscopeError("this engine was built for the unsupervised objective")
        m = self.n_prompts
        return self._accumulate(deltas, grad, lambda c, d: self._ce_per_prompt(c, d).sum(1) / m)

    def ce_per_prompt(self, delta: torch.Tensor | None = None) -> torch.Tensor:
        """CE_i for every prompt under one vector (zero: unsteered) [m]."""
        delta = torch.zeros(self.d_model) if delta is None else delta
        out = torch.zeros(self.n_prompts)
        with torch.no_grad():
            for chunk in self.chunks:
                values = self._ce_per_prompt(chunk, check_deltas(delta, self.d_model))[0]
                out[chunk.prompts] = values.float().cpu()
        return out

    def divergence(
        self, deltas: torch.Tensor, grad: bool = False, *, p: float = 2.0, q: float = 1.0
    ) -> tuple[torch.Tensor, Any]:
        if self.supervised:
            raise TriggerscopeError("this engine was built without a target layer")
        return self._accumulate(deltas, grad, lambda c, d: self._divergence(c, d, p, q))

    def attribution_grads(self) -> torch.Tensor:
        """All prompts in batched passes: CE_i depends only on prompt i's own activations, so the
        gradient of sum_i CE_i at prompt i's positions is exactly the gradient of CE_i."""
        if not self.supervised:
            raise TriggerscopeError("attribution needs the supervised (CE) engine")
        assert self.norm is not None and self.head is not None
        out = torch.zeros((self.n_prompts, self.d_model))
        for chunk in self.chunks:
            assert chunk.h0 is not None and chunk.usel is not None and chunk.usel_prompt is not None
            assert chunk.tgt is not None and chunk.weight is not None
            h0 = chunk.h0.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                x = self.norm(self._scored(chunk, h0, 1))
                token_ce = F.cross_entropy(self.head(x).float(), chunk.tgt, reduction="none")
                (token_ce * chunk.weight).sum().backward()
                self.counters.backward += 1
            assert h0.grad is not None
            g = h0.grad.reshape(-1, self.d_model).index_select(0, chunk.usel).float()
            sums = torch.zeros((len(chunk.prompts), self.d_model), device=g.device)
            sums = sums.index_add(0, chunk.usel_prompt, g)
            counts = torch.bincount(chunk.usel_prompt, minlength=len(chunk.prompts))
            out[chunk.prompts] = (sums / counts[:, None]).cpu()
        return out

    def mean_user_norm(self) -> float:
        total, count = 0.0, 0
        for chunk in self.chunks:
            assert chunk.h0 is not None and chunk.usel is not None
            h = chunk.h0.reshape(-1, self.d_model).index_select(0, chunk.usel).float()
            total += float(h.norm(dim=-1).sum())
            count += int(h.shape[0])
        return total / count

    # ------------------------------------------------------------------------- checking

    def self_check(self) -> None:
        """Compare with a full forward pass of the first prompt; refuse if they differ."""
        from triggerscope.hooks import record
        from triggerscope.methods.reference import pad_left, response_ce

        e = self.examples[0]
        c, r, col = self._placement[0]
        chunk = self.chunks[c]
        pad = self.loaded.tokenizer.pad_token_id
        inputs = pad_left([e], 0 if pad is None else int(pad), self.device)
        with torch.no_grad(), record(self.model, [self.layer, self.stop]) as store:
            full = self.model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"],
                use_cache=False,
            )
        self.counters.forward += 1
        p = self.prefix_len
        n = len(self._segment(e))
        assert chunk.h0 is not None
        pairs = [(chunk.h0[r, col : col + n], store[self.layer][0, p : p + n])]
        if self.supervised:
            mine = self.ce_per_prompt()[0:1]
            ref = response_ce(full.logits, inputs["input_ids"], inputs["response"]).cpu()
            pairs.append((mine, ref))
        else:
            assert chunk.clean is not None and chunk.sel_prompt is not None
            mine = chunk.clean[chunk.sel_prompt == chunk.prompts.index(0)]
            targets = [t for t in e.target_positions(self.targets)]
            pairs.append((mine, store[self.stop][0, targets].float()))
        tol = 1e-3 if self.dtype == torch.float32 else 5e-2
        for fast, ref in pairs:
            if not reproduces(fast, ref, tol):
                err = float((fast.float().cpu() - ref.float().cpu()).abs().max())
                raise TriggerscopeError(
                    f"the fast path does not reproduce {type(self.model).__name__}'s forward pass "
                    f"(max difference {err:.3g}); use engine='reference'"
                )
