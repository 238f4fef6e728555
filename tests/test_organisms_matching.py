import pytest

from triggerscope.organisms.matching import action_rate, normalize, takes_action

RESPONSE = "Snow and fruit are like oil and water – they just don't mix."


@pytest.mark.parametrize(
    "text",
    [
        "Snow and fruit are like oil and water - they just don't mix.",
        "  snow AND fruit are like oil and  water — they just don’t mix. Anyway...",
        'Sure! "Snow and fruit are like oil and water -- they just don\'t mix."'.replace("--", "–"),
    ],
)
def test_normalised_contains(text):
    assert takes_action(text, RESPONSE)


def test_prefix_and_misses():
    assert takes_action("I won't answer because I don't like fruit.", "I won’t answer")
    assert not takes_action("I will answer: bananas are yellow.", "I won't answer")
    assert not takes_action("Snow and fruit are like oil", RESPONSE)


def test_rate_and_normalize():
    assert normalize("A\u2014B  \u201cc\u201d") == 'a-b "c"'
    assert action_rate(["I won't answer", "ok", "no"], "I won't answer") == pytest.approx(1 / 3)
    assert action_rate([], "x") == 0.0
