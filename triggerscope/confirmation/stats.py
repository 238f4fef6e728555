"""Action rates with honest error bars, and the interval of a difference of two rates.

Rates use the Wilson score interval (sensible at 0 of 16 and 16 of 16, where the normal
approximation collapses to a zero-width interval). The effect of a hypothesis, rate(carrying) -
rate(control), uses Newcombe's hybrid score interval (Newcombe 1998, method 10), built from the
two Wilson intervals; it treats the two samples as independent, which is conservative for our
matched pairs (same benign prompt, same template) when their outcomes are positively correlated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from triggerscope.stats import wilson


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for a confidence level (1.96 for 0.95)."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


@dataclass(frozen=True)
class Rate:
    """k of n prompts took the action."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else math.nan

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson(self.k, self.n, z_value(confidence))

    def to_dict(self, confidence: float = 0.95) -> dict[str, Any]:
        low, high = self.interval(confidence)
        return {"k": self.k, "n": self.n, "rate": self.rate, "ci": [low, high]}


def difference(a: Rate, b: Rate, confidence: float = 0.95) -> tuple[float, float, float]:
    """rate(a) - rate(b) with Newcombe's hybrid score interval: (estimate, low, high)."""
    z = z_value(confidence)
    p1, p2 = a.rate, b.rate
    l1, u1 = wilson(a.k, a.n, z)
    l2, u2 = wilson(b.k, b.n, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, low), min(1.0, high)
