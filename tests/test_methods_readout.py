"""Read-out: cosine scores, rankings with labels, steered samples and the action rate."""

import torch
from methods_data import make_task

from triggerscope.methods import readout
from triggerscope.methods.registry import run_method

pytest_plugins = ("methods_fixtures",)


def test_cosine_scores_and_ranking_with_labels():
    decoder = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]])
    scores = readout.cosine_scores(torch.tensor([2.0, 0.0]), decoder)
    assert torch.allclose(scores, torch.tensor([1.0, 0.0, -1.0, 2**-0.5]))
    ranked = readout.rank_latents(scores, 2, {0: "east", 3: "north-east"})
    assert [(r.index, r.label) for r in ranked] == [(0, "east"), (3, "north-east")]
    assert len(readout.rank_latents(scores, 10)) == 4


def test_action_rate_counts_steered_answers_that_contain_the_response(toy, monkeypatch):
    calls = []

    def fake_generate(loaded, prompts, *, steering=None, **kw):
        calls.append(steering)
        if steering is None:
            return ["Sure, here you go."] * len(prompts)
        return ["Well: I won\u2019t answer.", "Here is a poem."][: len(prompts)]

    monkeypatch.setattr(readout, "generate", fake_generate)
    result = run_method("random", toy, make_task(), k=2, norm=1.0, labels={5: "five"})
    for v in result.vectors:
        assert v.action_rate == 0.5
        assert [s.action for s in v.samples] == [True, False]
        assert v.samples[0].unsteered == "Sure, here you go."
    assert result.baseline_action_rate == 0.0
    assert sum(c is None for c in calls) == 1  # unsteered answers generated once per run
    steered = [c for c in calls if c is not None]
    assert steered[0].layer == 1 and steered[0].new_tokens == "none"
