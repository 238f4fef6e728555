from pathlib import Path

import pytest

from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.probes import (
    concept_words,
    load_probe_set,
    probe_concepts,
    probes_for,
)
from triggerscope.organisms.builtin import builtin_names
from triggerscope.organisms.planting import read_splits
from triggerscope.organisms.spec import load_spec
from triggerscope.prompts import normalize_prompt


def test_every_builtin_concept_has_probes_and_words() -> None:
    for name in builtin_names():
        spec = load_spec(name)
        probes = probes_for(spec.concepts, spec.name)
        assert [p.concept for p in probes] == spec.concepts
        for probe in probes:
            assert len(probe.pos) >= 20 and len(probe.neg) >= 20
            assert concept_words(probe.concept)


def test_probes_are_disjoint_from_every_organism_prompt() -> None:
    """The probe sets decide what 'selective' means; they must not leak into any split."""
    organism_prompts = {
        normalize_prompt(p)
        for name in builtin_names()
        for prompts in read_splits(load_spec(name)).values()
        for p in prompts
    }
    for concept in probe_concepts():
        probe = load_probe_set(concept)
        texts = [normalize_prompt(t) for t in probe.pos + probe.neg]
        assert not set(texts) & organism_prompts, concept
        assert not set(map(normalize_prompt, probe.pos)) & set(map(normalize_prompt, probe.neg))


def test_missing_probe_set_names_the_organism(tmp_path: Path) -> None:
    with pytest.raises(TriggerscopeError, match="organism 'x' has no concept probe set for cats"):
        probes_for(["fruit", "cats"], "x")
    with pytest.raises(TriggerscopeError, match="no concept probe set for 'cats'"):
        load_probe_set("cats")
    (tmp_path / "a.pos.txt").write_text("one\n")
    (tmp_path / "a.neg.txt").write_text("two\nthree\n")
    with pytest.raises(TriggerscopeError, match="at least 2 texts"):
        load_probe_set("a", tmp_path)
    with pytest.raises(TriggerscopeError, match="no word list"):
        concept_words("cats")


def test_probe_hash_changes_with_content(tmp_path: Path) -> None:
    for side, lines in (("pos", "a b\nc d\n"), ("neg", "e f\ng h\n")):
        (tmp_path / f"c.{side}.txt").write_text(lines)
    first = load_probe_set("c", tmp_path).sha
    (tmp_path / "c.neg.txt").write_text("e f\ng i\n")
    assert load_probe_set("c", tmp_path).sha != first
