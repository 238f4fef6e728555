"""Action rates with honest error bars, and the interval of a difference of two rates.

Rates use the Wilson score interval (sensible at 0 of 16 and 16 of 16, where the normal
approximation collapses to a zero-width interval). The effect of a hypothesis, rate(carrying) -
rate(control), is a difference of matched pairs (the same benign prompt and template, only the
inserted words differ), so it uses Newcombe's interval for paired proportions (Newcombe 1998b,
Statistics in Medicine 17:2635, method 10): the two Wilson intervals combined with the pairs'
correlation. Two rates without their prompt-by-prompt outcomes get the interval for independent
samples (Newcombe 1998a, method 10), which is wider when matched outcomes agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from triggerscope.stats import wilson


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for a confidence level (1.96 for 0.95)."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


@dataclass(frozen=True)
class Rate:
    """k of n prompts took the action; `hits`, where known, says which (in prompt order)."""

    k: int
    n: int
    hits: tuple[bool, ...] = ()

    @classmethod
    def of(cls, hits: Sequence[bool]) -> Rate:
        return cls(sum(hits), len(hits), tuple(bool(h) for h in hits))

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else math.nan

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson(self.k, self.n, z_value(confidence))

    def to_dict(self, confidence: float = 0.95) -> dict[str, Any]:
        low, high = self.interval(confidence)
        return {"k": self.k, "n": self.n, "rate": self.rate, "ci": [low, high]}


def difference(a: Rate, b: Rate, confidence: float = 0.95) -> tuple[float, float, float]:
    """rate(a) - rate(b) with Newcombe's score interval: (estimate, low, high).

    Paired when both rates carry their outcomes on the same number of prompts (`Rate.of`): the
    i-th outcome of each is then taken to be the same prompt's.
    """
    z = z_value(confidence)
    p1, p2 = a.rate, b.rate
    l1, u1 = wilson(a.k, a.n, z)
    l2, u2 = wilson(b.k, b.n, z)
    d = p1 - p2
    phi = _pair_correlation(a.hits, b.hits) if a.hits and len(a.hits) == len(b.hits) else 0.0
    low = d - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = d + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def _pair_correlation(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Newcombe's (1998b) phi of the paired 2x2 table, its numerator continuity-corrected."""
    both = sum(x and y for x, y in zip(a, b, strict=True))
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    neither = len(a) - both - only_a - only_b
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    if margins == 0:
        return 0.0
    cross = both * neither - only_a * only_b
    corrected = cross - len(a) / 2 if cross > len(a) / 2 else min(cross, 0)
    return corrected / math.sqrt(margins)
