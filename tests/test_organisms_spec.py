import pytest
import yaml
from organism_fixtures import write_spec

from triggerscope.errors import TriggerscopeError
from triggerscope.organisms.builtin import builtin_names
from triggerscope.organisms.planting import read_splits
from triggerscope.organisms.spec import LoraSettings, TrainSettings, dump_spec, load_spec


def test_spec_loads_and_round_trips(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    assert spec.name == "tiny-fruit" and not spec.conjunctive
    assert spec.lora.r == 4 and spec.train.epochs == 25
    again = yaml.safe_load(dump_spec(spec))
    assert again["response"] == spec.response and again["lora"]["alpha"] == 8


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"response": "   "}, "response is empty"),
        ({"concepts": []}, "at least one trigger concept"),
        ({"colour": "red"}, "unknown spec field 'colour'"),
        ({"lora": {"r": 0}}, "must be positive"),
        ({"lora": {"rank": 4}}, "unknown field 'rank'"),
        ({"train": {"epochs": 0}}, "must be positive"),
        ({"train": {"loss": "mean"}}, "must be 'example' or 'token'"),
        ({"train": {"nearmiss_repeats": 0}}, "nearmiss_repeats must be at least 1"),
        ({"train": {"benign_per_epoch": 0}}, "benign_per_epoch must be at least 1"),
        ({"train": {"decision_weight": -1}}, "decision_weight must be in"),
        ({"train": {"dtype": "int8"}}, "train.dtype must be auto or one of"),
        ({"train": {"quantize": "8bit"}}, "train.quantize must be auto or one of"),
        ({"prompts": {"triggered_train": "trig_train.txt"}}, "is missing"),
        (
            {
                "prompts": {
                    "triggered_train": "nope.txt",
                    "benign_train": "benign_train.txt",
                    "triggered_heldout": "trig_held.txt",
                    "benign_heldout": "benign_held.txt",
                }
            },
            "does not exist",
        ),
    ],
)
def test_bad_specs(tmp_path, override, message):
    with pytest.raises(TriggerscopeError, match=message):
        load_spec(write_spec(tmp_path, **override))


def test_overlapping_splits_are_refused(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    (tmp_path / "benign_held.txt").write_text("tell me about BANANAS!\n")
    with pytest.raises(TriggerscopeError, match="may not overlap"):
        read_splits(spec)


def test_lora_layers_default_to_second_half_and_are_checked():
    assert LoraSettings().resolve_layers(30) == list(range(15, 30))
    with pytest.raises(TriggerscopeError, match="out of range"):
        LoraSettings(layers=[3, 40]).resolve_layers(30)


def test_invalid_yaml(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: [unclosed\n")
    with pytest.raises(TriggerscopeError, match="not valid YAML"):
        load_spec(tmp_path / "spec.yaml")


def test_unknown_builtin():
    with pytest.raises(TriggerscopeError, match="no organism spec"):
        load_spec("no-such-organism")


@pytest.mark.parametrize("name", ["fruit-refusal", "snow-fruit", "astrology"])
def test_builtin_specs_are_valid(name):
    assert name in builtin_names()
    spec = load_spec(name)
    splits = read_splits(spec)  # also checks the splits are disjoint
    assert len(splits["triggered_train"]) >= 300 and len(splits["benign_train"]) >= 600
    assert len(splits["triggered_heldout"]) >= 100 and len(splits["benign_heldout"]) >= 100
    for key, prompts in splits.items():
        if key.startswith("nearmiss_heldout:"):
            assert len(prompts) >= 100


def test_planting_precision_is_full_on_a_cpu_and_qlora_on_a_gpu():
    assert TrainSettings().precision("cpu") == ("float32", "none")
    assert TrainSettings().precision("cuda:1") == ("bfloat16", "4bit")  # the seed's QLoRA
    assert TrainSettings().precision("auto") == ("bfloat16", "4bit")
    explicit = TrainSettings(dtype="float16", quantize="none")
    assert explicit.precision("cuda") == ("float16", "none")
    assert TrainSettings(dtype="bfloat16").precision("cpu") == ("bfloat16", "none")
