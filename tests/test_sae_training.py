import json
import math

import numpy as np
import pytest
import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.sae.training import CONFIG_FILE, TrainConfig, train_sae


def sparse_data(n: int = 2048, d: int = 16, atoms: int = 48, seed: int = 0) -> np.ndarray:
    """Rows made of a few of `atoms` unit directions plus an offset: what an SAE should find."""
    rng = np.random.default_rng(seed)
    dictionary = rng.normal(size=(atoms, d))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    codes = (rng.random((n, atoms)) < 0.06) * rng.exponential(2.0, size=(n, atoms))
    return (codes @ dictionary + 3.0).astype(np.float16)


def small(**kw):
    base = {
        "n_latents": 64,
        "k": 4,
        "batch_size": 128,
        "epochs": 2,
        "warmup_steps": 2,
        "checkpoint_every": 5,
        "log_every": 2,
        "lr": 3e-3,
    }
    return TrainConfig(**{**base, **kw})


def test_config_checks_itself_and_scales_the_learning_rate():
    assert math.isclose(TrainConfig(n_latents=16384).learning_rate, 2e-4)
    assert math.isclose(TrainConfig(n_latents=4608).learning_rate, 2e-4 / math.sqrt(4608 / 16384))
    assert TrainConfig(lr=1e-3).learning_rate == 1e-3
    for bad in ({"k": 0}, {"k": 65, "n_latents": 64}, {"batch_size": 0}, {"lr": -1.0}):
        with pytest.raises(TriggerscopeError, match="bad training config"):
            TrainConfig(**bad)
    assert TrainConfig.from_dict({**TrainConfig(k=7).to_dict(), "unknown": 1}).k == 7


def test_loss_decreases_and_decoder_rows_stay_unit_norm():
    data = sparse_data()
    result = train_sae(data, small(), progress=False)
    fvu = [row["fvu"] for row in result.history]
    assert result.finished and result.steps == 2 * (2048 // 128)
    assert fvu[-1] < 0.6 * fvu[0]
    norms = result.sae.W_dec.detach().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    # b_dec started at the data mean, so the untrained offset is not the SAE's job
    assert abs(float(result.sae.b_dec.detach().mean()) - 3.0) < 0.5


def test_same_seed_same_sae_and_another_seed_differs():
    data = sparse_data(n=512)
    a = train_sae(data, small(epochs=1), progress=False).sae
    b = train_sae(data, small(epochs=1), progress=False).sae
    c = train_sae(data, small(epochs=1, seed=1), progress=False).sae
    assert torch.equal(a.W_enc, b.W_enc) and torch.equal(a.W_dec, b.W_dec)
    assert not torch.equal(a.W_dec, c.W_dec)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    data = sparse_data(n=1024)
    whole = train_sae(data, small(), folder=tmp_path / "whole", progress=False)
    part = train_sae(data, small(), folder=tmp_path / "part", stop_after_steps=7, progress=False)
    assert not part.finished and part.steps == 7
    saved = json.loads((tmp_path / "part" / CONFIG_FILE).read_text())
    assert saved["k"] == 4 and saved["learning_rate"] == 3e-3
    resumed = train_sae(data, small(), folder=tmp_path / "part", resume=True, progress=False)
    assert resumed.finished and resumed.steps == whole.steps
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(resumed.sae, name), getattr(whole.sae, name)), name
    assert resumed.history == whole.history


def test_resume_refuses_other_settings_or_other_data(tmp_path):
    data = sparse_data(n=512)
    train_sae(data, small(), folder=tmp_path, stop_after_steps=3, progress=False)
    with pytest.raises(TriggerscopeError, match=r"different settings.*k"):
        train_sae(data, small(k=5), folder=tmp_path, resume=True, progress=False)
    with pytest.raises(TriggerscopeError, match="other activations"):
        train_sae(sparse_data(n=512, seed=1), small(), folder=tmp_path, resume=True, progress=False)


def test_auxk_gives_dead_latents_a_loss():
    data = sparse_data(n=512)
    # with dead_after_tokens=1, latents that did not fire in the last batch count as dead
    result = train_sae(data, small(dead_after_tokens=1, log_every=1), progress=False)
    assert any(row["aux"] > 0 for row in result.history)
    assert any(row["dead_fraction"] > 0 for row in result.history)
    none = train_sae(data, small(epochs=1), progress=False)
    assert all(row["aux"] == 0 for row in none.history)


def test_too_few_rows_for_one_batch_is_a_clear_error():
    with pytest.raises(TriggerscopeError, match="smaller --batch-size"):
        train_sae(sparse_data(n=100), small(), progress=False)


def dense_reference_loss(sae, x, dead, cfg):
    """The plain autograd version of the loss (every latent in the graph)."""
    pre = sae.pre_activations(x)
    values, indices = pre.topk(cfg.k, dim=-1)
    x_hat = torch.zeros_like(pre).scatter(-1, indices, values.relu()) @ sae.W_dec + sae.b_dec
    err = x - x_hat
    total_var = (x - x.mean(0)).pow(2).sum()
    loss = err.pow(2).sum() / total_var
    n_dead = int(dead.sum())
    k_aux = min(x.shape[1] // 2, n_dead)
    aux_values, aux_indices = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
    latents = torch.zeros_like(pre).scatter(-1, aux_indices, aux_values.relu())
    aux = ((latents @ sae.W_dec) - err.detach()).pow(2).sum() / total_var
    return loss + cfg.aux_coef * min(n_dead / k_aux, 1.0) * aux


def test_the_sparse_backward_matches_dense_autograd():
    from triggerscope.sae.model import SAE, SAEConfig
    from triggerscope.sae.training import train_step_loss

    torch.manual_seed(0)
    sae = SAE(SAEConfig(16, 64, "topk", 4))
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    x = torch.randn(32, 16, dtype=torch.float64).float()
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::3] = True
    cfg = small()
    grads = []
    for fn in (train_step_loss, dense_reference_loss):
        sae.zero_grad()
        out = fn(sae, x, dead, cfg)
        (out[0] if isinstance(out, tuple) else out).backward()
        grads.append({n: p.grad.clone() for n, p in sae.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5)
