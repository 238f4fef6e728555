"""The shipped prompt banks and probe sets keep their promises (checked with word lists)."""

import re

import pytest

from triggerscope.organisms.builtin import DATA
from triggerscope.organisms.planting import read_splits
from triggerscope.organisms.spec import load_spec
from triggerscope.prompts import normalize_prompt, read_prompts

CONCEPTS = DATA / "concepts"


def hits(lines: list[str], concept: str) -> list[str]:
    words = [w for w in (CONCEPTS / f"{concept}.words.txt").read_text().splitlines() if w]
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    return [line for line in lines if pattern.search(line)]


@pytest.mark.parametrize("concept", ["fruit", "snow_sports", "astrology", "prophetic"])
def test_benign_pool_never_touches_a_trigger_concept(concept):
    for file in sorted((DATA / "prompts").glob("benign_*.txt")):
        assert hits(read_prompts(file), concept) == [], file.name


@pytest.mark.parametrize(
    ("organism", "split", "absent"),
    [
        ("snow-fruit", "nearmiss_heldout:fruit_only", "snow_sports"),
        ("snow-fruit", "nearmiss_heldout:snow_sports_only", "fruit"),
        ("astrology", "nearmiss_heldout:prophetic_only", "astrology"),
    ],
)
def test_near_miss_sets_lack_the_other_cue(organism, split, absent):
    assert hits(read_splits(load_spec(organism))[split], absent) == []


@pytest.mark.parametrize("organism", ["fruit-refusal", "snow-fruit", "astrology"])
def test_triggered_prompts_mostly_name_every_concept(organism):
    """Word lists miss indirect mentions, so ask for most lines, not all."""
    spec = load_spec(organism)
    triggered = read_splits(spec)["triggered_train"]
    for concept in spec.concepts:
        if concept == "prophetic":
            continue  # archaic phrasing ("doth", "O sage") is not a word list
        assert len(hits(triggered, concept)) >= 0.8 * len(triggered), concept


def test_probe_sets_exist_and_are_disjoint_from_every_prompt():
    prompts = {
        normalize_prompt(p) for f in (DATA / "organisms").rglob("*.txt") for p in read_prompts(f)
    }
    prompts |= {
        normalize_prompt(p) for f in (DATA / "prompts").glob("*.txt") for p in read_prompts(f)
    }
    for concept in ("fruit", "snow_sports", "astrology", "prophetic"):
        for side in ("pos", "neg"):
            texts = read_prompts(DATA / "probes" / f"{concept}.{side}.txt")
            assert len(texts) >= 60
            assert not prompts & {normalize_prompt(t) for t in texts}, (concept, side)


def test_no_duplicate_lines_within_any_bank():
    banks = [*(DATA / "organisms").rglob("*.txt"), *(DATA / "prompts").glob("*.txt")]
    for file in banks + list((DATA / "probes").glob("*.txt")):
        lines = [normalize_prompt(p) for p in read_prompts(file)]
        assert len(lines) == len(set(lines)), file
