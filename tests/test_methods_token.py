"""Token baseline: candidates from the gradient, exact evaluation, readable tokens only."""

import pytest
import torch
from methods_data import make_task

from triggerscope.methods.engine import insert_token, tokenize
from triggerscope.methods.reference import ReferenceEngine
from triggerscope.methods.registry import run_method
from triggerscope.methods.token_baseline import allowed_tokens, with_text

pytest_plugins = ("methods_fixtures",)


def test_allowed_tokens_are_word_like_and_skip_the_response_words(llama3_tokenizer):
    tok = llama3_tokenizer
    ids = allowed_tokens(tok, len(tok), "I won't answer.", exclude_response=True)
    texts = [tok.decode([i]) for i in ids]
    assert ids and all(t.strip().isalpha() for t in texts)
    assert not set(ids) & set(tok.all_special_ids)
    assert not {t.strip().lower() for t in texts} & {"i", "won", "t", "answer"}
    kept = allowed_tokens(tok, len(tok), "I won't answer.", exclude_response=False)
    assert len(kept) > len(ids)


def test_insert_token_marks_the_new_token_as_user_text(llama3_tokenizer):
    (e,) = tokenize(llama3_tokenizer, ["Tell me about the stars!"], "I won't answer.")
    for where, at in (("start", e.first_user), ("end", e.last_user + 1)):
        new = insert_token(e, 7, where)
        assert new.ids[at] == 7 and new.user[at] and not new.response[at]
        assert sum(new.user) == sum(e.user) + 1 and sum(new.response) == sum(e.response)
    assert with_text("hi", " banana", "start") == "banana hi"
    assert with_text("hi", " banana", "end") == "hi banana"


def test_ranking_holds_exact_loss_drops_best_first(toy):
    task = make_task()
    result = run_method("token", toy, task, candidates=6, top_tokens=6, max_new_tokens=3)
    ranking = result.token_ranking
    assert len(ranking) == 6
    drops = [d for _, d in ranking]
    assert drops == sorted(drops, reverse=True)
    # the first entry is exact: the baseline CE minus the CE with that token inserted
    token = toy.tokenizer.convert_tokens_to_ids(toy.tokenizer.tokenize(ranking[0][0]))
    assert len(token) == 1
    ex = tokenize(toy.tokenizer, task.prompts, task.response)
    with_token = [insert_token(e, token[0], "start") for e in ex]
    ce, _ = ReferenceEngine(toy, with_token, 0).ce(torch.zeros(1, 32))
    assert ranking[0][1] == pytest.approx(result.baseline_loss - float(ce[0]), rel=1e-4, abs=1e-5)
    assert result.extras["best_token"] == ranking[0][0]
    assert 0.0 <= result.extras["best_token_action_rate"] <= 1.0
    assert len(result.extras["samples"]) == len(task.heldout_prompts)
    assert result.backward_passes == 1  # one gradient for all candidates
