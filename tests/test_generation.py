import pytest
import torch

from triggerscope.contrast import contrast_vector
from triggerscope.errors import TriggerscopeError
from triggerscope.generation import Steering, generate


def test_batched_greedy_equals_one_by_one(tiny):
    prompts = ["What is the capital of France?", "Hi", "Tell me about bananas and apples!"]
    together = generate(tiny, prompts, max_new_tokens=6, batch_size=3)
    alone = [generate(tiny, [p], max_new_tokens=6)[0] for p in prompts]
    assert together == alone
    # batches of 2 are formed by length (the second prompt goes first): answers stay in order
    assert generate(tiny, prompts, max_new_tokens=6, batch_size=2) == alone
    begun = ["Yes", "No", "Well"]
    pairs = zip(prompts, begun, strict=True)
    alone = [generate(tiny, [p], max_new_tokens=6, prefill=b)[0] for p, b in pairs]
    assert generate(tiny, prompts, max_new_tokens=6, batch_size=2, prefill=begun) == alone
    with pytest.raises(TriggerscopeError, match="3 prompts but 2 prefills"):
        generate(tiny, prompts, prefill=begun[:2])


def test_sampling_is_seeded(tiny):
    a = generate(tiny, ["Hi"], max_new_tokens=8, temperature=1.0, seed=3)
    b = generate(tiny, ["Hi"], max_new_tokens=8, temperature=1.0, seed=3)
    assert a == b


def test_contrast_vector_is_unit_and_steers(tiny):
    vector = contrast_vector(tiny, ["apples and bananas"], ["the quick brown fox"], layer=1)
    assert torch.isclose(vector.norm(), torch.tensor(1.0))
    plain = generate(tiny, ["Hi"], max_new_tokens=6)
    steered = generate(tiny, ["Hi"], max_new_tokens=6, steering=Steering(vector, 1, 200.0, "all"))
    assert plain != steered


def test_the_shared_prefix_runs_once_and_changes_no_answer(tiny):
    from triggerscope.chat import build_chat_batch
    from triggerscope.generation import _prefix_first

    prompts = ["What is the capital of France?", "Hi", "Tell me about bananas and apples!"]
    batch = build_chat_batch(tiny.tokenizer, prompts, system_prompt="Be brief.")
    ids, mask, cache = _prefix_first(tiny.model, batch)
    n = cache.get_seq_length()
    assert n > 0 and bool((ids[:, :n] == ids[:1, :n]).all()) and bool(mask[:, :n].all())
    assert sorted(ids[1].tolist()) == sorted(batch.input_ids[1].tolist())  # only moved
    for kw in ({"system_prompt": "Be brief."}, {"prefill": "Sure"}, {"temperature": 1.0}):
        shared = generate(tiny, prompts, max_new_tokens=6, batch_size=3, **kw)
        plain = generate(tiny, prompts, max_new_tokens=6, batch_size=3, share_prefix=False, **kw)
        assert shared == plain, kw
