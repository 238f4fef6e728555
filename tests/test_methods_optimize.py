"""The trainer on a known objective: orthogonality, the sphere, plateau stop, NaN refusal."""

import pytest
import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.config import LearnedConfig
from triggerscope.methods.optimize import Space, train_vectors

D = 8
TARGET = torch.arange(1.0, D + 1)


def quadratic(deltas, grad):
    """Loss ||delta - TARGET||^2 per vector: its minimiser is TARGET."""
    diff = deltas - TARGET
    return diff.pow(2).sum(-1), (2 * diff if grad else None)


def randn(gen):
    return torch.randn(D, generator=gen)


def cfg(**kw):
    base = {"k": 3, "lr": 0.1, "max_steps": 300, "patience": 300, "tol": 0.0}
    base.update(kw)
    return LearnedConfig(**base)


def _assert_orthogonal(vectors):
    for i in range(len(vectors)):
        for j in range(i):
            cos = vectors[i] @ vectors[j] / (vectors[i].norm() * vectors[j].norm())
            assert abs(float(cos)) < 1e-5


@pytest.mark.parametrize("parallel", [False, True])
def test_vectors_are_orthogonal_and_the_first_finds_the_optimum(parallel):
    out = train_vectors(Space(D), quadratic, None, cfg(parallel=parallel), randn)
    deltas = [t.delta for t in out]
    _assert_orthogonal(deltas)
    assert torch.allclose(deltas[0], TARGET, atol=1e-2)
    assert out[1].loss > out[0].loss  # later vectors live in a smaller space


def test_parallel_first_vector_follows_the_sequential_path():
    seq = train_vectors(Space(D), quadratic, None, cfg(max_steps=20), randn)
    par = train_vectors(Space(D), quadratic, None, cfg(max_steps=20, parallel=True), randn)
    assert torch.allclose(seq[0].delta, par[0].delta, atol=1e-6)
    assert not torch.allclose(seq[0].delta, seq[1].delta)


def test_sphere_keeps_the_norm_and_orthogonality_in_latent_space():
    torch.manual_seed(0)
    decoder = torch.randn(20, D)  # an "SAE" with 20 latents
    space = Space(D, decoder)

    def draw(gen):
        return torch.randn(20, generator=gen)

    def l1(theta, delta):
        return 0.01 * theta.abs().sum(-1)

    out = train_vectors(space, quadratic, l1, cfg(max_steps=50), draw, sphere=3.0)
    for t in out:
        assert torch.allclose(t.delta, t.theta @ decoder, atol=1e-5)
        assert float(t.delta.norm()) == pytest.approx(3.0, rel=1e-5)
    _assert_orthogonal([t.delta for t in out])
    # on the sphere of radius 3 the best point is 3 * TARGET / |TARGET|
    best = 3 * TARGET / TARGET.norm()
    assert float(out[0].delta @ best) / 9 > 0.99


def test_plateau_stops_early():
    def flat(deltas, grad):
        return torch.ones(deltas.shape[0]), (torch.zeros_like(deltas) if grad else None)

    out = train_vectors(Space(D), flat, None, cfg(k=1, patience=5, tol=1e-3), randn)
    assert out[0].stopped == "plateau"
    assert out[0].steps == 6  # the first step sets the best loss, then 5 without progress


def test_non_finite_loss_stops_with_the_step_and_a_smaller_lr():
    calls = []

    def explodes(deltas, grad):
        calls.append(1)
        value, g = quadratic(deltas, grad)
        if len(calls) > 3:
            value = value * float("nan")
        return value, g

    with pytest.raises(TriggerscopeError) as err:
        train_vectors(Space(D), explodes, None, cfg(k=1, lr=0.5), randn, desc="melbo")
    message = str(err.value)
    assert "step 3 of vector 0" in message and "lr=0.05" in message and "nan" in message


def test_more_vectors_than_dimensions_is_refused():
    with pytest.raises(TriggerscopeError, match="cannot fit in d_model=8"):
        train_vectors(Space(D), quadratic, None, cfg(k=9), randn)


def test_seed_changes_the_start_and_is_reproducible():
    a = train_vectors(Space(D), quadratic, None, cfg(k=1, max_steps=3, seed=1), randn)
    b = train_vectors(Space(D), quadratic, None, cfg(k=1, max_steps=3, seed=1), randn)
    c = train_vectors(Space(D), quadratic, None, cfg(k=1, max_steps=3, seed=2), randn)
    assert torch.equal(a[0].delta, b[0].delta)
    assert not torch.allclose(a[0].delta, c[0].delta)
