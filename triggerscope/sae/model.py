"""One SAE module for the three activation functions triggerscope meets: TopK, ReLU, JumpReLU.

Tensor names and shapes follow SAELens: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
b_dec [d_in], threshold [d_sae] (JumpReLU only). `input_scale` multiplies activations before
encoding and divides the reconstruction after decoding (Llama Scope's norm scaling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from triggerscope.errors import TriggerscopeError

Architecture = Literal["topk", "standard", "jumprelu"]
ARCHITECTURES: tuple[str, ...] = ("topk", "standard", "jumprelu")


@dataclass
class SAEConfig:
    d_in: int
    d_sae: int
    architecture: Architecture = "topk"
    k: int | None = 32  # TopK only
    apply_b_dec_to_input: bool = True
    input_scale: float = 1.0
    model_name: str = ""
    layer: int | None = None  # decoder layer whose output (resid_post) the SAE reads
    hook_name: str = ""  # e.g. "blocks.8.hook_resid_post"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise TriggerscopeError(
                f"unknown SAE architecture {self.architecture!r}; use {', '.join(ARCHITECTURES)}"
            )
        if self.d_in <= 0 or self.d_sae <= 0:
            raise TriggerscopeError("SAE sizes d_in and d_sae must be positive")
        if self.architecture == "topk" and not (self.k and 0 < self.k <= self.d_sae):
            raise TriggerscopeError(f"TopK SAE needs 0 < k <= d_sae ({self.d_sae}), got {self.k}")
        if not self.hook_name and self.layer is not None:
            self.hook_name = f"blocks.{self.layer}.hook_resid_post"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SAE(nn.Module):
    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.W_enc = nn.Parameter(torch.empty(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_in))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        if cfg.architecture == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(cfg.d_sae))
        nn.init.kaiming_uniform_(self.W_dec)
        self.normalize_decoder_()
        with torch.no_grad():
            self.W_enc.copy_(self.W_dec.T)

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Unit-norm decoder rows, so a latent's activation is its contribution's size."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.W_enc.dtype) * self.cfg.input_scale
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.cfg.architecture == "topk":
            assert self.cfg.k is not None
            values, indices = pre.topk(self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter_(-1, indices, values.relu())
        if self.cfg.architecture == "jumprelu":
            # ReLU, then the threshold gate (as SAELens, Gemma Scope and Llama Scope do).
            return pre.relu() * (pre > self.threshold)
        return pre.relu()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.pre_activations(x))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents @ self.W_dec + self.b_dec) / self.cfg.input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def check_fits(self, d_model: int, layer: int | None = None) -> None:
        """Clear errors for an SAE used with the wrong model or layer."""
        if self.cfg.d_in != d_model:
            raise TriggerscopeError(
                f"the SAE reads vectors of size {self.cfg.d_in} but the model's d_model is "
                f"{d_model}; use an SAE trained on this model"
            )
        if layer is not None and self.cfg.layer is not None and self.cfg.layer != layer:
            raise TriggerscopeError(
                f"the SAE was trained on layer {self.cfg.layer}, not layer {layer}; "
                f"pass --layer {self.cfg.layer} or an SAE for layer {layer}"
            )
