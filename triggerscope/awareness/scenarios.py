"""Two-option scenarios: a short situation, an aligned and a misaligned option (JSONL)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from triggerscope.errors import TriggerscopeError

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
    if not file.is_file():
        raise TriggerscopeError(
            f"scenario file {file} does not exist; use 'train', 'heldout' or a JSONL path"
        )
    out: list[Scenario] = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TriggerscopeError(f"{file}:{n} is not valid JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise TriggerscopeError(f"{file}:{n} is not a JSON object")
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
