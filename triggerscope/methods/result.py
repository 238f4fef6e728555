"""What every trigger-reconstruction method returns, and how it is saved in a run folder.

`latent_ranking` is the method's reading of the trigger: SAE latents, best first. For methods
that learn vectors, each vector also carries its own ranking (the evaluation checks both: the
seed asks for a concept latent "in every supervised SAE-MELBO vector's top 3").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from triggerscope.atomic import write_json
from triggerscope.safetensors_io import save_state_dict

RESULT_VERSION = 1


@dataclass
class RankedLatent:
    index: int
    score: float
    label: str = ""


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
        write_json(out / "result.json", self.summary())
