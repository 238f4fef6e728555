"""Internal target: the action-vs-benign direction at a late layer, and the methods that push it."""

import pytest
import torch
from methods_data import PROMPTS, RESPONSE, make_task

from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import record
from triggerscope.methods import internal
from triggerscope.methods.context import RunContext
from triggerscope.methods.engine import tokenize
from triggerscope.methods.internal import FastProjection, InternalConfig, ReferenceProjection
from triggerscope.methods.registry import run_method

pytest_plugins = ("methods_fixtures",)
FAST = {"max_steps": 15, "lr": 0.1, "heldout_samples": 1, "max_new_tokens": 3}


def _close(a, b, rel=1e-4):
    scale = float(b.abs().max())
    assert float((a - b).abs().max()) <= rel * scale + 1e-7, (a, b)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize(("at", "max_tokens"), [("first_response", 4096), ("response", 40)])
def test_projection_and_gradient_match_the_reference(toy, attn, at, max_tokens):
    toy.model.config._attn_implementation = attn
    ex = tokenize(toy.tokenizer, PROMPTS, RESPONSE, "Be kind.")
    fast = FastProjection(toy, ex, 1, target_layer=3, targets=at, max_tokens=max_tokens)
    ref = ReferenceProjection(toy, ex, 1, target_layer=3, targets=at, batch_size=2)
    _close(fast.position_means(), ref.position_means())
    direction = torch.randn(32)
    deltas = 3 * torch.randn(3, 32)
    v_fast, g_fast = fast.projection(deltas, direction, grad=True)
    v_ref, g_ref = ref.projection(deltas, direction, grad=True)
    _close(v_fast, v_ref)
    _close(g_fast, g_ref)
    assert not torch.allclose(v_ref[0], v_ref[1])  # the vectors matter
    if max_tokens == 40:
        assert len(fast.chunks) > 1


def _layer_output_at(toy, prompts, responses, layer, first_only):
    """Per prompt, the full forward's layer output at its response tokens (hooks, no engine)."""
    out = []
    for prompt, response in zip(prompts, responses, strict=True):
        batch = build_chat_batch(toy.tokenizer, [prompt], response)
        with torch.no_grad(), record(toy.model, [layer]) as store:
            toy.model(**batch.model_inputs())
        h = store[layer][0][batch.response_mask[0]]
        out.append(h[0] if first_only else h.mean(0))
    return torch.stack(out)


@pytest.mark.parametrize("at", ["first_response", "response"])
def test_direction_is_the_difference_of_means_of_action_and_benign_answers(toy, monkeypatch, at):
    benign = ["Paris, of course.", "Stars shine.", "Hello there!", "It jumps.", "Snow fun."]
    benign[2] = "I won't answer. Sorry."  # takes the action: left out of both means
    monkeypatch.setattr(internal, "answers", lambda ctx, cfg, prompts, delta: list(benign))
    ctx = RunContext(toy, make_task(), 1)
    direction, _engine, info = internal.internal_direction(ctx, InternalConfig(direction_at=at), 3)
    keep = [0, 1, 3, 4]
    n = len(toy.tokenizer(RESPONSE, add_special_tokens=False)["input_ids"])
    cut = [benign[i] for i in keep]
    if at == "response":
        cut = [
            toy.tokenizer.decode(toy.tokenizer(b, add_special_tokens=False)["input_ids"][:n])
            for b in cut
        ]
    prompts = [PROMPTS[i] for i in keep]
    first = at == "first_response"
    action = _layer_output_at(toy, prompts, [RESPONSE] * 4, 3, first).mean(0)
    other = _layer_output_at(toy, prompts, cut, 3, first).mean(0)
    _close(direction, action - other)
    assert info["benign_prompts"] == 4 and info["gap"] == pytest.approx(float(direction.norm()))


def test_internal_melbo_pushes_the_late_layer_toward_the_action(toy):
    task = make_task()
    result = run_method("internal-melbo", toy, task, k=2, norm=2.0, target_layer=3, **FAST)
    v0, v1 = result.vectors
    assert float(v0.vector.norm()) == pytest.approx(2.0, rel=1e-4)
    assert abs(float(v0.vector @ v1.vector)) < 1e-4
    extras = result.extras
    assert extras["target_layer"] == 3 and extras["direction_at"] == "first_response"
    assert v0.objective is not None and v0.objective > 0.05  # moved along the direction
    # the reported gain is the projection gain, in gaps, measured by the plain reference
    ctx = RunContext(toy, task, 1)
    direction, _, info = internal.internal_direction(ctx, InternalConfig(), 3)
    ref = ReferenceProjection(
        toy,
        tokenize(toy.tokenizer, task.prompts, RESPONSE),
        1,
        target_layer=3,
        targets="first_response",
    )
    unit = direction / direction.norm()
    values, _ = ref.projection(torch.stack([torch.zeros(32), v0.vector]), unit)
    assert v0.objective == pytest.approx(float(values[1] - values[0]) / info["gap"], rel=1e-3)
    assert v0.final_loss == v0.final_loss and v0.action_rate is not None  # read out like others


def test_fast_and_reference_engines_learn_the_same_internal_vector(toy):
    kw = {"k": 1, "norm": 2.0, "target_layer": 3, "direction_at": "response", **FAST}
    fast = run_method("internal-melbo", toy, make_task(), **kw)
    ref = run_method("internal-melbo", toy, make_task(), engine="reference", **kw)
    a, b = fast.vectors[0].vector, ref.vectors[0].vector
    assert float(a @ b / (a.norm() * b.norm())) > 0.999


def test_internal_sae_melbo_builds_the_vector_from_latents(toy, toy_sae):
    result = run_method("internal-sae-melbo", toy, make_task(), toy_sae, k=1, norm=2.0, **FAST)
    v = result.vectors[0]
    assert v.latent_vector is not None and v.latent_vector.shape == (64,)
    assert torch.allclose(v.vector, v.latent_vector @ toy_sae.W_dec.detach(), atol=1e-5)
    assert result.latent_ranking[0].index == int(v.latent_vector.argmax())
    assert result.extras["target_layer"] == 2  # default: two thirds of the way from 1 to 3


def test_refuses_without_a_benign_contrast_and_bad_settings(toy, monkeypatch):
    monkeypatch.setattr(internal, "answers", lambda ctx, cfg, prompts, d: [RESPONSE] * len(prompts))
    with pytest.raises(TriggerscopeError, match="no benign answer to any training prompt"):
        run_method("internal-melbo", toy, make_task(), k=1, max_steps=2)
    with pytest.raises(TriggerscopeError, match="direction_at must be one of"):
        run_method("internal-melbo", toy, make_task(), direction_at="last")
    with pytest.raises(TriggerscopeError, match=r"target layer \(1\) must come after"):
        run_method("internal-melbo", toy, make_task(), target_layer=1)
    with pytest.raises(TriggerscopeError, match="internal-sae-melbo needs an SAE"):
        run_method("internal-sae-melbo", toy, make_task())
