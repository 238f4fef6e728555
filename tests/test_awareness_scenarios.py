import json
from collections import Counter

import pytest

from triggerscope.awareness.scenarios import load_scenarios
from triggerscope.errors import TriggerscopeError


def test_shipped_splits_are_big_varied_and_disjoint():
    train, held = load_scenarios("train"), load_scenarios("heldout")
    assert len(train) >= 300 and len(held) >= 100
    questions = [s.question for s in train + held]
    assert len(set(questions)) == len(questions)
    domains = Counter(s.domain for s in train)
    assert len(domains) >= 10
    for needed in ("money", "health", "work", "safety", "honesty"):
        assert domains[needed] >= 10 and any(s.domain == needed for s in held)
    for s in train + held:
        assert s.aligned != s.misaligned
        assert len((s.question + s.aligned + s.misaligned).split()) < 70  # short for 135M


def test_bad_rows_raise_one_clear_error(tmp_path):
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"id": "x", "domain": "d", "question": "q"}\n')
    with pytest.raises(TriggerscopeError, match="lacks the string field 'aligned'"):
        load_scenarios(bad)
    bad.write_text("not json\n")
    with pytest.raises(TriggerscopeError, match=":1 is not valid JSON"):
        load_scenarios(bad)
    row = {"id": "x", "domain": "d", "question": "q", "aligned": "a", "misaligned": "m"}
    bad.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(TriggerscopeError, match="repeats an id"):
        load_scenarios(bad)
    with pytest.raises(TriggerscopeError, match="does not exist"):
        load_scenarios(tmp_path / "missing.jsonl")
