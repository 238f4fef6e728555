"""The fast path computes what the plain reference computes: losses and gradients, allclose."""

import pytest
import torch
from methods_data import PROMPTS, RESPONSE

from triggerscope.decoder import reproduces
from triggerscope.errors import TriggerscopeError
from triggerscope.methods import prefix
from triggerscope.methods.engine import tokenize
from triggerscope.methods.prefix import FastEngine, pack, shared_prefix
from triggerscope.methods.reference import ReferenceEngine

pytest_plugins = ("methods_fixtures",)


def _examples(toy, response=RESPONSE, system_prompt="Be kind."):
    return tokenize(toy.tokenizer, PROMPTS, response, system_prompt)


def _close(a, b, rel=1e-4):
    scale = float(b.abs().max())
    assert float((a - b).abs().max()) <= rel * scale + 1e-7, (a, b)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize(("max_tokens", "pack_rows"), [(4096, True), (40, True), (4096, False)])
def test_ce_and_gradient_match_reference(toy, attn, max_tokens, pack_rows):
    toy.model.config._attn_implementation = attn
    ex = _examples(toy)
    fast = FastEngine(toy, ex, 1, max_tokens=max_tokens, pack_rows=pack_rows)
    ref = ReferenceEngine(toy, ex, 1, batch_size=2)
    deltas = 3 * torch.randn(3, 32)
    v_fast, g_fast = fast.ce(deltas, grad=True)
    v_ref, g_ref = ref.ce(deltas, grad=True)
    _close(v_fast, v_ref)
    _close(g_fast, g_ref)
    assert not torch.allclose(v_ref[0], v_ref[1])  # the vectors matter
    if max_tokens == 40:
        assert len(fast.chunks) > 1


def test_several_vectors_in_one_pass_equal_one_at_a_time(toy):
    fast = FastEngine(toy, _examples(toy), 2)
    deltas = 2 * torch.randn(4, 32)
    together, g_together = fast.ce(deltas, grad=True)
    alone = [fast.ce(d[None], grad=True) for d in deltas]
    _close(together, torch.cat([v for v, _ in alone]))
    _close(g_together, torch.cat([g for _, g in alone]))


def test_unsteered_per_prompt_ce_matches_reference(toy):
    ex = _examples(toy, system_prompt=None)
    fast = FastEngine(toy, ex, 0)
    ref = ReferenceEngine(toy, ex, 0)
    per_prompt = fast.ce_per_prompt()
    value, _ = ref.ce(torch.zeros(1, 32))
    _close(per_prompt.mean()[None], value)


@pytest.mark.parametrize(("p", "q", "targets"), [(2.0, 1.0, "after_user"), (3.0, 2.0, "all")])
def test_divergence_and_gradient_match_reference(toy, p, q, targets):
    ex = _examples(toy, response=None)
    fast = FastEngine(toy, ex, 1, target_layer=3, targets=targets, max_tokens=64)
    ref = ReferenceEngine(toy, ex, 1, target_layer=3, targets=targets, batch_size=3)
    deltas = 4 * torch.randn(2, 32)
    v_fast, g_fast = fast.divergence(deltas, grad=True, p=p, q=q)
    v_ref, g_ref = ref.divergence(deltas, grad=True, p=p, q=q)
    _close(v_fast, v_ref)
    _close(g_fast, g_ref)
    zero, _ = fast.divergence(torch.zeros(1, 32))
    assert float(zero) < 1e-6 * float(v_ref.min())  # nothing moves without a vector


def test_attribution_gradients_match_one_backward_per_prompt(toy):
    ex = _examples(toy)
    fast = FastEngine(toy, ex, 2)
    ref = ReferenceEngine(toy, ex, 2)
    g_fast, g_ref = fast.attribution_grads(), ref.attribution_grads()
    assert g_fast.shape == (len(PROMPTS), 32)
    _close(g_fast, g_ref)
    assert ref.counters.backward == len(PROMPTS)  # the reference: one backward per prompt
    assert fast.counters.backward == len(fast.chunks)
    assert fast.mean_user_norm() == pytest.approx(ref.mean_user_norm(), rel=1e-5)


def test_fast_path_works_through_a_peft_adapter(toy):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(toy.model, config).eval()
    peft_model.requires_grad_(False)
    adapted = type(toy)(peft_model, toy.tokenizer, "tiny+lora", None, 0.0)
    ex = _examples(toy)
    deltas = torch.randn(2, 32)
    v_fast, g_fast = FastEngine(adapted, ex, 1).ce(deltas, grad=True)
    v_ref, g_ref = ReferenceEngine(adapted, ex, 1).ce(deltas, grad=True)
    _close(v_fast, v_ref)
    _close(g_fast, g_ref)
    with peft_model.disable_adapter():
        base, _ = ReferenceEngine(adapted, ex, 1).ce(deltas)
    assert not torch.allclose(base, v_ref)  # the adapter is really in the loop


def test_self_check_refuses_a_forward_it_does_not_reproduce(toy, monkeypatch):
    update = prefix.PrefixKV.update

    def skewed_prefix(self, key_states, value_states, layer_idx, *a, **kw):
        keys, values = update(self, key_states, value_states, layer_idx)
        return keys, values * 1.01

    monkeypatch.setattr(prefix.PrefixKV, "update", skewed_prefix)
    with pytest.raises(TriggerscopeError, match=r"does not reproduce.*engine='reference'"):
        FastEngine(toy, _examples(toy), 1)


def test_target_layer_must_come_after_the_steering_layer(toy):
    ex = _examples(toy, response=None)
    for engine in (FastEngine, ReferenceEngine):
        with pytest.raises(TriggerscopeError, match="must come after the steering layer"):
            engine(toy, ex, 2, target_layer=2)
        with pytest.raises(TriggerscopeError, match="out of range"):
            engine(toy, ex, 2, target_layer=9)


def test_pack_fits_rows_and_keeps_every_segment():
    lengths = [30, 10, 25, 5, 40, 12]
    rows = pack(lengths, 40)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 40 for row in rows)
    assert len(rows) == 4  # 40 | 30+10 | 25+12 | 5 packs into one of them


def test_shared_prefix_stops_before_the_first_user_token(toy):
    ex = _examples(toy)
    n = shared_prefix(ex)
    assert 0 < n <= min(e.first_user for e in ex)
    assert len({e.ids[:n] for e in ex}) == 1


def test_wrong_vector_size_is_refused(toy):
    fast = FastEngine(toy, _examples(toy), 1)
    with pytest.raises(TriggerscopeError, match=r"must be \[N, 32\]"):
        fast.ce(torch.zeros(2, 31))


def test_trimmed_last_layer_is_used_and_exact(toy):
    ex = _examples(toy)
    trimmed = FastEngine(toy, ex, 1)
    full = FastEngine(toy, ex, 1, trim_last=False)
    assert trimmed.trim and not full.trim
    deltas = 2 * torch.randn(3, 32)
    v_trim, g_trim = trimmed.ce(deltas, grad=True)
    v_full, g_full = full.ce(deltas, grad=True)
    _close(v_trim, v_full)
    _close(g_trim, g_full)
    _close(trimmed.attribution_grads(), full.attribution_grads())


def test_a_failing_trim_falls_back_to_the_full_last_layer(toy, monkeypatch):
    def wrong(self, chunk, h, g):
        return torch.zeros(g * len(chunk.sel), self.d_model)

    monkeypatch.setattr(FastEngine, "_last_layer", wrong)
    ex = _examples(toy)
    fast = FastEngine(toy, ex, 1)
    assert not fast.trim
    deltas = torch.randn(2, 32)
    _close(fast.ce(deltas)[0], ReferenceEngine(toy, ex, 1).ce(deltas)[0])


def test_self_check_tolerance_is_relative_but_never_below_float_noise():
    near_zero = torch.tensor([0.00144])  # the CE of prompts that already carry the trigger
    assert reproduces(near_zero + 2.1e-6, near_zero, 1e-3)
    assert not reproduces(near_zero + 5e-3, near_zero, 1e-3)
    big = torch.tensor([300.0, -20.0])  # residual activations: relative to their size
    assert reproduces(big + 0.2, big, 1e-3)
    assert not reproduces(big + 1.0, big, 1e-3)
