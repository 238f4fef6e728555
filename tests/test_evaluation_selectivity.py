"""Latent selectivity against a hand computation, its cache, and the adapter switched off."""

import pytest
import torch
from conftest import CORPUS

from triggerscope.chat import build_chat_batch
from triggerscope.evaluation import selectivity as sel_mod
from triggerscope.evaluation.auroc import auroc
from triggerscope.evaluation.probes import ProbeSet
from triggerscope.evaluation.selectivity import concept_selectivity, max_activations
from triggerscope.hooks import record
from triggerscope.sae.metrics import text_batches
from triggerscope.sae.model import SAE, SAEConfig

LAYER, D_SAE = 2, 24
PROBE = ProbeSet(
    "fruit",
    pos=["Apples and pears are fruit.", "I like bananas!", "A bowl of cherries.", "Mango juice"],
    neg=["The quick brown fox.", "What is the capital of France?", "Trains are fast.", "Hello"],
)


@pytest.fixture
def sae(tiny):
    batch = next(text_batches(tiny.tokenizer, CORPUS))
    with record(tiny.model, [LAYER]) as acts, torch.no_grad():
        tiny.model(**batch.model_inputs())
    scale = float(acts[LAYER][batch.positions].std())
    torch.manual_seed(5)
    s = SAE(SAEConfig(d_in=32, d_sae=D_SAE, architecture="standard", layer=LAYER))
    s.requires_grad_(False)
    s.W_enc.copy_(torch.randn(32, D_SAE) / scale)
    s.b_enc.copy_(-2.0 + torch.randn(D_SAE))
    return s


def by_hand(tiny, sae, texts):
    """One text at a time, no padding: max over the user's own tokens."""
    rows = []
    for text in texts:
        batch = build_chat_batch(tiny.tokenizer, [text])
        with record(tiny.model, [LAYER]) as acts, torch.no_grad():
            tiny.model(**batch.model_inputs())
        rows.append(sae.encode(acts[LAYER][0][batch.user_mask[0]]).max(dim=0).values)
    return torch.stack(rows)


def test_max_activations_use_user_tokens_only(tiny, sae):
    got = max_activations(tiny.model, tiny.tokenizer, sae, PROBE.pos, layer=LAYER, batch_size=3)
    assert torch.allclose(got, by_hand(tiny, sae, PROBE.pos), atol=1e-5)
    assert (got > 0).any() and (got == 0).any()  # the test latents are neither dead nor dense


def test_selectivity_is_auroc_of_max_activations(tiny, sae, tmp_path):
    result = concept_selectivity(
        tiny.model, tiny.tokenizer, sae, PROBE, model_id="tiny", cache_dir=tmp_path
    )
    want = auroc(by_hand(tiny, sae, PROBE.pos), by_hand(tiny, sae, PROBE.neg))
    assert torch.allclose(result.auroc, want)
    assert result.n_selective(0.0) == D_SAE
    assert result.selective(0.9) == {i for i in range(D_SAE) if want[i] >= 0.9}
    assert result.best(1)[0][1] == round(float(want.max()), 4)


def test_cache_is_used_and_keyed_by_sae(tiny, sae, tmp_path, monkeypatch):
    first = concept_selectivity(
        tiny.model, tiny.tokenizer, sae, PROBE, model_id="t", cache_dir=tmp_path
    )
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("the model was run although the cache holds the answer")

    monkeypatch.setattr(sel_mod, "max_activations", boom)
    again = concept_selectivity(
        tiny.model, tiny.tokenizer, sae, PROBE, model_id="t", cache_dir=tmp_path
    )
    assert torch.equal(first.auroc, again.auroc)
    with pytest.raises(AssertionError, match="cache holds"):
        concept_selectivity(
            tiny.model, tiny.tokenizer, sae, PROBE, model_id="t", cache_dir=tmp_path, refresh=True
        )
    sae.W_enc.mul_(-1.0)  # another SAE: another cache entry, so the model must run
    with pytest.raises(AssertionError, match="cache holds"):
        concept_selectivity(
            tiny.model, tiny.tokenizer, sae, PROBE, model_id="t", cache_dir=tmp_path
        )


def test_adapter_is_switched_off(tiny, sae, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = concept_selectivity(
        tiny.model, tiny.tokenizer, sae, PROBE, model_id="a", cache_dir=tmp_path / "a"
    )
    wrapped = get_peft_model(tiny.model, LoraConfig(r=4, target_modules=["q_proj", "up_proj"]))
    for name, p in wrapped.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # a real change of the layer-2 activations
    batch = build_chat_batch(tiny.tokenizer, PROBE.pos[:1])
    with record(wrapped, [LAYER]) as on, torch.no_grad():
        wrapped(**batch.model_inputs())
    with wrapped.disable_adapter(), record(wrapped, [LAYER]) as off, torch.no_grad():
        wrapped(**batch.model_inputs())
    assert not torch.allclose(on[LAYER], off[LAYER])
    adapted = concept_selectivity(
        wrapped, tiny.tokenizer, sae, PROBE, model_id="a", cache_dir=tmp_path / "b"
    )
    assert torch.allclose(adapted.auroc, base.auroc)
