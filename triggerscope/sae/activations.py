"""Cache residual-stream activations once, for several layers in one pass, resumably.

The model runs only up to the deepest requested layer (`run_to_layer`), with `record` hooks on
the others. Only the user's own tokens are kept: the methods read user-token activations of chat
prompts, while the template tokens (system prompt, role headers) are the same ~30 positions in
every prompt. Millions of copies of those would spend SAE capacity on a handful of points, and the
first positions carry the large-norm outliers of attention sinks that no user token has.

Layout of a cache folder: `meta.json` (what was cached: model, layers, documents, token budget),
`progress.json` (how far it got), `layer{L}.f16` (float16 [capacity, d_model] memmap per layer)
and `tokens.i32` (the token id of each row). Work is done in chunks of documents; after each
chunk the memmaps are flushed and progress is written atomically, so a killed run continues
from the last finished chunk and produces the same files as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from triggerscope.atomic import write_json
from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers, record, resolve_layer, run_to_layer
from triggerscope.sae.corpus import Document, sampling_order

FP16_MAX = 65504.0
CACHE_FORMAT = 1


@dataclass
class ActivationCache:
    """A finished (or partial) cache folder, read through memmaps."""

    folder: Path
    meta: dict[str, Any]
    n_tokens: int

    @property
    def layers(self) -> list[int]:
        return [int(x) for x in self.meta["layers"]]

    @property
    def d_model(self) -> int:
        return int(self.meta["d_model"])

    @property
    def complete(self) -> bool:
        return bool(_read_progress(self.folder).get("complete"))

    def activations(self, layer: int) -> np.ndarray:
        """float16 [n_tokens, d_model], memory-mapped read-only."""
        if layer not in self.layers:
            raise TriggerscopeError(
                f"the activation cache {self.folder} holds layers {self.layers}, not {layer}; "
                "cache that layer or pass one of those"
            )
        capacity = int(self.meta["capacity"])
        mm = np.memmap(
            self.folder / f"layer{layer}.f16",
            dtype=np.float16,
            mode="r",
            shape=(capacity, self.d_model),
        )
        return mm[: self.n_tokens]

    def token_ids(self) -> np.ndarray:
        capacity = int(self.meta["capacity"])
        mm = np.memmap(self.folder / "tokens.i32", dtype=np.int32, mode="r", shape=(capacity,))
        return mm[: self.n_tokens]


def _read_progress(folder: Path) -> dict[str, Any]:
    path = folder / "progress.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def open_cache(folder: str | Path) -> ActivationCache:
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise TriggerscopeError(
            f"{folder} is not an activation cache (no meta.json); make one with `sae train`"
        )
    meta = json.loads((folder / "meta.json").read_text())
    progress = _read_progress(folder)
    return ActivationCache(folder, meta, int(progress.get("tokens_done", 0)))


def _fingerprint(docs: Sequence[Document]) -> str:
    h = hashlib.sha256()
    for doc in docs:
        h.update(doc.text.encode())
        h.update(b"\0")
    return h.hexdigest()


def _batches(texts: list[str], batch_tokens: int) -> list[list[int]]:
    """Indices grouped by length (less padding), each batch about `batch_tokens` characters/4."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        est = len(texts[i]) // 4 + 40
        if current and est * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def cache_activations(
    lm: Any,
    docs: Sequence[Document],
    layers: Sequence[int],
    folder: str | Path,
    *,
    max_tokens: int,
    seed: int = 0,
    docs_per_chunk: int = 256,
    batch_tokens: int = 4096,
    max_chars: int = 4000,
    progress: bool = True,
    grow_from: str | Path | None = None,
) -> ActivationCache:
    """Run the model over `docs` (as user messages) and store user-token activations.

    Documents are taken in `sampling_order(docs, seed)` until `max_tokens` rows are stored.
    Calling again with the same arguments resumes an unfinished cache, or returns a finished one.
    `grow_from`, a finished smaller cache of the same documents and settings, starts a new cache
    with its rows (the chunks it finished whole), so a bigger budget does not redo that work.
    """
    if not docs:
        raise TriggerscopeError("the corpus is empty; it needs at least one document")
    if max_tokens <= 0:
        raise TriggerscopeError(f"max_tokens must be positive, got {max_tokens}")
    model, tokenizer = lm.model, lm.tokenizer
    resolved = sorted({resolve_layer(model, layer) for layer in layers})
    if not resolved:
        raise TriggerscopeError("no layers to cache; pass at least one --layer")
    d_model = int(model.get_input_embeddings().weight.shape[1])
    folder = Path(folder)
    order = sampling_order(list(docs), seed)
    ordered = [docs[i] for i in order]
    meta = {
        "format": CACHE_FORMAT,
        "model": lm.name,
        "layers": resolved,
        "n_model_layers": len(decoder_layers(model)),
        "d_model": d_model,
        "capacity": max_tokens,
        "seed": seed,
        "n_docs": len(docs),
        "docs_fingerprint": _fingerprint(ordered),
        "docs_per_chunk": docs_per_chunk,
        "batch_tokens": batch_tokens,
        "max_chars": max_chars,
        "tokens": "user-content tokens of chat-formatted prompts (one document per message)",
        "dtype": "float16",
    }
    seed_cache = None
    if grow_from is not None and not (folder / "progress.json").is_file():
        seed_cache = open_cache(grow_from)
        _check_can_seed(seed_cache, meta)
    if (folder / "meta.json").is_file():
        old = json.loads((folder / "meta.json").read_text())
        diff = sorted(k for k in meta if old.get(k) != meta[k])
        if diff:
            raise TriggerscopeError(
                f"{folder} caches different activations ({', '.join(diff)} differ); "
                "pass another cache folder or delete this one"
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "meta.json", meta)

    def mm(name: str, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
        path = folder / name
        return np.memmap(path, dtype=dtype, mode="r+" if path.exists() else "w+", shape=shape)

    if seed_cache is not None:
        _copy_finished_chunks(seed_cache, meta, folder, tokenizer, ordered, mm)
    state = _read_progress(folder) or {"chunks_done": 0, "docs_done": 0, "tokens_done": 0}
    state.setdefault("seconds", 0.0)
    if state.get("complete"):
        return open_cache(folder)

    stores = {
        layer: mm(f"layer{layer}.f16", np.float16, (max_tokens, d_model)) for layer in resolved
    }
    token_store = mm("tokens.i32", np.int32, (max_tokens,))
    device = lm.input_device
    deepest = resolved[-1]
    max_abs = {int(k): float(v) for k, v in state.get("max_abs", {}).items()}
    bar = tqdm(
        total=max_tokens,
        initial=state["tokens_done"],
        unit="tok",
        unit_scale=True,
        desc=f"caching layers {resolved}",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        while state["tokens_done"] < max_tokens and state["docs_done"] < len(ordered):
            start_time = time.perf_counter()
            chunk = ordered[state["docs_done"] : state["docs_done"] + docs_per_chunk]
            texts = [d.text[:max_chars] for d in chunk]
            pos = state["tokens_done"]
            for batch_idx in _batches(texts, batch_tokens):
                if pos >= max_tokens:
                    break
                batch = build_chat_batch(tokenizer, [texts[i] for i in batch_idx]).to(device)
                with record(model, resolved[:-1]) as acts:
                    last = run_to_layer(model, deepest, **batch.model_inputs())
                acts[deepest] = last
                mask = batch.user_mask
                n = min(int(mask.sum()), max_tokens - pos)
                for layer in resolved:
                    rows = acts[layer][mask][:n].float()
                    max_abs[layer] = max(max_abs.get(layer, 0.0), float(rows.abs().max()))
                    stores[layer][pos : pos + n] = rows.clamp(-FP16_MAX, FP16_MAX).cpu().numpy()
                token_store[pos : pos + n] = batch.input_ids[mask][:n].cpu().numpy()
                pos += n
                bar.update(n)
            for store in (*stores.values(), token_store):
                store.flush()
            state = {
                **state,
                "chunks_done": state["chunks_done"] + 1,
                "docs_done": state["docs_done"] + len(chunk),
                "tokens_done": pos,
                "seconds": state["seconds"] + time.perf_counter() - start_time,
                "max_abs": max_abs,
            }
            write_json(folder / "progress.json", state)
    finally:
        bar.close()
    if state["tokens_done"] == 0:
        raise TriggerscopeError("the corpus produced no user tokens; check the documents")
    state["complete"] = True
    write_json(folder / "progress.json", state)
    return open_cache(folder)


def _user_tokens(tokenizer: Any, texts: list[str], batch_tokens: int) -> int:
    """How many rows these documents give: their user-token count in the chat template."""
    total = 0
    for batch_idx in _batches(texts, batch_tokens):
        total += int(build_chat_batch(tokenizer, [texts[i] for i in batch_idx]).user_mask.sum())
    return total


def _check_can_seed(source: ActivationCache, meta: dict[str, Any]) -> None:
    old = source.meta
    diff = sorted(k for k in meta if k != "capacity" and old.get(k) != meta[k])
    if diff or not source.complete or int(old["capacity"]) >= int(meta["capacity"]):
        raise TriggerscopeError(
            f"{source.folder} cannot seed this cache (it must be a finished, smaller cache of the "
            f"same documents and settings{'; differs in ' + ', '.join(diff) if diff else ''})"
        )


def _copy_finished_chunks(
    source: ActivationCache,
    meta: dict[str, Any],
    folder: Path,
    tokenizer: Any,
    ordered: Sequence[Document],
    mm: Any,
) -> None:
    """Seed a new cache with the whole chunks of a smaller finished one (its last chunk may
    have been cut at the budget, so it is left out and redone): the rows are then exactly those
    of a cache built from scratch."""
    old = source.meta
    progress = _read_progress(source.folder)
    chunks = int(progress["chunks_done"])
    per_chunk = int(meta["docs_per_chunk"])
    if source.n_tokens >= int(old["capacity"]):  # budget reached: the last chunk may be cut
        chunks -= 1
    texts = [d.text[: int(meta["max_chars"])] for d in ordered[: chunks * per_chunk]]
    rows = _user_tokens(tokenizer, texts, int(meta["batch_tokens"]))
    max_abs: dict[int, float] = {}
    for layer in source.layers:
        store = mm(f"layer{layer}.f16", np.float16, (int(meta["capacity"]), source.d_model))
        for start in range(0, rows, 65536):
            block = np.asarray(source.activations(layer)[start : min(rows, start + 65536)])
            store[start : start + len(block)] = block
            peak = float(np.abs(block.astype(np.float32)).max()) if len(block) else 0.0
            max_abs[layer] = max(max_abs.get(layer, 0.0), peak)
        store.flush()
    tokens = mm("tokens.i32", np.int32, (int(meta["capacity"]),))
    tokens[:rows] = source.token_ids()[:rows]
    tokens.flush()
    seconds = float(progress.get("seconds", 0.0)) * rows / max(1, source.n_tokens)
    state = {
        "chunks_done": chunks,
        "docs_done": min(len(ordered), chunks * per_chunk),
        "tokens_done": rows,
        "seconds": seconds,
        "max_abs": max_abs,
        "grown_from": str(source.folder),
    }
    write_json(folder / "progress.json", state)


def find_smaller_cache(folder: Path) -> Path | None:
    """The biggest finished sibling cache that differs from `folder`'s name only in budget."""
    parts = folder.name.rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    prefix, budget, seed = parts[0], int(parts[1]), parts[2]
    best: tuple[int, Path] | None = None
    for sibling in folder.parent.glob(f"{prefix}_*_{seed}"):
        tail = sibling.name[len(prefix) + 1 : -len(seed) - 1]
        if not tail.isdigit() or not budget > int(tail):
            continue
        if _read_progress(sibling).get("complete") and (best is None or int(tail) > best[0]):
            best = (int(tail), sibling)
    return best[1] if best else None


@torch.no_grad()
def data_mean(acts: np.ndarray, max_rows: int = 200_000) -> torch.Tensor:
    """The mean activation (float32) over evenly spaced rows, to initialise b_dec."""
    step = max(1, len(acts) // max_rows)
    rows = np.asarray(acts[::step], dtype=np.float32)
    return torch.from_numpy(rows.mean(axis=0))


def default_cache_folder(
    model_name: str, split: str, layers: Sequence[int], max_tokens: int, seed: int
) -> Path:
    """Where `sae train` caches by default: one folder per (model, split, layers, budget, seed)."""
    from triggerscope.embedded import cache_root

    slug = "".join(c if c.isalnum() or c in "-._" else "_" for c in model_name.strip("/"))
    layer_part = "-".join(str(x) for x in sorted(set(layers)))
    name = f"{slug[-60:]}_{split}_L{layer_part}_{max_tokens}_seed{seed}"
    return cache_root() / "activations" / name
