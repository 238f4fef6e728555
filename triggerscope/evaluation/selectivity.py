"""Which SAE latents mean a concept: AUROC of each latent's max activation over a probe text.

A latent is *selective* for a concept when the largest activation it reaches on a text (user
tokens of the chat-formatted text only) separates the concept's positive probe texts from its
negative ones with AUROC >= a threshold (0.9 by default). This is computed for every latent
once per (SAE, model, layer, probe set) and cached as safetensors in the user cache, keyed by
the SAE's weight hash, so scoring a run never re-reads the model.

Activations come from the model with any LoRA adapter switched off: a latent's meaning is a
property of the SAE on the model it was trained on, so one cache entry serves every organism.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from triggerscope.embedded import cache_root
from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.auroc import auroc
from triggerscope.evaluation.probes import ProbeSet
from triggerscope.hooks import run_to_layer
from triggerscope.sae.labels import sae_fingerprint
from triggerscope.sae.metrics import layer_device, sae_layer, text_batches
from triggerscope.sae.model import SAE
from triggerscope.safetensors_io import load_state_dict, save_state_dict

VERSION = 1
DEFAULT_THRESHOLD = 0.9


@dataclass
class ConceptSelectivity:
    concept: str
    auroc: torch.Tensor  # [d_sae]
    n_pos: int
    n_neg: int

    def selective(self, threshold: float = DEFAULT_THRESHOLD) -> set[int]:
        return set(torch.nonzero(self.auroc >= threshold).flatten().tolist())

    def n_selective(self, threshold: float = DEFAULT_THRESHOLD) -> int:
        return int((self.auroc >= threshold).sum())

    def best(self, n: int = 5) -> list[tuple[int, float]]:
        values, indices = self.auroc.topk(min(n, len(self.auroc)))
        return [(int(i), round(float(v), 4)) for i, v in zip(indices, values, strict=True)]


@torch.no_grad()
def max_activations(
    model: Any,
    tokenizer: Any,
    sae: SAE,
    texts: list[str],
    *,
    layer: int,
    batch_size: int = 16,
    max_tokens: int = 128,
) -> torch.Tensor:
    """[n_texts, d_sae]: each latent's largest activation over the user tokens of each text."""
    device = model.get_input_embeddings().weight.device
    sae.to(layer_device(model, layer))
    rows = []
    for batch in text_batches(
        tokenizer, texts, chat=True, batch_size=batch_size, max_tokens=max_tokens
    ):
        inputs = {k: v.to(device) for k, v in batch.model_inputs().items()}
        hidden = run_to_layer(model, layer, **inputs)
        acts = sae.encode(hidden.float())
        # SAE activations are >= 0, so zeroing the other positions cannot raise a maximum.
        acts = acts * batch.positions.to(acts.device)[..., None]
        rows.append(acts.max(dim=1).values.cpu())
    return torch.cat(rows)


def cache_key(sae_sha: str, model_id: str, layer: int, probe: ProbeSet, max_tokens: int) -> str:
    data = json.dumps([VERSION, sae_sha, model_id, layer, probe.sha, max_tokens])
    return hashlib.sha256(data.encode()).hexdigest()


def cache_file(sae_sha: str, concept: str, key: str, root: Path | None = None) -> Path:
    base = root if root is not None else cache_root() / "selectivity"
    return base / sae_sha[:16] / f"{concept}-{key[:16]}.safetensors"


def _adapter_off(model: Any) -> Any:
    disable = getattr(model, "disable_adapter", None)
    return disable() if callable(disable) else nullcontext()


def concept_selectivity(
    model: Any,
    tokenizer: Any,
    sae: SAE,
    probe: ProbeSet,
    *,
    model_id: str,
    layer: int | None = None,
    cache_dir: Path | None = None,
    refresh: bool = False,
    max_tokens: int = 128,
    sae_sha: str | None = None,
) -> ConceptSelectivity:
    """Every latent's AUROC for `probe.concept`, from the cache when it is there."""
    layer = sae_layer(model, sae, layer)
    sha = sae_sha or sae_fingerprint(sae)
    key = cache_key(sha, model_id, layer, probe, max_tokens)
    file = cache_file(sha, probe.concept, key, cache_dir)
    if file.is_file() and not refresh:
        try:
            tensors = load_state_dict(file)
            scores = tensors["auroc"]
            if scores.shape == (sae.d_sae,):
                return ConceptSelectivity(probe.concept, scores, len(probe.pos), len(probe.neg))
        except (TriggerscopeError, KeyError):
            pass  # an unreadable cache entry is recomputed and replaced
    with _adapter_off(model):
        pos = max_activations(model, tokenizer, sae, probe.pos, layer=layer, max_tokens=max_tokens)
        neg = max_activations(model, tokenizer, sae, probe.neg, layer=layer, max_tokens=max_tokens)
    scores = auroc(pos, neg)
    meta = {
        "concept": probe.concept,
        "sae_sha256": sha,
        "model": model_id,
        "layer": str(layer),
        "probe_sha256": probe.sha,
        "n_pos": str(len(probe.pos)),
        "n_neg": str(len(probe.neg)),
        "version": str(VERSION),
    }
    save_state_dict({"auroc": scores.contiguous()}, file, meta)
    return ConceptSelectivity(probe.concept, scores, len(probe.pos), len(probe.neg))
