"""SAE metrics on the tiny random model, with SAEs whose answers are known by construction."""

import pytest
import torch
from conftest import CORPUS

from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers, record
from triggerscope.sae.metrics import evaluate_sae, read_texts, splice, text_batches
from triggerscope.sae.model import SAE, SAEConfig

D = 32
LAYER = 1


def linear_sae(keep: torch.Tensor) -> SAE:
    """A ReLU SAE that reconstructs x * keep exactly: latents relu(x_i), relu(-x_i)."""
    sae = SAE(SAEConfig(d_in=D, d_sae=2 * D, architecture="standard", layer=LAYER))
    eye = torch.eye(D)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.b_enc.zero_()
        sae.W_dec.copy_(torch.cat([eye * keep, -eye * keep], dim=0))
        sae.b_dec.zero_()
    sae.cfg.apply_b_dec_to_input = False
    return sae


def zero_sae() -> SAE:
    sae = SAE(SAEConfig(d_in=D, d_sae=2 * D, architecture="standard", layer=LAYER))
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()
    return sae


@pytest.mark.parametrize("chat", [True, False])
def test_identity_sae_scores_one(tiny, chat):
    m = evaluate_sae(tiny.model, tiny.tokenizer, linear_sae(torch.ones(D)), CORPUS, chat=chat)
    assert m.explained_variance == pytest.approx(1.0, abs=1e-5)
    assert m.ce_score == pytest.approx(1.0, abs=1e-3)
    assert m.ce_sae == pytest.approx(m.ce_clean, abs=1e-4)
    assert abs(m.ce_zero - m.ce_clean) > 1e-3  # zero-ablation changes the predictions
    assert m.l0 == pytest.approx(D)  # one of each +/- pair is active per coordinate
    assert m.dead_fraction == 0.0 and m.n_tokens > 20


def test_zero_sae_scores_zero(tiny):
    m = evaluate_sae(tiny.model, tiny.tokenizer, zero_sae(), CORPUS)
    assert m.ce_score == pytest.approx(0.0, abs=1e-6)
    assert m.l0 == 0.0 and m.dead_fraction == 1.0 and m.n_dead == 2 * D
    assert m.explained_variance < 0.0  # predicting 0 is worse than predicting the mean


def test_explained_variance_matches_hand_computation(tiny):
    keep = (torch.arange(D) < D // 2).float()  # the SAE drops half the coordinates
    m = evaluate_sae(tiny.model, tiny.tokenizer, linear_sae(keep), CORPUS, ce=False)
    xs = []
    for batch in text_batches(tiny.tokenizer, CORPUS):
        with record(tiny.model, [LAYER]) as acts, torch.no_grad():
            tiny.model(**batch.model_inputs())
        xs.append(acts[LAYER][batch.positions])
    x = torch.cat(xs).double()
    expected = 1 - (x[:, D // 2 :] ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert m.explained_variance == pytest.approx(float(expected), abs=1e-6)
    assert m.n_tokens == x.shape[0] and m.ce_score is None
    assert 0.0 < m.explained_variance < 1.0


def test_splice_replaces_only_positions_and_removes_its_hook(tiny):
    batch = next(text_batches(tiny.tokenizer, CORPUS[:2]))
    block = decoder_layers(tiny.model)[LAYER]
    with torch.no_grad(), splice(tiny.model, LAYER, torch.zeros_like, batch.positions):
        with record(tiny.model, [LAYER]) as acts:  # runs after the splice hook
            tiny.model(**batch.model_inputs())
        out = acts[LAYER]
    assert len(block._forward_hooks) == 0
    assert torch.all(out[batch.positions] == 0)
    assert torch.all(out[~batch.positions & batch.attention_mask.bool()].abs().sum(-1) > 0)


def test_bad_inputs(tiny, tmp_path):
    small = SAE(SAEConfig(d_in=31, d_sae=8, architecture="standard", layer=LAYER))
    with pytest.raises(TriggerscopeError, match="d_model is 32"):
        evaluate_sae(tiny.model, tiny.tokenizer, small, CORPUS)
    far = SAE(SAEConfig(d_in=D, d_sae=8, architecture="standard", layer=9))
    with pytest.raises(TriggerscopeError, match="out of range"):
        evaluate_sae(tiny.model, tiny.tokenizer, far, CORPUS)
    nowhere = SAE(SAEConfig(d_in=D, d_sae=8, architecture="standard", hook_name="blocks.1.mlp"))
    with pytest.raises(TriggerscopeError, match="pass --layer L"):
        evaluate_sae(tiny.model, tiny.tokenizer, nowhere, CORPUS)
    with pytest.raises(TriggerscopeError, match="no held-out texts"):
        evaluate_sae(tiny.model, tiny.tokenizer, zero_sae(), [])
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(TriggerscopeError, match="holds no text"):
        read_texts(tmp_path / "empty.txt")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": 1}\n')
    with pytest.raises(TriggerscopeError, match=r"bad.jsonl:2 needs a \"text\""):
        read_texts(tmp_path / "bad.jsonl")
    (tmp_path / "t.txt").write_text("one\n\ntwo\nthree\n")
    assert read_texts(tmp_path / "t.txt", limit=2) == ["one", "two"]
