"""`run_method`: names, validated settings, SAE checks, counted passes, saved results."""

import json

import pytest
import torch
from methods_data import make_task

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.registry import METHODS, method_names, run_method
from triggerscope.sae.model import SAE, SAEConfig
from triggerscope.safetensors_io import load_state_dict

pytest_plugins = ("methods_fixtures",)


def test_all_nine_methods_are_registered():
    assert method_names() == [
        "sae-attribution",
        "melbo",
        "sae-melbo",
        "supervised-melbo",
        "supervised-sae-melbo",
        "internal-melbo",
        "internal-sae-melbo",
        "token",
        "random",
    ]
    assert {n for n, s in METHODS.items() if s.needs_sae} == {
        "sae-attribution",
        "sae-melbo",
        "supervised-sae-melbo",
        "internal-sae-melbo",
    }


@pytest.mark.parametrize(
    ("name", "kw", "message"),
    [
        ("nope", {}, "unknown method 'nope'; choose one of sae-attribution"),
        ("melbo", {"lamda": 1}, "unknown setting 'lamda' for MelboConfig; known: "),
        ("melbo", {"lr": "fast"}, "setting lr must be float"),
        ("melbo", {"lr": -1.0}, "lr must be a positive number"),
        ("melbo", {"engine": "turbo"}, "engine must be one of"),
        ("melbo", {"targets": "everything"}, "targets must be one of"),
        ("supervised-melbo", {"k": 33}, "k=33 orthogonal vectors cannot fit in d_model=32"),
        ("random", {"k": 0}, "k must be a positive number"),
        ("sae-attribution", {}, "needs an SAE trained at layer 1; pass --sae"),
    ],
)
def test_bad_calls_fail_before_any_compute(toy, name, kw, message):
    with pytest.raises(TriggerscopeError, match=message.replace("(", r"\(")):
        run_method(name, toy, make_task(), **kw)


def test_an_sae_for_another_layer_or_model_is_refused(toy):
    other_layer = SAE(SAEConfig(d_in=32, d_sae=64, k=4, layer=2))
    with pytest.raises(TriggerscopeError, match="trained on layer 2, not layer 1"):
        run_method("sae-attribution", toy, make_task(), other_layer)
    other_model = SAE(SAEConfig(d_in=48, d_sae=64, k=4, layer=1))
    with pytest.raises(TriggerscopeError, match="size 48 but the model's d_model is 32"):
        run_method("sae-attribution", toy, make_task(), other_model)


def test_result_records_config_passes_and_saves_a_run_folder(toy, toy_sae, tmp_path):
    result = run_method(
        "supervised-sae-melbo",
        toy,
        make_task(),
        toy_sae,
        k=2,
        max_steps=3,
        heldout_samples=1,
        max_new_tokens=3,
    )
    assert result.config["method"] == "supervised-sae-melbo"
    assert result.config["max_steps"] == 3 and result.config["k"] == 2
    assert result.config["sae"]["d_sae"] == 64
    assert result.wall_seconds > 0 and result.forward_passes > 0 and result.backward_passes == 6
    result.save(tmp_path)
    tensors = load_state_dict(tmp_path / "vectors.safetensors")
    assert set(tensors) == {"vector_0", "vector_1", "latent_vector_0", "latent_vector_1"}
    assert torch.equal(tensors["vector_0"], result.vectors[0].vector)
    scores = load_state_dict(tmp_path / "latent_scores.safetensors")["scores"]
    assert scores.shape == (2, 64)
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["method"] == "supervised-sae-melbo" and len(summary["vectors"]) == 2
    assert summary["vectors"][0]["final_loss"] == pytest.approx(result.vectors[0].final_loss)
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [r["vector"] for r in rows] == [0, 1]
    assert {"prompt", "unsteered", "steered", "action"} <= set(rows[0])


def test_seed_override_is_accepted_by_every_method(toy, toy_sae):
    # the benchmark passes a seed to every method, deterministic ones included
    result = run_method("sae-attribution", toy, make_task(), toy_sae, seed=7)
    assert result.config["seed"] == 7
