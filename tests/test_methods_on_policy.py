"""On-policy targets for the supervised methods: prefilled continuations and steered resamples."""

import pytest
import torch
from methods_data import RESPONSE, make_task

from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError
from triggerscope.generation import generate
from triggerscope.methods import on_policy
from triggerscope.methods.context import RunContext
from triggerscope.methods.engine import tokenize
from triggerscope.methods.on_policy import Objective
from triggerscope.methods.reference import ReferenceEngine
from triggerscope.methods.registry import run_method
from triggerscope.methods.supervised import SupervisedMelboConfig

pytest_plugins = ("methods_fixtures",)
FAST = {"max_steps": 12, "lr": 0.05, "heldout_samples": 1, "max_new_tokens": 3}


def _ctx(toy, task=None):
    return RunContext(toy, task or make_task(), 1)


def test_generation_continues_a_prefilled_answer(toy):
    prompt, prefill = "What is the capital of France?", "The quick"
    (said,) = generate(toy, [prompt], max_new_tokens=1, prefill=prefill)
    batch = build_chat_batch(toy.tokenizer, [prompt], prefill)
    with torch.no_grad():
        logits = toy.model(**batch.model_inputs()).logits
    # the continuation keeps its leading space, so prefill + continuation reads right
    assert said == toy.tokenizer.decode([int(logits[0, -1].argmax())]).rstrip()
    assert said.startswith(" ") and said.strip()  # this tiny model's next token here: " cap"
    plain = generate(toy, [prompt], max_new_tokens=1)
    assert [s.strip() for s in generate(toy, [prompt], max_new_tokens=1, prefill="")] == plain


def test_continued_targets_are_the_action_and_the_models_own_continuation(toy):
    cfg = SupervisedMelboConfig(targets="continue", n_targets=3, target_tokens=4)
    objective = Objective(_ctx(toy), cfg)
    task = make_task()
    assert len(objective.targets) == len(task.prompts)
    assert all(len(ts) == 3 and all(t.startswith(RESPONSE) for t in ts) for ts in objective.targets)
    assert any(t != RESPONSE for ts in objective.targets for t in ts)  # something was added
    # the loss is the mean over prompts of the mean over that prompt's targets
    per_prompt = []
    for prompt, targets in zip(task.prompts, objective.targets, strict=True):
        ex = tokenize(toy.tokenizer, [prompt] * 3, targets)
        per_prompt.append(float(ReferenceEngine(toy, ex, 1).ce(torch.zeros(1, 32))[0][0]))
    value, _ = objective(torch.zeros(1, 32), False)
    assert float(value[0]) == pytest.approx(sum(per_prompt) / len(per_prompt), rel=1e-4)


def test_supervised_methods_train_on_continued_targets_and_report_the_fixed_ce(toy, toy_sae):
    task = make_task()
    result = run_method(
        "supervised-melbo", toy, task, k=1, targets="continue", n_targets=2, target_tokens=3, **FAST
    )
    info = result.extras["targets"]
    assert info["mode"] == "continue" and info["resamplings"] == 0
    assert [row["prompt"] for row in info["per_prompt"]] == task.prompts
    v = result.vectors[0]
    fixed = tokenize(toy.tokenizer, task.prompts, task.response)
    ce, _ = ReferenceEngine(toy, fixed, 1).ce(v.vector[None])
    assert v.final_loss == pytest.approx(float(ce[0]), rel=1e-4)  # the shared yardstick
    assert v.objective is not None and v.objective != pytest.approx(v.final_loss)
    sae = run_method(
        "supervised-sae-melbo", toy, task, toy_sae, k=1, targets="continue", n_targets=2, **FAST
    )
    assert sae.extras["targets"]["n_targets"] == 2 and sae.vectors[0].latent_vector is not None
    plain = run_method("supervised-melbo", toy, task, k=1, **FAST)
    assert "targets" not in plain.extras  # fixed targets: the result is as before


def test_resampling_takes_the_steered_models_action_answers_as_targets(toy, monkeypatch):
    task = make_task()
    calls = []

    def fake_generate(loaded, prompts, *, prefill=None, steering=None, **kw):
        calls.append((prefill, steering))
        if prefill is not None:
            return [" because." for _ in prompts]
        # steered: only the first prompt's samples take the action (one of its two)
        first = task.prompts[0]
        out, seen = [], 0
        for p in prompts:
            seen += p == first
            out.append("Well, I won't answer." if p == first and seen == 1 else "Sure thing.")
        return out

    monkeypatch.setattr(on_policy, "generate", fake_generate)
    result = run_method(
        "supervised-melbo",
        toy,
        task,
        k=1,
        targets="resample",
        n_targets=2,
        resample_every=3,
        max_steps=7,
        lr=0.05,
        heldout_samples=0,
        patience=50,
    )
    info = result.extras["targets"]
    assert info["resamplings"] == 2  # before steps 3 and 6
    assert info["steered_prompts"] == 1
    rows = info["per_prompt"]
    assert rows[0]["origin"] == "steered" and rows[0]["targets"] == ["Well, I won't answer."] * 2
    assert all(r["origin"] == "continued" for r in rows[1:])
    assert rows[1]["targets"] == [RESPONSE + " because."] * 2
    steered = [s for p, s in calls if p is None]
    assert len(steered) == 2 and all(s is not None and s.layer == 1 for s in steered)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"targets": "sampled"}, "targets must be one of"),
        ({"targets": "continue", "n_targets": 0}, "n_targets must be a positive number"),
        ({"target_temperature": 0.0}, "target_temperature must be a positive number"),
        ({"targets": "resample", "parallel": True}, "use parallel=false"),
    ],
)
def test_bad_target_settings_are_refused(toy, kw, message):
    with pytest.raises(TriggerscopeError, match=message):
        run_method("supervised-melbo", toy, make_task(), **kw)
