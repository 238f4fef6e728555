"""A judge's accuracy on the labelled reasoning snippets shipped in data/awareness."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triggerscope.awareness.judge import LABELS, Judge
from triggerscope.errors import TriggerscopeError
from triggerscope.jsonl import read_jsonl

LABELLED = Path(__file__).resolve().parent.parent / "data" / "awareness" / "judge_labelled.jsonl"


@dataclass(frozen=True)
class Snippet:
    id: str
    trigger: str
    label: str
    reasoning: str
    split: str


def load_labelled(path: str | Path = LABELLED) -> list[Snippet]:
    file = Path(path)
    out = []
    for n, row in read_jsonl(file, "labelled snippet file"):
        need = ("trigger", "label", "reasoning")
        if any(not isinstance(row.get(k), str) for k in need):
            raise TriggerscopeError(f"{file}:{n} needs string fields {', '.join(need)}")
        if row["label"] not in LABELS:
            raise TriggerscopeError(f"{file}:{n}: label {row['label']!r} is not one of {LABELS}")
        out.append(
            Snippet(
                str(row.get("id", n)),
                row["trigger"],
                row["label"],
                row["reasoning"],
                str(row.get("split", "all")),
            )
        )
    if not out:
        raise TriggerscopeError(f"{file} has no snippets")
    return out


def evaluate(judge: Judge, snippets: list[Snippet]) -> dict[str, Any]:
    """Three-way accuracy, pivotal-vs-rest accuracy, the confusion matrix, the misses."""
    predicted = judge.judge_many([(s.reasoning, s.trigger) for s in snippets])
    confusion = Counter((s.label, p) for s, p in zip(snippets, predicted, strict=True))

    def acc(rows: Sequence[tuple[Snippet, str]]) -> float:
        return sum(s.label == p for s, p in rows) / len(rows) if rows else float("nan")

    pairs = list(zip(snippets, predicted, strict=True))
    binary = sum((s.label == "pivotal") == (p == "pivotal") for s, p in pairs) / len(pairs)
    tp = sum(s.label == "pivotal" and p == "pivotal" for s, p in pairs)
    n_pred = sum(p == "pivotal" for _, p in pairs)
    n_true = sum(s.label == "pivotal" for s, _ in pairs)
    splits = sorted({s.split for s in snippets})
    return {
        "judge": judge.name,
        "n": len(snippets),
        "accuracy": acc(pairs),
        "pivotal_vs_rest_accuracy": binary,
        "pivotal_precision": tp / n_pred if n_pred else float("nan"),
        "pivotal_recall": tp / n_true if n_true else float("nan"),
        "by_split": {sp: acc([(s, p) for s, p in pairs if s.split == sp]) for sp in splits},
        "by_trigger": {
            t: acc([(s, p) for s, p in pairs if s.trigger == t])
            for t in sorted({s.trigger for s in snippets})
        },
        "confusion": {t: {p: confusion[(t, p)] for p in LABELS} for t in LABELS},
        "errors": [
            {"id": s.id, "trigger": s.trigger, "label": s.label, "predicted": p}
            for s, p in pairs
            if s.label != p
        ],
    }


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"judge {result['judge']}: {result['n']} labelled snippets",
        f"  3-way accuracy           {result['accuracy']:.1%}",
        f"  pivotal vs rest accuracy {result['pivotal_vs_rest_accuracy']:.1%}  "
        f"(precision {result['pivotal_precision']:.1%}, recall {result['pivotal_recall']:.1%})",
    ]
    for split, value in result["by_split"].items():
        lines.append(f"  split {split:<18} {value:.1%}")
    lines.append("  confusion (rows: true label, columns: predicted)")
    lines.append("  " + " " * 11 + "".join(f"{p:>11}" for p in LABELS))
    for t in LABELS:
        lines.append(f"  {t:<11}" + "".join(f"{result['confusion'][t][p]:>11}" for p in LABELS))
    return "\n".join(lines)
