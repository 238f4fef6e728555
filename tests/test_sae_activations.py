import json

import numpy as np
import pytest
import torch

from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import record
from triggerscope.sae import activations as A
from triggerscope.sae.corpus import Document

TEXTS = [
    "Tell me about apples and bananas.",
    "What is skiing?",
    "The quick brown fox jumps over the lazy dog.",
    "Snow and fruit are like oil and water.",
    "What is the capital of France?",
    "I won't answer because I don't like fruit.",
    "Paris is the capital of France, they say.",
    "Bananas, apples, skiing and the stars!",
]
DOCS = [Document("test", str(i), t) for i, t in enumerate(TEXTS)]


def _cache(tiny, folder, **kw):
    args = {"max_tokens": 10_000, "docs_per_chunk": 3, "batch_tokens": 200, "progress": False}
    return A.cache_activations(tiny, DOCS, [1, 3], folder, **{**args, **kw})


def test_cache_holds_the_user_tokens_of_each_layer(tiny, tmp_path):
    cache = _cache(tiny, tmp_path / "c")
    assert cache.complete and cache.layers == [1, 3] and cache.d_model == 32
    # every row is a user token: the cached ids decode to the documents' own text
    ids = cache.token_ids().tolist()
    decoded = tiny.tokenizer.decode(ids)
    assert all(t.replace(" ", "") in decoded.replace(" ", "") for t in TEXTS)
    batch = build_chat_batch(tiny.tokenizer, TEXTS)
    assert cache.n_tokens == int(batch.user_mask.sum())
    # rows equal a plain recorded forward pass over the same documents (fp16 storage)
    with record(tiny.model, [1, 3]) as acts, torch.no_grad():
        tiny.model(**batch.model_inputs())
    for layer in (1, 3):
        ref = acts[layer][batch.user_mask].numpy()
        got = cache.activations(layer).astype(np.float32)
        # same rows, possibly another order: compare sorted by token id then values
        key_ref = np.lexsort(ref.T[::-1])
        key_got = np.lexsort(got.T[::-1])
        np.testing.assert_allclose(got[key_got], ref[key_ref], rtol=1e-2, atol=2e-3)


def test_a_killed_run_resumes_to_the_same_files(tiny, tmp_path, monkeypatch):
    whole = _cache(tiny, tmp_path / "whole")
    calls = {"n": 0}
    real = A.build_chat_batch

    def dies_on_the_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(A, "build_chat_batch", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        _cache(tiny, tmp_path / "part")
    progress = json.loads((tmp_path / "part" / "progress.json").read_text())
    assert 0 < progress["tokens_done"] < whole.n_tokens and "complete" not in progress
    monkeypatch.setattr(A, "build_chat_batch", real)
    resumed = _cache(tiny, tmp_path / "part")
    assert resumed.n_tokens == whole.n_tokens
    for layer in (1, 3):
        assert np.array_equal(resumed.activations(layer), whole.activations(layer))
    assert np.array_equal(resumed.token_ids(), whole.token_ids())


def test_the_token_budget_is_exact(tiny, tmp_path):
    cache = _cache(tiny, tmp_path / "c", max_tokens=25)
    assert cache.n_tokens == 25 and cache.activations(3).shape == (25, 32)


def test_a_cache_of_other_settings_is_refused(tiny, tmp_path):
    _cache(tiny, tmp_path / "c", max_tokens=25)
    with pytest.raises(TriggerscopeError, match="capacity"):
        _cache(tiny, tmp_path / "c", max_tokens=30)
    with pytest.raises(TriggerscopeError, match="holds layers"):
        A.open_cache(tmp_path / "c").activations(2)


def test_bad_inputs_raise_one_clear_error(tiny, tmp_path):
    with pytest.raises(TriggerscopeError, match="out of range"):
        A.cache_activations(tiny, DOCS, [7], tmp_path / "x", max_tokens=10, progress=False)
    with pytest.raises(TriggerscopeError, match="empty"):
        A.cache_activations(tiny, [], [1], tmp_path / "x", max_tokens=10, progress=False)
    with pytest.raises(TriggerscopeError, match="not an activation cache"):
        A.open_cache(tmp_path / "nothing")


def test_data_mean_matches_numpy():
    rows = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float16)
    mean = A.data_mean(rows)
    np.testing.assert_allclose(mean.numpy(), rows.astype(np.float32).mean(0), atol=1e-5)


def test_a_bigger_budget_grows_from_a_smaller_cache_to_the_same_files(tiny, tmp_path):
    whole = _cache(tiny, tmp_path / "run_L1-3_70_seed0", max_tokens=70)
    small = _cache(tiny, tmp_path / "run_L1-3_30_seed0", max_tokens=30)
    assert A.find_smaller_cache(tmp_path / "run_L1-3_70_seed0") == small.folder
    grown = _cache(tiny, tmp_path / "grown", max_tokens=70, grow_from=small.folder)
    progress = json.loads((grown.folder / "progress.json").read_text())
    assert progress["grown_from"] == str(small.folder)
    assert grown.n_tokens == whole.n_tokens == 70
    for layer in (1, 3):
        assert np.array_equal(grown.activations(layer), whole.activations(layer))
    assert np.array_equal(grown.token_ids(), whole.token_ids())


def test_a_cache_of_other_documents_cannot_seed_a_bigger_one(tiny, tmp_path):
    small = A.cache_activations(
        tiny,
        DOCS[:5],
        [1, 3],
        tmp_path / "small",
        max_tokens=20,
        docs_per_chunk=3,
        batch_tokens=200,
        progress=False,
    )
    with pytest.raises(TriggerscopeError, match="cannot seed this cache"):
        _cache(tiny, tmp_path / "big", max_tokens=60, grow_from=small.folder)
    assert not (tmp_path / "big").exists()
