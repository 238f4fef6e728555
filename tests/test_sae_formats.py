"""SAE layouts on disk: every loader checked against a hand computation of its own convention."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.sae.formats import detect_layout, load_sae, save_sae
from triggerscope.sae.model import SAE, SAEConfig
from triggerscope.safetensors_io import load_state_dict, save_state_dict

D_IN, D_SAE = 8, 16


def random_sae(arch="topk", scale=1.0, layer=3, b_dec_in=True):
    cfg = SAEConfig(
        d_in=D_IN,
        d_sae=D_SAE,
        architecture=arch,
        k=4 if arch == "topk" else None,
        apply_b_dec_to_input=b_dec_in,
        input_scale=scale,
        model_name="tiny-llama",
        layer=layer,
        metadata={"context_size": 64, "trained_tokens": 1000},
    )
    sae = SAE(cfg)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        if arch == "jumprelu":
            sae.threshold.copy_(torch.rand(D_SAE) * 0.5)
    return sae


@pytest.mark.parametrize(("arch", "scale"), [("topk", 1.0), ("topk", 2.5), ("jumprelu", 0.7)])
def test_saelens_round_trip_float32_is_exact_up_to_rounding(tmp_path, arch, scale):
    sae = random_sae(arch, scale)
    save_sae(sae, tmp_path / "sae", dtype="float32")
    loaded = load_sae(tmp_path / "sae")
    x = torch.randn(20, D_IN) * 3
    assert torch.allclose(loaded.encode(x), sae.encode(x), atol=1e-5)
    assert torch.allclose(loaded(x), sae(x), atol=1e-5)
    assert loaded.cfg.layer == 3 and loaded.cfg.model_name == "tiny-llama"
    assert loaded.cfg.input_scale == 1.0  # folded into the weights
    assert loaded.cfg.metadata["trained_tokens"] == 1000


def test_saelens_files_follow_the_spec(tmp_path):
    save_sae(random_sae("topk", 2.0), tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 4
    assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"]) == (D_IN, D_SAE, "float16")
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["model_name"] == "tiny-llama"
    assert cfg["metadata"]["hook_name"] == "blocks.3.hook_resid_post"
    assert cfg["metadata"]["context_size"] == 64
    tensors = load_state_dict(tmp_path / "sae" / "sae_weights.safetensors")
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    assert shapes == {"W_enc": (8, 16), "b_enc": (16,), "W_dec": (16, 8), "b_dec": (8,)}
    assert all(v.dtype == torch.float16 for v in tensors.values())
    assert detect_layout(tmp_path / "sae") == "saelens"


def test_float16_round_trip_is_close(tmp_path):
    sae = random_sae("topk", 1.5)
    save_sae(sae, tmp_path / "sae")
    x = torch.randn(50, D_IN)
    assert torch.allclose(load_sae(tmp_path / "sae")(x), sae(x), atol=2e-2)


def test_hand_written_saelens_folder_matches_hand_computation(tmp_path):
    w_enc, b_enc = torch.randn(D_IN, D_SAE), torch.randn(D_SAE)
    w_dec, b_dec = torch.randn(D_SAE, D_IN), torch.randn(D_IN)
    folder = tmp_path / "standard"
    save_state_dict(
        {"W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec, "b_dec": b_dec},
        folder / "sae_weights.safetensors",
    )
    cfg = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32"}
    cfg["apply_b_dec_to_input"] = True
    cfg["metadata"] = {"model_name": "m", "hook_name": "blocks.2.hook_resid_post"}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(folder)
    x = torch.randn(10, D_IN)
    acts = ((x - b_dec) @ w_enc + b_enc).relu()
    assert torch.allclose(sae.encode(x), acts, atol=1e-5)
    assert torch.allclose(sae(x), acts @ w_dec + b_dec, atol=1e-4)
    assert sae.cfg.layer == 2


def write_llama_scope(folder, hp_extra=None, norm=4.0):
    torch.manual_seed(1)
    raw = {
        "encoder.weight": torch.randn(D_SAE, D_IN),
        "encoder.bias": torch.randn(D_SAE) * 0.3,
        "decoder.weight": torch.randn(D_IN, D_SAE) * torch.linspace(0.5, 2.0, D_SAE),
        "decoder.bias": torch.randn(D_IN),
    }
    save_state_dict(raw, folder / "checkpoints" / "final.safetensors")
    hp = {
        "d_model": D_IN,
        "d_sae": D_SAE,
        "hook_point_in": "blocks.5.hook_resid_post",
        "hook_point_out": "blocks.5.hook_resid_post",
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.4,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": norm, "out": norm},
        "sparsity_include_decoder_norm": True,
        "apply_decoder_bias_to_pre_encoder": False,
        "use_decoder_bias": True,
        "top_k": 50,
        **(hp_extra or {}),
    }
    (folder / "hyperparams.json").write_text(json.dumps(hp))
    return raw


def test_llama_scope_matches_lm_saes_forward(tmp_path):
    folder = tmp_path / "Llama3_1-8B-Base-L5R-8x"
    raw = write_llama_scope(folder)
    sae = load_sae(folder)
    # lm_saes, dataset-wise: scale the input to norm sqrt(d_model), gate pre-activations
    # times decoder column norms at the threshold, decode, scale back.
    x = torch.randn(30, D_IN) * 4
    s = math.sqrt(D_IN) / 4.0
    hidden = (x * s) @ raw["encoder.weight"].T + raw["encoder.bias"]
    dec_norm = raw["decoder.weight"].norm(dim=0)
    mask = hidden * dec_norm > 0.4
    feats = hidden * mask
    recon = (feats @ raw["decoder.weight"].T + raw["decoder.bias"]) / s
    assert mask.any() and (~mask).any()
    assert torch.equal(sae.encode(x) > 0, mask)
    assert torch.allclose(sae.encode(x), feats * dec_norm, atol=1e-4)  # unit-norm decoder rows
    assert torch.allclose(sae(x), recon, atol=1e-4)
    assert sae.cfg.layer == 5 and sae.cfg.architecture == "jumprelu"
    assert sae.cfg.model_name == "meta-llama/Llama-3.1-8B"
    assert sae.cfg.input_scale == pytest.approx(s)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(D_SAE), atol=1e-5)


def test_llama_scope_resaved_as_saelens_keeps_its_forward(tmp_path):
    write_llama_scope(tmp_path / "ls")
    sae = load_sae(tmp_path / "ls")
    save_sae(sae, tmp_path / "sl", dtype="float32")
    x = torch.randn(30, D_IN) * 4
    assert torch.allclose(load_sae(tmp_path / "sl")(x), sae(x), atol=1e-4)


def test_gemma_scope_params_npz(tmp_path):
    folder = tmp_path / "gemma-scope-2b-pt-res" / "layer_7" / "width_16k" / "average_l0_9"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    p = {
        "W_enc": rng.normal(size=(D_IN, D_SAE)).astype(np.float32),
        "W_dec": rng.normal(size=(D_SAE, D_IN)).astype(np.float32),
        "b_enc": rng.normal(size=D_SAE).astype(np.float32),
        "b_dec": rng.normal(size=D_IN).astype(np.float32),
        "threshold": rng.uniform(0, 1, size=D_SAE).astype(np.float32),
    }
    np.savez(folder / "params.npz", **p)
    sae = load_sae(folder / "params.npz")  # a file inside the folder works too
    x = torch.randn(25, D_IN)
    pre = x @ torch.from_numpy(p["W_enc"]) + torch.from_numpy(p["b_enc"])
    acts = pre.relu() * (pre > torch.from_numpy(p["threshold"]))
    assert torch.allclose(sae.encode(x), acts, atol=1e-5)
    recon = acts @ torch.from_numpy(p["W_dec"]) + torch.from_numpy(p["b_dec"])
    assert torch.allclose(sae(x), recon, atol=1e-4)
    assert sae.cfg.layer == 7 and sae.cfg.model_name == "google/gemma-2-2b"
    mlp = tmp_path / "gemma-scope-2b-pt-mlp" / "layer_7"
    mlp.mkdir(parents=True)
    np.savez(mlp / "params.npz", **p)
    assert load_sae(mlp).cfg.layer is None  # not the residual stream


def test_sparsify_topk(tmp_path):
    folder = tmp_path / "run" / "layers.4"
    enc_w, enc_b = torch.randn(D_SAE, D_IN), torch.randn(D_SAE) * 0.1
    w_dec, b_dec = torch.randn(D_SAE, D_IN), torch.randn(D_IN)
    save_state_dict(
        {"encoder.weight": enc_w, "encoder.bias": enc_b, "W_dec": w_dec, "b_dec": b_dec},
        folder / "sae.safetensors",
    )
    cfg = {"activation": "topk", "expansion_factor": 2, "normalize_decoder": True, "k": 3}
    cfg |= {"num_latents": 0, "multi_topk": False, "skip_connection": False, "d_in": D_IN}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(folder)
    x = torch.randn(12, D_IN)
    pre = ((x - b_dec) @ enc_w.T + enc_b).relu()
    vals, idx = pre.topk(3, dim=-1)
    acts = torch.zeros_like(pre).scatter_(-1, idx, vals)
    assert torch.allclose(sae.encode(x), acts, atol=1e-5)
    assert torch.allclose(sae(x), acts @ w_dec + b_dec, atol=1e-4)
    assert sae.cfg.layer == 4 and sae.cfg.k == 3
    with pytest.raises(TriggerscopeError, match=r"holds several SAEs \(layers.4\)"):
        load_sae(tmp_path / "run")


def test_bad_folders_and_files(tmp_path):
    with pytest.raises(TriggerscopeError, match="does not exist"):
        load_sae(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    with pytest.raises(TriggerscopeError, match="not an SAE folder: expected SAELens"):
        load_sae(tmp_path / "junk")
    save_sae(random_sae(), tmp_path / "sae")
    (tmp_path / "sae" / "sae_weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(TriggerscopeError, match="not a readable safetensors"):
        load_sae(tmp_path / "sae")
    (tmp_path / "sae" / "sae_weights.safetensors").unlink()
    with pytest.raises(TriggerscopeError, match="weights file is missing"):
        load_sae(tmp_path / "sae")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "params.npz").write_bytes(b"not a zip")
    with pytest.raises(TriggerscopeError, match=r"not a readable \.npz"):
        load_sae(tmp_path / "g")


def test_bad_configs(tmp_path):
    save_sae(random_sae(), tmp_path / "a")
    cfg_path = tmp_path / "a" / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "d_sae": 17}))
    with pytest.raises(TriggerscopeError, match=r"W_enc has shape \(8, 16\), expected \(8, 17\)"):
        load_sae(tmp_path / "a")
    cfg_path.write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(TriggerscopeError, match="'gated' is not supported"):
        load_sae(tmp_path / "a")
    cfg_path.write_text("{not json")
    with pytest.raises(TriggerscopeError, match="not readable JSON"):
        load_sae(tmp_path / "a")
    write_llama_scope(tmp_path / "tc", {"hook_point_out": "blocks.5.hook_mlp_out"})
    with pytest.raises(TriggerscopeError, match="transcoder"):
        load_sae(tmp_path / "tc")
    write_llama_scope(tmp_path / "nn", {"dataset_average_activation_norm": {"in": 0}})
    with pytest.raises(TriggerscopeError, match="positive 'in'"):
        load_sae(tmp_path / "nn")


def test_d_model_must_fit(tmp_path):
    save_sae(random_sae(), tmp_path / "sae")
    with pytest.raises(TriggerscopeError, match="reads vectors of size 8 but the model's d_model"):
        load_sae(tmp_path / "sae", d_model=32)
    with pytest.raises(TriggerscopeError, match="does not fit float16"):
        big = random_sae()
        with torch.no_grad():
            big.b_dec[0] = 1e6
        save_sae(big, tmp_path / "big")


SAELENS_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from safetensors.torch import load_file, save_file
    from sae_lens import SAE
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig
    ours, theirs, out = sys.argv[1:4]
    x = load_file(out + "/x.safetensors")["x"]
    sae = SAE.load_from_disk(ours, dtype="float32")
    jump = SAE.load_from_disk(ours + "-jumprelu", dtype="float32")
    cfg = TopKSAEConfig(d_in=8, d_sae=16, k=3, apply_b_dec_to_input=True)
    cfg.metadata.model_name = "m"
    cfg.metadata.hook_name = "blocks.1.hook_resid_post"
    torch.manual_seed(0)
    mine = TopKSAE(cfg)
    with torch.no_grad():
        for p in mine.parameters():
            p.copy_(torch.randn_like(p))
    mine.save_model(theirs)
    save_file({
        "acts": sae.encode(x).contiguous(), "recon": sae(x).contiguous(),
        "jump_acts": jump.encode(x).contiguous(), "jump_recon": jump(x).contiguous(),
        "their_acts": mine.encode(x).contiguous(), "their_recon": mine(x).contiguous(),
    }, out + "/y.safetensors")
    """
)


def _saelens_python():
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        return os.environ.get("TRIGGERSCOPE_SAELENS_PYTHON")
    return sys.executable


@pytest.mark.skipif(
    _saelens_python() is None,
    reason="sae_lens not importable (set TRIGGERSCOPE_SAELENS_PYTHON to a python that has it)",
)
def test_saelens_itself_reads_our_files_and_we_read_its(tmp_path):
    sae = random_sae("topk", 2.0)
    save_sae(sae, tmp_path / "ours", dtype="float32")
    jump = random_sae("jumprelu", 0.5, b_dec_in=False)
    save_sae(jump, tmp_path / "ours-jumprelu", dtype="float32")
    x = torch.randn(20, D_IN) * 3
    save_state_dict({"x": x}, tmp_path / "x.safetensors")
    cmd = [
        _saelens_python(),
        "-c",
        SAELENS_SCRIPT,
        str(tmp_path / "ours"),
        str(tmp_path / "theirs"),
    ]
    subprocess.run([*cmd, str(tmp_path)], check=True, capture_output=True, timeout=300)
    y = load_state_dict(tmp_path / "y.safetensors")
    assert torch.allclose(y["acts"], sae.encode(x), atol=1e-5)
    assert torch.allclose(y["recon"], sae(x), atol=1e-4)
    assert torch.allclose(y["jump_acts"], jump.encode(x), atol=1e-5)
    assert torch.allclose(y["jump_recon"], jump(x), atol=1e-4)
    theirs = load_sae(tmp_path / "theirs")
    assert theirs.cfg.layer == 1 and theirs.cfg.k == 3
    assert torch.allclose(theirs.encode(x), y["their_acts"], atol=1e-5)
    assert torch.allclose(theirs(x), y["their_recon"], atol=1e-4)
