"""What every trigger-reconstruction method returns, and how it is saved in a run folder.

`latent_ranking` is the method's reading of the trigger: SAE latents, best first. For methods
that learn vectors, each vector also carries its own ranking (the evaluation checks both: the
seed asks for a concept latent "in every supervised SAE-MELBO vector's top 3"); the method-level
ranking of a learned method is its first vector's (the unconstrained optimum).

Scores, by method: SAE-Attribution, the predicted drop of the response cross-entropy per unit of
latent activation (-(D g), higher = adding the latent lowers the loss more); residual-space
vectors, cosine with the decoder row; SAE-space vectors, their coefficient v_i. `final_loss` is
the same yardstick for every vector of every method: the steered cross-entropy of the response on
the training prompts (mean over prompts of the per-token mean); `objective` is what the method
itself minimised or maximised. `top_examples` (with the `example_readout` setting) read a vector
without an SAE: the held-out texts whose activations project most on it. Fields added later have
defaults, so result.json files written before them still load. `forward_passes` /
`backward_passes` count batched passes through (part of) the model, generation for the read-out
excluded; `wall_seconds` includes everything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from triggerscope.atomic import write_json, write_text
from triggerscope.safetensors_io import save_state_dict

RESULT_VERSION = 1


@dataclass
class RankedLatent:
    index: int
    score: float
    label: str = ""


@dataclass
class RankedExample:
    """A held-out text where a vector's direction is strongest (methods/examples.py)."""

    text: str  # the text around its strongest tokens, those marked «like this»
    score: float  # max over the text's user tokens of <h, v/|v|> (or the cosine) at layer l
    token: str  # the token where that max is reached
    index: int  # position of the text in the texts read


@dataclass
class SteeredSample:
    prompt: str
    unsteered: str
    steered: str
    action: bool


@dataclass
class VectorResult:
    vector: torch.Tensor  # residual-stream direction at the method's layer, [d_model]
    final_loss: float
    top_latents: list[RankedLatent] = field(default_factory=list)
    latent_vector: torch.Tensor | None = None  # SAE-space code v, for SAE-MELBO methods
    steps: int = 0
    action_rate: float | None = None  # under steering, on held-out benign prompts
    samples: list[SteeredSample] = field(default_factory=list)
    objective: float | None = None  # the method's own final objective (with its penalty)
    stopped: str = ""  # "plateau", "max_steps", or "" (not trained)
    top_examples: list[RankedExample] = field(default_factory=list)  # with example_readout


@dataclass
class MethodResult:
    method: str
    layer: int
    response: str
    latent_ranking: list[RankedLatent] = field(default_factory=list)
    vectors: list[VectorResult] = field(default_factory=list)
    token_ranking: list[tuple[str, float]] = field(default_factory=list)  # token baseline
    wall_seconds: float = 0.0
    forward_passes: int = 0
    backward_passes: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    latent_scores: torch.Tensor | None = None  # [d_sae] (attribution) or [K, d_sae] (vectors)
    baseline_loss: float | None = None  # unsteered response CE on the training prompts
    baseline_action_rate: float | None = None  # unsteered, on the same held-out prompts
    extras: dict[str, Any] = field(default_factory=dict)  # method-specific, JSON-able

    def summary(self) -> dict[str, Any]:
        """JSON-able view (vectors themselves go to vectors.safetensors)."""
        vectors = []
        for i, v in enumerate(self.vectors):
            row = {k: val for k, val in asdict(v).items() if k not in ("vector", "latent_vector")}
            row["index"] = i
            row["norm"] = float(v.vector.norm())
            vectors.append(row)
        return {
            "version": RESULT_VERSION,
            "method": self.method,
            "layer": self.layer,
            "response": self.response,
            "latent_ranking": [asdict(r) for r in self.latent_ranking],
            "token_ranking": [list(t) for t in self.token_ranking],
            "vectors": vectors,
            "baseline_loss": self.baseline_loss,
            "baseline_action_rate": self.baseline_action_rate,
            "extras": self.extras,
            "wall_seconds": self.wall_seconds,
            "forward_passes": self.forward_passes,
            "backward_passes": self.backward_passes,
            "config": self.config,
        }

    def save(self, run_dir: str | Path) -> None:
        out = Path(run_dir)
        tensors = {f"vector_{i}": v.vector for i, v in enumerate(self.vectors)}
        tensors.update(
            {
                f"latent_vector_{i}": v.latent_vector
                for i, v in enumerate(self.vectors)
                if v.latent_vector is not None
            }
        )
        if tensors:
            save_state_dict(tensors, out / "vectors.safetensors")
        if self.latent_scores is not None:
            save_state_dict({"scores": self.latent_scores}, out / "latent_scores.safetensors")
        rows = [{"vector": i, **asdict(s)} for i, v in enumerate(self.vectors) for s in v.samples]
        rows += [{"vector": None, **s} for s in self.extras.get("samples", [])]
        write_text(out / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        write_json(out / "result.json", self.summary())
