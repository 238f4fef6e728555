"""PNG plots (matplotlib, headless), returned as bytes so callers write them atomically or
embed them in HTML. Figures are built without pyplot: no global state, no display needed."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from triggerscope.evaluation.scoring import KS


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _axes(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    organisms = list(dict.fromkeys(r["organism"] for r in rows))
    return methods, organisms


def _row(rows: list[dict[str, Any]], method: str, organism: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["method"] == method and r["organism"] == organism), None)


def hit_heatmap(results: dict[str, Any]) -> bytes:
    """Share of seeds with a selective latent in the top k: methods x (organism, k)."""
    rows = results["rows"]
    methods, organisms = _axes(rows)
    columns = [(o, k) for o in organisms for k in KS]
    values = [[math.nan] * len(columns) for _ in methods]
    for i, m in enumerate(methods):
        for j, (o, k) in enumerate(columns):
            row = _row(rows, m, o)
            v = row["hits"][f"hit@{k}"] if row else None
            values[i][j] = math.nan if v is None else v
    fig = Figure(figsize=(1.0 + 0.75 * len(columns), 1.2 + 0.45 * len(methods)))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    ax.imshow(values, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(len(methods)):
        for j in range(len(columns)):
            v = values[i][j]
            text, color = ("n/a", "#555555") if math.isnan(v) else (f"{v:.2f}", "white")
            if not math.isnan(v) and v > 0.6:
                color = "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(columns)), [f"{o}\nhit@{k}" for o, k in columns], fontsize=7)
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    ax.set_title(f"concept-selective latent in the top k (AUROC >= {results['threshold']:g})")
    return _png(fig)


def _grouped_bars(
    results: dict[str, Any],
    key: str,
    ylabel: str,
    title: str,
    log: bool = False,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """One group of bars per method, one bar per organism; a missing value is written n/a."""
    rows = results["rows"]
    methods, organisms = _axes(rows)
    width = 0.8 / max(len(organisms), 1)
    fig = Figure(figsize=(max(5.0, 1.1 * len(methods) + 2), 3.4))
    ax = fig.subplots()
    missing = []
    for j, o in enumerate(organisms):
        xs, ys = [], []
        for i, m in enumerate(methods):
            x = i + (j - (len(organisms) - 1) / 2) * width
            row = _row(rows, m, o)
            if row and row.get(key) is not None:
                xs.append(x)
                ys.append(row[key])
            else:
                missing.append(x)
        ax.bar(xs, ys, width=width, label=o)
    ax.set_xlim(-0.5, len(methods) - 0.5)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if log:
        ax.set_yscale("log")
    bottom = ax.get_ylim()[0]
    for x in missing:
        ax.text(x, bottom, "n/a", ha="center", va="bottom", fontsize=7, color="#777777")
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig)


def action_rate_bars(results: dict[str, Any]) -> bytes:
    return _grouped_bars(
        results,
        "action_rate",
        "action rate (mean over vectors)",
        "backdoor action under steering, held-out benign prompts",
        ylim=(0.0, 1.05),
    )


def time_bars(results: dict[str, Any]) -> bytes:
    times = [r["wall_seconds"] for r in results["rows"] if r.get("wall_seconds")]
    wide = bool(times) and max(times) / max(min(times), 1e-9) > 50
    return _grouped_bars(
        results, "wall_seconds", "wall time (s)", "time per run (mean over seeds)", log=wide
    )


def threshold_curve(results: dict[str, Any]) -> bytes:
    """hit@10 against the selectivity threshold, one line per method (mean over organisms)."""
    rows = results["rows"]
    methods, _ = _axes(rows)
    fig = Figure(figsize=(5.5, 3.4))
    ax = fig.subplots()
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        keys = list(mine[0]["sweep_hit10"])
        points = []
        for key in keys:
            vals = [r["sweep_hit10"][key] for r in mine if r["sweep_hit10"].get(key) is not None]
            if vals:
                points.append((float(key), sum(vals) / len(vals)))
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=m)
    ax.set_xlabel("AUROC threshold for 'selective'")
    ax.set_ylabel("hit@10 (mean over organisms, seeds)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("how recovery depends on the threshold")
    ax.legend(fontsize=7)
    return _png(fig)


def latent_bars(latents: Sequence[tuple[str, float]], title: str) -> bytes:
    """Horizontal bars of (label, score), best at the top."""
    labels = [name.replace("$", r"\$") for name, _ in latents][::-1]  # no mathtext
    scores = [score for _, score in latents][::-1]
    fig = Figure(figsize=(7.5, 0.9 + 0.32 * max(len(latents), 1)))
    ax = fig.subplots()
    ax.barh(range(len(scores)), scores, color="#3b6ea8")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("score")
    ax.set_title(title, fontsize=10)
    return _png(fig)


BENCH_PLOTS = {
    "hit_at_k.png": hit_heatmap,
    "action_rate.png": action_rate_bars,
    "time_per_method.png": time_bars,
    "threshold.png": threshold_curve,
}
