"""Unsupervised MELBO and SAE-MELBO: fixed norm, orthogonal, and better than random vectors."""

import pytest
import torch
from methods_data import make_task

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.engine import tokenize
from triggerscope.methods.melbo import default_target_layer
from triggerscope.methods.prefix import FastEngine
from triggerscope.methods.registry import run_method

pytest_plugins = ("methods_fixtures",)
FAST = {"max_steps": 20, "lr": 0.05, "heldout_samples": 1, "max_new_tokens": 3, "norm": 4.0}


def test_melbo_vectors_keep_the_norm_and_beat_random_ones(toy):
    task = make_task()
    result = run_method("melbo", toy, task, k=2, target_layer=3, **FAST)
    v0, v1 = result.vectors
    for v in result.vectors:
        assert float(v.vector.norm()) == pytest.approx(4.0, rel=1e-5)
    assert abs(float(v0.vector @ v1.vector)) < 1e-4
    assert result.extras["target_layer"] == 3
    ex = tokenize(toy.tokenizer, task.prompts, None)
    engine = FastEngine(toy, ex, 1, target_layer=3)
    rand = torch.randn(8, 32)
    rand = 4.0 * rand / rand.norm(dim=1, keepdim=True)
    random_values, _ = engine.divergence(rand)
    learned, _ = engine.divergence(v0.vector[None])
    assert v0.objective == pytest.approx(float(learned[0]), rel=1e-4)
    assert float(learned[0]) > float(random_values.max())
    assert v0.final_loss == v0.final_loss  # scored with the response CE too (not NaN)


def test_sae_melbo_learns_a_latent_code_on_the_sphere(toy, toy_sae):
    result = run_method("sae-melbo", toy, make_task(), toy_sae, k=1, target_layer=3, **FAST)
    v = result.vectors[0]
    assert v.latent_vector is not None
    assert torch.allclose(v.vector, v.latent_vector @ toy_sae.W_dec.detach(), atol=1e-5)
    assert float(v.vector.norm()) == pytest.approx(4.0, rel=1e-5)
    assert v.top_latents[0].index == int(v.latent_vector.argmax())


def test_default_target_layer_is_two_thirds_of_the_way_down():
    assert default_target_layer(30, 8) == 22
    assert default_target_layer(4, 1) == 2


def test_target_at_the_steering_layer_is_refused(toy):
    with pytest.raises(TriggerscopeError, match="must come after the steering layer"):
        run_method("melbo", toy, make_task(), target_layer=1, **FAST)


def test_sae_melbo_without_an_sae_is_refused(toy):
    with pytest.raises(TriggerscopeError, match="needs an SAE"):
        run_method("sae-melbo", toy, make_task())


def test_default_radius_is_a_fraction_of_the_activation_norm(toy):
    from triggerscope.methods.config import NORM_FRACTION

    kw = {**FAST, "norm": None, "max_steps": 2}
    result = run_method("melbo", toy, make_task(), k=1, target_layer=3, **kw)
    ex = tokenize(toy.tokenizer, make_task().prompts, None)
    expected = NORM_FRACTION * FastEngine(toy, ex, 1, target_layer=3).mean_user_norm()
    assert result.extras["norm"] == pytest.approx(expected, rel=1e-5)
    assert float(result.vectors[0].vector.norm()) == pytest.approx(expected, rel=1e-5)
