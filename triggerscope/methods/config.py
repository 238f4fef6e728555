"""Settings shared by every method: each method's config dataclass extends one of these.

Configs validate themselves in `__post_init__` (bad values raise TriggerscopeError with the
field name), so `run_method(..., lr=-1)` fails before any compute. Defaults for the learned
methods were chosen on the built-in fruit-refusal organism with its `audit` prompts only; the
reasons are in docs/methods.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from triggerscope.errors import TriggerscopeError

EngineKind = Literal["fast", "reference"]
# Fixed-norm vectors (MELBO, the random control) default to this fraction of the mean norm of
# the residual stream at the steering layer over user tokens: the norm supervised MELBO's
# vectors settled at on fruit-refusal (about 18 of 135 at layer 8; docs/methods.md).
NORM_FRACTION = 0.13
ENGINES: tuple[str, ...] = ("fast", "reference")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise TriggerscopeError(f"{name} must be a positive number, got {value!r}")


def _non_negative(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise TriggerscopeError(f"{name} must be >= 0, got {value!r}")


@dataclass
class MethodConfig:
    """Read-out and engine settings every method has."""

    top_latents: int = 10  # latents kept per ranking (the full scores go to latent_scores)
    heldout_samples: int = 16  # held-out prompts answered with and without steering (0: none)
    max_new_tokens: int | None = None  # None: the response's length in tokens + 8
    engine: EngineKind = "fast"  # "reference": plain full forward passes (slow; for checking)
    max_tokens: int = 2048  # fast path: tokens per batched pass (bounds memory, ~0.7 MB each)
    batch_size: int = 16  # reference engine and generation: prompts per batch
    seed: int = 0  # random starts and controls (deterministic methods record it only)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise TriggerscopeError(f"engine must be one of {ENGINES}, not {self.engine!r}")
        _positive(self, "top_latents", "max_tokens", "batch_size")
        _non_negative(self, "heldout_samples")
        if self.max_new_tokens is not None:
            _positive(self, "max_new_tokens")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VectorConfig(MethodConfig):
    """Read-out settings of the methods whose result is steering vectors (methods/examples.py)."""

    example_readout: int = 0  # top-activating held-out texts shown per vector (0: none)
    example_texts: str | None = None  # file of texts (one a line, or .jsonl); None: SAE corpus
    example_pool: int = 512  # texts read (the corpus's held-out split, balanced over sources)
    example_max_tokens: int = 64  # each text cut to this many tokens of its own
    example_score: str = "projection"  # or "cosine": of the centred activation, norm-blind

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self, "example_readout")
        if self.example_score not in ("projection", "cosine"):
            raise TriggerscopeError(
                f"example_score must be 'projection' or 'cosine', not {self.example_score!r}"
            )
        _positive(self, "example_pool")
        if (
            isinstance(self.example_max_tokens, bool)
            or not isinstance(self.example_max_tokens, int)
            or self.example_max_tokens < 2
        ):
            raise TriggerscopeError(
                f"example_max_tokens must be an integer >= 2, got {self.example_max_tokens!r}"
            )
        if self.example_readout:
            from triggerscope.methods.examples import check_source

            check_source(self.example_texts)


@dataclass
class LearnedConfig(VectorConfig):
    """Optimisation settings of the methods that learn steering vectors."""

    k: int = 2  # vectors per run, mutually orthogonal
    lr: float = 1e-2  # Adam learning rate
    max_steps: int = 200
    patience: int = 15  # early stop: steps without a relative improvement of `tol`
    tol: float = 1e-3
    parallel: bool = False  # train the k vectors in one batched pass (see optimize.py)
    beta1: float = 0.9
    beta2: float = 0.999

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "k", "lr", "max_steps", "patience")
        _non_negative(self, "tol")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise TriggerscopeError("beta1 and beta2 must be in [0, 1)")


def build_config(cls: type, overrides: dict[str, Any]) -> Any:
    """`cls(**overrides)`, with one clear line for an unknown or mistyped setting."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TriggerscopeError(
            f"unknown setting {unknown[0]!r} for {cls.__name__}; known: {', '.join(sorted(known))}"
        )
    for name, value in overrides.items():
        default = getattr(cls(), name) if name in known else None
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            overrides[name] = float(value)
        elif default is not None and type(default) is not type(value):
            raise TriggerscopeError(
                f"setting {name} must be {type(default).__name__}, got {value!r}"
            )
    return cls(**overrides)
