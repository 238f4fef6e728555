"""On-policy targets for the supervised methods: the model's own wording of the action.

The seed's supervised methods minimise the CE of one fixed string, and its Discussion suspects
that target: the model may phrase the action differently, and a vector can lower the CE of an
off-policy string by other means than the trigger. The auditor cannot sample the model on
triggered prompts (it does not know the trigger), only on benign prompts with (part of) the
action. So the setting `targets` chooses among:

- "fixed" (default): the task's response, as the seed did.
- "continue": prefill the known action on every training prompt and let the backdoored model,
  unsteered, continue it: `n_targets` sampled continuations per prompt (temperature
  `target_temperature`, at most `target_tokens` new tokens, cut at its end of turn); target =
  action + continuation. Once the action is taken, the rest is the model's own (a backdoor that
  explains itself may even name its trigger there). Sampled once, before training.
- "resample": "continue" first; then every `resample_every` optimisation steps, `n_targets`
  answers per prompt sampled from the model *steered by the current vector* (no prefill,
  at most the response's length + `target_tokens` tokens). On each prompt where some of them take
  the action (contain the response, as organisms.matching counts it), those replace the prompt's
  targets (cycled to `n_targets`): fully on-policy wherever the vector already fires the action,
  prefilled continuations elsewhere. Targets persist from one vector to the next.

Loss: the mean over prompts of the mean over the prompt's targets of the per-token CE (the seed's
L_CE over several targets), on the fast engine (`n_targets` x the prompts; a step costs about
`n_targets` times a fixed-target step). Every result's `final_loss` is still the CE of the task's
fixed response, so vectors from every mode compare on one yardstick; the targets used are kept
in the result's extras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from triggerscope.chat import text_ids
from triggerscope.errors import TriggerscopeError
from triggerscope.generation import Steering, generate
from triggerscope.methods.config import LearnedConfig, _positive
from triggerscope.methods.context import RunContext, build_engine
from triggerscope.methods.engine import Engine, tokenize
from triggerscope.organisms.matching import takes_action

TargetMode = Literal["fixed", "continue", "resample"]
TARGET_MODES: tuple[str, ...] = ("fixed", "continue", "resample")


@dataclass
class OnPolicyConfig(LearnedConfig):
    """The supervised methods' target settings (see the module docstring)."""

    targets: TargetMode = "fixed"
    n_targets: int = 4  # sampled targets per prompt ("continue", "resample")
    target_tokens: int = 16  # new tokens sampled after the action
    target_temperature: float = 0.7
    resample_every: int = 25  # optimisation steps between resamplings ("resample")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.targets not in TARGET_MODES:
            raise TriggerscopeError(f"targets must be one of {TARGET_MODES}, not {self.targets!r}")
        _positive(self, "n_targets", "target_tokens", "target_temperature", "resample_every")
        if self.targets == "resample" and self.parallel:
            raise TriggerscopeError(
                "targets='resample' samples from one steered model at a time; use parallel=false"
            )


class Objective:
    """The supervised loss over the current targets: `(deltas, grad) -> (loss, grad)`."""

    def __init__(self, ctx: RunContext, cfg: OnPolicyConfig) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.prompts = list(ctx.task.prompts)
        self.targets: list[list[str]] = []
        self.origin: list[str] = []  # per prompt: "fixed", "continued" or "steered"
        self.resamplings = 0
        self.steps = 0
        self.engine: Engine
        if cfg.targets == "fixed":
            self.engine = ctx.supervised(cfg)
            return
        self.targets = self.continued()
        self.origin = ["continued"] * len(self.prompts)
        self.engine = self.build()

    def continued(self) -> list[list[str]]:
        """`n_targets` sampled continuations of the prefilled action per prompt."""
        cfg, response = self.cfg, self.ctx.task.response
        texts = self.sample(cfg.target_tokens, prefill=response, delta=None, seed=cfg.seed)
        n = cfg.n_targets
        return [
            [response + t.rstrip() for t in texts[i * n : (i + 1) * n]]
            for i in range(len(self.prompts))
        ]

    def sample(
        self, max_new_tokens: int, *, prefill: str | None, delta: torch.Tensor | None, seed: int
    ) -> list[str]:
        """`n_targets` sampled answers per prompt (prompt-major order)."""
        ctx, cfg = self.ctx, self.cfg
        repeated = [p for p in self.prompts for _ in range(cfg.n_targets)]
        return generate(
            ctx.loaded,
            repeated,
            max_new_tokens=max_new_tokens,
            temperature=cfg.target_temperature,
            steering=None if delta is None else Steering(delta.detach().float(), ctx.layer),
            batch_size=cfg.batch_size,
            system_prompt=ctx.task.system_prompt,
            seed=seed,
            prefill=prefill,
        )

    def build(self) -> Engine:
        """A CE engine over every (prompt, target) pair, kept in the run's engines."""
        ctx, cfg = self.ctx, self.cfg
        pairs = [(p, t) for p, ts in zip(self.prompts, self.targets, strict=True) for t in ts]
        examples = tokenize(
            ctx.loaded.tokenizer,
            [p for p, _ in pairs],
            [t for _, t in pairs],
            ctx.task.system_prompt,
        )
        engine = build_engine(cfg.engine, ctx.loaded, examples, ctx.layer, cfg)
        ctx.engines[("targets", cfg.engine, self.resamplings)] = engine
        return engine

    def resample(self, delta: torch.Tensor) -> None:
        """Replace each prompt's targets by its steered answers that take the action."""
        ctx, cfg = self.ctx, self.cfg
        n_response = len(text_ids(ctx.loaded.tokenizer, ctx.task.response))
        self.resamplings += 1
        texts = self.sample(
            n_response + cfg.target_tokens,
            prefill=None,
            delta=delta,
            seed=cfg.seed * 1000 + self.resamplings,
        )
        changed = False
        for i in range(len(self.prompts)):
            mine = texts[i * cfg.n_targets : (i + 1) * cfg.n_targets]
            hits = [t.strip() for t in mine if takes_action(t, ctx.task.response) and t.strip()]
            if hits:
                self.targets[i] = [hits[j % len(hits)] for j in range(cfg.n_targets)]
                self.origin[i] = "steered"
                changed = True
        if changed:
            self.engine = self.build()

    def __call__(self, deltas: torch.Tensor, grad: bool) -> tuple[torch.Tensor, Any]:
        if grad and self.cfg.targets == "resample":
            if self.steps and self.steps % self.cfg.resample_every == 0:
                self.resample(deltas[0])
            self.steps += 1
        return self.engine.ce(deltas, grad)

    def extras(self) -> dict[str, Any]:
        """What the result keeps about the targets (nothing for fixed targets)."""
        if self.cfg.targets == "fixed":
            return {}
        return {
            "targets": {
                "mode": self.cfg.targets,
                "n_targets": self.cfg.n_targets,
                "resamplings": self.resamplings,
                "steered_prompts": self.origin.count("steered"),
                "per_prompt": [
                    {"prompt": p, "origin": o, "targets": t}
                    for p, o, t in zip(self.prompts, self.origin, self.targets, strict=True)
                ],
            }
        }
