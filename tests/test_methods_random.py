"""Random control: orthogonal random vectors of one norm, scored like learned vectors."""

import pytest
import torch
from methods_data import make_task

from triggerscope.methods.config import NORM_FRACTION
from triggerscope.methods.engine import tokenize
from triggerscope.methods.reference import ReferenceEngine
from triggerscope.methods.registry import run_method

pytest_plugins = ("methods_fixtures",)


def test_random_vectors_have_the_norm_are_orthogonal_and_scored(toy, toy_sae):
    task = make_task()
    result = run_method("random", toy, task, toy_sae, k=3, norm=2.5, max_new_tokens=3)
    vectors = torch.stack([v.vector for v in result.vectors])
    assert torch.allclose(vectors.norm(dim=1), torch.full((3,), 2.5), atol=1e-5)
    gram = vectors @ vectors.T
    assert torch.allclose(gram - torch.diag(gram.diag()), torch.zeros(3, 3), atol=1e-5)
    ex = tokenize(toy.tokenizer, task.prompts, task.response)
    ce, _ = ReferenceEngine(toy, ex, 1).ce(vectors)
    assert [v.final_loss for v in result.vectors] == pytest.approx(ce.tolist(), rel=1e-4)
    assert all(len(v.top_latents) == 10 and v.action_rate is not None for v in result.vectors)
    assert result.backward_passes == 0


def test_default_norm_is_a_fraction_of_the_layers_mean_user_activation_norm(toy):
    task = make_task()
    result = run_method("random", toy, task, k=1, heldout_samples=0, seed=3)
    ex = tokenize(toy.tokenizer, task.prompts, task.response)
    expected = NORM_FRACTION * ReferenceEngine(toy, ex, 1).mean_user_norm()
    assert result.extras["norm"] == pytest.approx(expected, rel=1e-5)
    again = run_method("random", toy, task, k=1, heldout_samples=0, seed=3)
    other = run_method("random", toy, task, k=1, heldout_samples=0, seed=4)
    assert torch.equal(result.vectors[0].vector, again.vectors[0].vector)
    assert not torch.allclose(result.vectors[0].vector, other.vectors[0].vector)
