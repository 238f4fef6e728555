"""SAE-Attribution: the score is the predicted drop of the response CE, and its sign is right."""

import pytest
import torch
from methods_data import make_task

from triggerscope.methods.engine import tokenize
from triggerscope.methods.reference import ReferenceEngine
from triggerscope.methods.registry import run_method

pytest_plugins = ("methods_fixtures",)


def _ce(toy, task, delta):
    ex = tokenize(toy.tokenizer, task.prompts, task.response, task.system_prompt)
    value, _ = ReferenceEngine(toy, ex, task.layer).ce(delta[None])
    return float(value[0])


def test_score_is_the_first_order_drop_of_the_loss_for_one_prompt(toy, toy_sae):
    task = make_task(prompts=["Tell me about the stars!"])
    result = run_method("sae-attribution", toy, task, toy_sae, top_latents=64)
    scores = result.latent_scores
    assert scores is not None and scores.shape == (64,)
    n_user = sum(tokenize(toy.tokenizer, task.prompts, task.response)[0].user)
    # a central difference: no second-order term, so eps can be large enough that float32
    # rounding (which differs between BLAS builds) stays well under the tolerance
    eps = 2e-2
    for lat in (result.latent_ranking[0], result.latent_ranking[-1]):
        direction = toy_sae.W_dec[lat.index].detach()
        change = (_ce(toy, task, eps * direction) - _ce(toy, task, -eps * direction)) / 2
        # adding eps * d_i at each of the n user tokens changes CE by -eps * n * score_i
        assert change == pytest.approx(-eps * n_user * lat.score, rel=0.02)


def test_top_latent_lowers_the_loss_and_the_bottom_one_raises_it(toy, toy_sae):
    task = make_task()
    result = run_method("sae-attribution", toy, task, toy_sae, top_latents=64)
    ranking = result.latent_ranking
    assert [r.score for r in ranking] == sorted((r.score for r in ranking), reverse=True)
    assert ranking[0].score > 0 > ranking[-1].score
    base = _ce(toy, task, torch.zeros(32))
    top = toy_sae.W_dec[ranking[0].index].detach()
    bottom = toy_sae.W_dec[ranking[-1].index].detach()
    assert _ce(toy, task, 0.05 * top) < base < _ce(toy, task, 0.05 * bottom)


def test_fast_and_reference_engines_rank_the_same(toy, toy_sae):
    task = make_task()
    fast = run_method("sae-attribution", toy, task, toy_sae, top_latents=64)
    ref = run_method("sae-attribution", toy, task, toy_sae, top_latents=64, engine="reference")
    assert fast.latent_scores is not None and ref.latent_scores is not None
    assert torch.allclose(fast.latent_scores, ref.latent_scores, rtol=1e-4, atol=1e-7)
    assert [r.index for r in fast.latent_ranking[:10]] == [r.index for r in ref.latent_ranking[:10]]
    assert ref.backward_passes == len(task.prompts)  # one backward pass per prompt
    assert fast.vectors == [] and fast.method == "sae-attribution"
