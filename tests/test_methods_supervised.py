"""Supervised MELBO and supervised SAE-MELBO on a tiny model."""

import pytest
import torch
from methods_data import make_task

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.registry import run_method

pytest_plugins = ("methods_fixtures",)
FAST = {"max_steps": 25, "lr": 0.05, "heldout_samples": 1, "max_new_tokens": 3}


def _cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def test_supervised_melbo_lowers_the_response_loss_with_orthogonal_vectors(toy):
    result = run_method("supervised-melbo", toy, make_task(), k=2, **FAST)
    assert result.baseline_loss is not None
    v0, v1 = result.vectors
    assert v0.final_loss < result.baseline_loss - 0.05
    assert abs(_cos(v0.vector, v1.vector)) < 1e-5
    # the objective is CE + lam2 ||delta||^2 of the returned vector
    lam2 = result.config["lam2"]
    expected = v0.final_loss + lam2 * float(v0.vector.norm() ** 2)
    assert v0.objective == pytest.approx(expected, rel=1e-4)
    assert v0.steps == 25 and v0.stopped == "max_steps"
    assert result.forward_passes > 50 and result.backward_passes >= 50


def test_fast_and_reference_engines_learn_the_same_vector(toy):
    fast = run_method("supervised-melbo", toy, make_task(), k=1, **FAST)
    ref = run_method("supervised-melbo", toy, make_task(), k=1, engine="reference", **FAST)
    assert _cos(fast.vectors[0].vector, ref.vectors[0].vector) > 0.999
    assert fast.vectors[0].final_loss == pytest.approx(ref.vectors[0].final_loss, rel=1e-3)


def test_supervised_sae_melbo_builds_the_vector_from_latents(toy, toy_sae):
    result = run_method("supervised-sae-melbo", toy, make_task(), toy_sae, k=2, lam1=1e-3, **FAST)
    for v in result.vectors:
        assert v.latent_vector is not None and v.latent_vector.shape == (64,)
        assert torch.allclose(v.vector, v.latent_vector @ toy_sae.W_dec.detach(), atol=1e-5)
        top = v.top_latents[0]
        assert top.index == int(v.latent_vector.argmax()) and top.score == pytest.approx(
            float(v.latent_vector.max())
        )
    assert result.vectors[0].final_loss < result.baseline_loss
    assert abs(_cos(result.vectors[0].vector, result.vectors[1].vector)) < 1e-5
    assert result.latent_ranking == result.vectors[0].top_latents
    assert result.latent_scores is not None and result.latent_scores.shape == (2, 64)


def test_a_larger_l1_weight_gives_a_sparser_code(toy, toy_sae):
    def l1(lam1):
        r = run_method("supervised-sae-melbo", toy, make_task(), toy_sae, k=1, lam1=lam1, **FAST)
        return float(r.vectors[0].latent_vector.abs().sum())

    assert l1(0.5) < 0.5 * l1(0.0)


def test_exploding_learning_rate_stops_with_a_clear_error(toy):
    with pytest.raises(TriggerscopeError, match=r"at step \d+ of vector 0; lower the learning"):
        run_method("supervised-melbo", toy, make_task(), k=1, max_steps=30, lr=1e30, init_norm=1e30)
