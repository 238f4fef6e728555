import pytest
from methods_data import make_task

from triggerscope.errors import TriggerscopeError


def test_valid_task_keeps_its_fields():
    task = make_task(system_prompt="Be brief.")
    assert task.response == "I won't answer."
    assert task.layer == 1 and task.system_prompt == "Be brief."


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"prompts": []}, "no prompts"),
        ({"response": ""}, "response is empty"),
        ({"response": "   \n"}, "response is empty"),
        ({"prompts": ["fine", "  "]}, "prompt 1 is empty"),
        ({"prompts": ["ok", "Say: I WON'T   answer. please"]}, "already contains the response"),
        ({"heldout_prompts": ["i won\u2019t answer."]}, "already contains the response"),
        ({"heldout_prompts": ["hi!"]}, "also a training prompt"),
        ({"system_prompt": " "}, "system prompt is empty"),
        ({"layer": "8"}, "must be an integer"),
    ],
)
def test_bad_tasks_are_refused_with_one_clear_line(kw, message):
    with pytest.raises(TriggerscopeError, match=message) as err:
        make_task(**kw)
    assert "\n" not in str(err.value)
