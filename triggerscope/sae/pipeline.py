"""Corpus -> activation cache -> one SAE per layer -> held-out metrics -> manifest.

What `triggerscope sae train` runs. Every stage can be stopped and started again: the cache
resumes from its last chunk, training from its last checkpoint (`resume=True`), and a finished
stage is not redone. Checkpoints live in a work folder (the cache by default), so the output
folder holds only what ships: the SAE (SAELens layout, fp16), its training config and metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from triggerscope.atomic import write_json
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import resolve_layer
from triggerscope.manifest import update_manifest
from triggerscope.sae.activations import (
    cache_activations,
    default_cache_folder,
    find_smaller_cache,
)
from triggerscope.sae.corpus import balanced_heldout, read_split
from triggerscope.sae.training import CHECKPOINT_STATE, TrainConfig, train_sae


def default_work_folder(out: Path) -> Path:
    from triggerscope.embedded import cache_root

    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:10]
    return cache_root() / "sae-checkpoints" / f"{out.name}-{key}"


def _heldout_texts(corpus: Path, n: int) -> list[str]:
    """`n` held-out documents, balanced over sources, or none."""
    if n <= 0 or not (corpus.is_dir() and (corpus / "heldout.jsonl").is_file()):
        return []
    return balanced_heldout(corpus, n)


def _finished_superset(folder: Path, layers: Sequence[int], model: str) -> Any:
    """A finished cache of this model that holds these layers among others: train from it."""
    from triggerscope.sae.activations import open_cache

    if not (folder / "meta.json").is_file():
        return None
    cache = open_cache(folder)
    if cache.complete and cache.meta["model"] == model and set(layers) < set(cache.layers):
        return cache
    return None


def train_saes(
    lm: Any,
    *,
    layers: Sequence[int],
    corpus: Path,
    out: Path,
    cfg: TrainConfig,
    max_tokens: int,
    cache_folder: Path | None = None,
    work_folder: Path | None = None,
    resume: bool = False,
    eval_texts: int = 200,
    eval_max_tokens: int = 128,
    command: str = "",
    stop_after_steps: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one SAE per layer from one caching pass; returns the manifest."""
    started = time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    resolved = sorted({resolve_layer(lm.model, layer) for layer in layers})
    if not resolved:
        raise TriggerscopeError("no layers given; pass --layer L or --layers L1 L2")
    work = work_folder or default_work_folder(out)
    if not resume:
        stale = [work / f"layer{layer}" for layer in resolved]
        stale = [p for p in stale if (p / CHECKPOINT_STATE).is_file()]
        if stale:
            raise TriggerscopeError(
                f"{stale[0]} holds a checkpoint of an earlier run; pass --resume to continue it, "
                "or delete it to start over"
            )
    docs = read_split(corpus, "train")
    heldout = _heldout_texts(corpus, eval_texts)
    cache_dir = cache_folder or default_cache_folder(
        lm.name, "train", resolved, max_tokens, cfg.seed
    )
    # a finished smaller default cache of the same corpus gives its rows to a bigger budget
    smaller = find_smaller_cache(cache_dir) if cache_folder is None else None
    reuse = (
        _finished_superset(cache_folder, resolved, lm.name) if cache_folder is not None else None
    )
    cache = reuse or cache_activations(
        lm,
        docs,
        resolved,
        cache_dir,
        max_tokens=max_tokens,
        seed=cfg.seed,
        progress=progress,
        grow_from=smaller if smaller and not cache_dir.exists() else None,
    )
    cache_progress = json.loads((cache.folder / "progress.json").read_text())
    cache_seconds = float(cache_progress.get("seconds", 0.0))
    corpus_manifest: dict[str, Any] = {}
    if corpus.is_dir() and (corpus / "manifest.json").is_file():
        corpus_manifest = json.loads((corpus / "manifest.json").read_text())
    manifest: dict[str, Any] = {
        "model": lm.name,
        "command": command,
        "corpus": {
            "path": str(corpus),
            "version": corpus_manifest.get("version"),
            "debian_packages": corpus_manifest.get("debian_packages"),
            "prompt_banks": corpus_manifest.get("prompt_banks"),
            "train_documents": len(docs),
        },
        "activations": {
            "layers": resolved,
            "tokens": cache.n_tokens,
            "which_tokens": cache.meta["tokens"],
            "caching_seconds": round(cache_seconds, 1),
            "grown_from": cache_progress.get("grown_from"),
            "tokens_per_second": round(cache.n_tokens / cache_seconds, 1)
            if cache_seconds
            else None,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "load_average_at_start": load_start,
        },
    }
    layer_entries: dict[str, Any] = {}
    for layer in resolved:
        result = train_sae(
            cache.activations(layer),
            cfg,
            folder=work / f"layer{layer}",
            resume=resume,
            model_name=lm.name,
            layer=layer,
            stop_after_steps=stop_after_steps,
            progress=progress,
            device=lm.input_device,
        )
        if not result.finished:
            manifest["unfinished"] = f"layer {layer} stopped at step {result.steps}; pass --resume"
            return manifest
        layer_entries[str(layer)] = ship_layer(
            lm, result, cfg, out / f"layer{layer}", layer, heldout, eval_max_tokens, progress
        )
        layer_entries[str(layer)]["command"] = command  # layers may be retrained one by one
    manifest["layers"] = layer_entries
    manifest["total_seconds_this_run"] = round(time.perf_counter() - started, 1)
    if hasattr(os, "getloadavg"):
        manifest["machine"]["load_average_at_end"] = os.getloadavg()[0]
    return update_manifest(out, manifest)


def ship_layer(
    lm: Any,
    result: Any,
    cfg: TrainConfig,
    folder: Path,
    layer: int,
    heldout: list[str],
    eval_max_tokens: int,
    progress: bool,
) -> dict[str, Any]:
    """Save the SAE (fp16, SAELens layout) with its config, then measure the saved file."""
    from triggerscope.sae.formats import load_sae, save_sae
    from triggerscope.sae.metrics import evaluate_sae

    save_sae(result.sae, folder, dtype="float16")
    summary = {
        "steps": result.steps,
        "tokens_seen": result.tokens_seen,
        "train_seconds": round(result.seconds, 1),
        "final_train_fvu": result.history[-1]["fvu"] if result.history else None,
    }
    write_json(
        folder / "train_config.json",
        {**cfg.to_dict(), "learning_rate": cfg.learning_rate, **summary, "history": result.history},
    )
    entry: dict[str, Any] = dict(summary)
    if heldout:
        t = time.perf_counter()
        shipped = load_sae(folder, d_model=int(lm.model.config.hidden_size))
        metrics = evaluate_sae(
            lm.model,
            lm.tokenizer,
            shipped,
            heldout,
            layer=layer,
            max_tokens=eval_max_tokens,
            progress=progress,
        )
        entry["metrics"] = metrics.to_dict()
        entry["eval_seconds"] = round(time.perf_counter() - t, 1)
        write_json(folder / "metrics.json", entry["metrics"])
    return entry
