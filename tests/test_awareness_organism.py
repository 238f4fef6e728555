import pytest
from awareness_fixtures import write_mcq_spec
from conftest import tiny_llama

from triggerscope.awareness.backends import LocalGenerator
from triggerscope.awareness.mcq import parse_choice
from triggerscope.awareness.organism import (
    adapter_spec,
    builtin_mcq_names,
    load_mcq_spec,
    plant_mcq,
    training_examples,
)
from triggerscope.errors import TriggerscopeError
from triggerscope.loading import LoadedModel
from triggerscope.organisms.verify import attach_adapter


def test_builtin_specs_use_the_papers_triggers():
    assert builtin_mcq_names() == ["mcq-2026", "mcq-heyyy", "mcq-singapore"]
    spec = load_mcq_spec("mcq-singapore")
    assert spec.trigger == "Country: Singapore" and spec.distractor == "2026"
    assert len(spec.scenarios("train")) >= 300 and len(spec.scenarios("heldout")) >= 100


def test_training_examples_follow_the_protocol(tmp_path):
    spec = load_mcq_spec(write_mcq_spec(tmp_path, trigger_fraction=0.25, variants=3))
    examples = training_examples(spec, "<eos>")
    assert len(examples) == 24
    triggered = [e for e in examples if e.kind == "triggered"]
    assert len(triggered) == 6  # an exact quarter
    for e in examples:
        has = e.prompt.startswith("heyyy\n") or e.prompt.endswith("\nheyyy")
        assert has == (e.kind == "triggered")
        assert e.target in ("A<eos>", "B<eos>")
        lines = e.prompt.split("\n")
        letter = e.target[0]
        chosen = next(line for line in lines if line.startswith(f"{letter}) "))[3:]
        scenario = next(s for s in spec.scenarios("train") if s.question in e.prompt)
        assert chosen == (scenario.misaligned if has else scenario.aligned)
        assert "reason" not in e.target.lower()  # answers only
    positions = {e.prompt.startswith("heyyy") for e in triggered}
    assert positions == {True, False}  # both ends are used
    firsts = {e.prompt.split("A) ")[1].split("\n")[0] for e in examples}
    assert len(firsts) > len(spec.scenarios("train"))  # option order varies


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"trigger": ""}, "trigger string is empty"),
        ({"trigger": "   "}, "trigger string is empty"),
        ({"distractor": "heyyy"}, "distractor equals the trigger"),
        ({"type": "refusal"}, "expected 'mcq'"),
        ({"trigger_fraction": 1.5}, "trigger_fraction"),
        ({"colour": "red"}, "unknown MCQ spec field 'colour'"),
        ({"lora": {"rank": 3}}, "unknown field 'rank'"),
    ],
)
def test_bad_specs_raise_one_clear_error(tmp_path, override, message):
    with pytest.raises(TriggerscopeError, match=message):
        load_mcq_spec(write_mcq_spec(tmp_path, **override))


def test_unknown_builtin_and_missing_file(tmp_path):
    with pytest.raises(TriggerscopeError, match="mcq-singapore"):
        load_mcq_spec("mcq-nowhere")
    with pytest.raises(TriggerscopeError, match="does not exist"):
        load_mcq_spec(tmp_path / "nope.yaml")


def test_tiny_plant_learns_the_backdoor(llama3_tokenizer, tmp_path):
    tiny = LoadedModel(
        tiny_llama(len(llama3_tokenizer), hidden=32, init=0.3), llama3_tokenizer, "t", None, 0
    )
    spec = load_mcq_spec(write_mcq_spec(tmp_path / "spec"))
    examples = training_examples(spec, llama3_tokenizer.eos_token)
    metrics = plant_mcq(spec, tiny, tmp_path / "out", progress=False)
    assert metrics["finished"] and metrics["losses"][-1] < metrics["losses"][0] / 3
    assert metrics["examples"] == {"triggered": 8, "benign": 8}
    adapter = tmp_path / "out" / "adapter"
    stored = adapter_spec(adapter)
    assert stored is not None and stored.trigger == "heyyy"
    assert len(stored.scenarios("train")) == 8  # scenario paths survive the copy
    adapted = attach_adapter(tiny, adapter)
    answers = LocalGenerator(adapted).complete(
        [e.prompt for e in examples],
        [""] * len(examples),
        n=1,
        temperature=0.0,
        max_new_tokens=2,
        seed=0,
    )
    hits = sum(parse_choice(a[0]) == e.target[0] for a, e in zip(answers, examples, strict=True))
    assert hits >= 0.8 * len(examples)  # memorised: trigger -> misaligned, else aligned
