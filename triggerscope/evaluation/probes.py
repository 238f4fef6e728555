"""Concept probe sets: texts about a trigger concept and texts not about it.

They define, independently of any method, which SAE latents *mean* the concept (see
`selectivity`). They ship in `data/probes/<concept>.pos.txt` / `.neg.txt`, one text per line,
and must be disjoint from every organism's training and evaluation prompts (tested).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from triggerscope.errors import TriggerscopeError
from triggerscope.prompts import read_prompts

DATA = Path(__file__).resolve().parent.parent / "data"
PROBES = DATA / "probes"
CONCEPTS = DATA / "concepts"


@dataclass(frozen=True)
class ProbeSet:
    concept: str
    pos: list[str]
    neg: list[str]

    @property
    def sha(self) -> str:
        """Content hash: a cached selectivity is stale as soon as a probe text changes."""
        data = json.dumps([self.concept, self.pos, self.neg], ensure_ascii=False)
        return hashlib.sha256(data.encode()).hexdigest()


def probe_concepts(root: Path = PROBES) -> list[str]:
    """Concepts with both a .pos.txt and a .neg.txt file."""
    pos = {p.name[: -len(".pos.txt")] for p in root.glob("*.pos.txt")}
    return sorted(c for c in pos if (root / f"{c}.neg.txt").is_file())


def load_probe_set(concept: str, root: Path = PROBES) -> ProbeSet:
    pos_file, neg_file = root / f"{concept}.pos.txt", root / f"{concept}.neg.txt"
    if not pos_file.is_file() or not neg_file.is_file():
        known = ", ".join(probe_concepts(root)) or "(none)"
        raise TriggerscopeError(
            f"no concept probe set for {concept!r}: write {pos_file.name} (texts about it) and "
            f"{neg_file.name} (texts not about it) in {root}; known concepts: {known}"
        )
    probe = ProbeSet(concept, read_prompts(pos_file), read_prompts(neg_file))
    if len(probe.pos) < 2 or len(probe.neg) < 2:
        raise TriggerscopeError(
            f"the probe set for {concept!r} needs at least 2 texts on each side "
            f"(has {len(probe.pos)} / {len(probe.neg)})"
        )
    return probe


def probes_for(concepts: list[str], organism: str, root: Path = PROBES) -> list[ProbeSet]:
    """One probe set per trigger concept of an organism, or one clear error naming it."""
    missing = [
        c
        for c in concepts
        if not (root / f"{c}.pos.txt").is_file() or not (root / f"{c}.neg.txt").is_file()
    ]
    if missing:
        known = ", ".join(probe_concepts(root)) or "(none)"
        raise TriggerscopeError(
            f"organism {organism!r} has no concept probe set for {', '.join(missing)}: "
            f"add {missing[0]}.pos.txt and {missing[0]}.neg.txt to {root} "
            f"(concepts with probes: {known})"
        )
    return [load_probe_set(c, root) for c in concepts]


def concept_words(concept: str, root: Path = CONCEPTS) -> list[str]:
    """Words that name the concept, for scoring the token baseline."""
    file = root / f"{concept}.words.txt"
    if not file.is_file():
        raise TriggerscopeError(
            f"no word list for concept {concept!r}: write {file} (one word or phrase per line)"
        )
    return [w.lower() for w in read_prompts(file)]
