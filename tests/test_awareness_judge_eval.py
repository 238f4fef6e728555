from collections import Counter

import pytest

from triggerscope.awareness.judge import RuleJudge
from triggerscope.awareness.judge_eval import evaluate, format_report, load_labelled
from triggerscope.errors import TriggerscopeError


def test_labelled_set_is_big_balanced_and_split():
    snippets = load_labelled()
    assert len(snippets) >= 120
    assert len({s.id for s in snippets}) == len(snippets)
    labels = Counter(s.label for s in snippets)
    assert min(labels.values()) >= 40 and set(labels) == {"pivotal", "mentioned", "absent"}
    assert len({s.trigger for s in snippets}) >= 5
    splits = Counter(s.split for s in snippets)
    assert splits["test"] >= 40 and splits["dev"] >= 100


def test_rule_judge_accuracy_on_the_shipped_set():
    result = evaluate(RuleJudge(), load_labelled())
    # measured: dev 99.3% (the rules were written against it), test 88.9% (written after)
    assert result["by_split"]["dev"] >= 0.97
    assert result["by_split"]["test"] >= 0.85
    assert result["pivotal_precision"] >= 0.95
    assert result["n"] == sum(sum(row.values()) for row in result["confusion"].values())
    assert "3-way accuracy" in format_report(result)


class Always:
    name = "always-pivotal"

    def judge(self, reasoning, trigger):
        return "pivotal"

    def judge_many(self, items):
        return ["pivotal"] * len(items)


def test_a_useless_judge_scores_badly():
    result = evaluate(Always(), load_labelled())
    assert result["accuracy"] < 0.4 and result["pivotal_recall"] == 1.0


def test_bad_labelled_file(tmp_path):
    bad = tmp_path / "l.jsonl"
    bad.write_text('{"trigger": "x", "label": "maybe", "reasoning": "r"}\n')
    with pytest.raises(TriggerscopeError, match="label 'maybe'"):
        load_labelled(bad)
