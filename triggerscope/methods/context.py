"""What one method run has at hand: the model, the task, the SAE, and engines built once.

Engines are built lazily and kept, so a method that needs the supervised engine for scoring and
the unsupervised one for training prepares each only once; their pass counters add up into the
result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from triggerscope.loading import LoadedModel
from triggerscope.methods.config import MethodConfig
from triggerscope.methods.engine import Counters, Engine, Example, Targets, tokenize
from triggerscope.methods.task import FindTask
from triggerscope.sae.model import SAE


def build_engine(
    kind: str,
    loaded: LoadedModel,
    examples: list[Example],
    layer: int,
    cfg: MethodConfig,
    *,
    target_layer: int | None = None,
    targets: Targets = "after_user",
    check: bool = True,
) -> Engine:
    if kind == "reference":
        from triggerscope.methods.reference import ReferenceEngine

        return ReferenceEngine(
            loaded,
            examples,
            layer,
            target_layer=target_layer,
            targets=targets,
            batch_size=cfg.batch_size,
        )
    from triggerscope.methods.prefix import FastEngine

    return FastEngine(
        loaded,
        examples,
        layer,
        target_layer=target_layer,
        targets=targets,
        max_tokens=cfg.max_tokens,
        check=check,
    )


@dataclass
class RunContext:
    loaded: LoadedModel
    task: FindTask
    layer: int  # resolved (non-negative)
    sae: SAE | None = None
    labels: Mapping[int, str] | None = None
    progress: bool = False
    engines: dict[tuple[Any, ...], Engine] = field(default_factory=dict)
    unsteered: dict[tuple[Any, ...], list[str]] = field(default_factory=dict)
    other: Counters = field(default_factory=Counters)  # passes outside the kept engines
    _examples: dict[bool, list[Example]] = field(default_factory=dict)

    def examples(self, with_response: bool = True) -> list[Example]:
        if with_response not in self._examples:
            self._examples[with_response] = tokenize(
                self.loaded.tokenizer,
                self.task.prompts,
                self.task.response if with_response else None,
                self.task.system_prompt,
            )
        return self._examples[with_response]

    def supervised(self, cfg: MethodConfig) -> Engine:
        key = ("ce", cfg.engine)
        if key not in self.engines:
            self.engines[key] = build_engine(
                cfg.engine, self.loaded, self.examples(True), self.layer, cfg
            )
        return self.engines[key]

    def unsupervised(self, cfg: MethodConfig, target_layer: int, targets: Targets) -> Engine:
        key = ("div", cfg.engine, target_layer, targets)
        if key not in self.engines:
            self.engines[key] = build_engine(
                cfg.engine,
                self.loaded,
                self.examples(False),
                self.layer,
                cfg,
                target_layer=target_layer,
                targets=targets,
            )
        return self.engines[key]

    def passes(self) -> tuple[int, int]:
        forward = self.other.forward + sum(e.counters.forward for e in self.engines.values())
        backward = self.other.backward + sum(e.counters.backward for e in self.engines.values())
        return forward, backward

    def decoder(self) -> torch.Tensor:
        """SAE decoder rows as residual-stream directions [d_sae, d_model] (float32)."""
        assert self.sae is not None
        return (self.sae.W_dec.detach().float() / self.sae.cfg.input_scale).cpu()
