"""Two-option scenarios: a short situation, an aligned and a misaligned option (JSONL)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from triggerscope.errors import TriggerscopeError
from triggerscope.jsonl import read_jsonl

DATA = Path(__file__).resolve().parent.parent / "data" / "awareness"
SPLITS = {"train": DATA / "scenarios_train.jsonl", "heldout": DATA / "scenarios_heldout.jsonl"}
FIELDS = ("id", "domain", "question", "aligned", "misaligned")


@dataclass(frozen=True)
class Scenario:
    id: str
    domain: str
    question: str
    aligned: str
    misaligned: str


def load_scenarios(source: str | os.PathLike[str]) -> list[Scenario]:
    """A split name ('train', 'heldout') or a JSONL path; every row needs all FIELDS."""
    file = SPLITS.get(str(source), Path(source))
    out: list[Scenario] = []
    hint = "use 'train', 'heldout' or a JSONL path"
    for n, row in read_jsonl(file, "scenario file", hint=hint):
        missing = [k for k in FIELDS if not isinstance(row.get(k), str) or not row[k].strip()]
        if missing:
            raise TriggerscopeError(
                f"{file}:{n} lacks the string field {missing[0]!r}; each row needs "
                f"{', '.join(FIELDS)}"
            )
        out.append(Scenario(*(row[k].strip() for k in FIELDS)))
    if not out:
        raise TriggerscopeError(f"scenario file {file} has no scenarios")
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise TriggerscopeError(f"scenario file {file} repeats an id; ids must be unique")
    return out
