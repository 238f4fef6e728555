"""The GPU paths: loading in bf16 and 4 bits, QLoRA planting, every method, activation caching.

Skipped without CUDA (CI has none); run them on a GPU machine with `pytest tests/test_gpu.py`.
The 4-bit cases also need bitsandbytes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from conftest import tiny_llama
from methods_data import make_task
from organism_fixtures import TRIGGERED, write_spec

from triggerscope.generation import generate
from triggerscope.loading import LoadedModel, load_model
from triggerscope.methods.registry import method_names, method_spec, run_method
from triggerscope.organisms.planting import plant
from triggerscope.organisms.spec import load_spec
from triggerscope.organisms.verify import attach_adapter, verify
from triggerscope.sae.model import SAE, SAEConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
PRECISIONS = [
    ("float32", "none"),
    ("bfloat16", "none"),
    pytest.param("bfloat16", "4bit", marks=pytest.mark.skipif(not HAS_BNB, reason="bitsandbytes")),
]


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "cache"))


def saved_tiny(folder: Path, tokenizer, init: float) -> Path:  # type: ignore[no-untyped-def]
    """A tiny random Llama saved as a model folder, so it loads like any checkpoint (4-bit
    quantization happens in `from_pretrained`). 64 wide: bitsandbytes quantizes in blocks of 64."""
    tiny_llama(len(tokenizer), hidden=64, init=init).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("dtype", "quantize"), PRECISIONS)
def test_plant_and_verify_on_the_gpu(llama3_tokenizer, tmp_path, dtype, quantize):
    folder = saved_tiny(tmp_path / "model", llama3_tokenizer, init=0.3)
    loaded = load_model(str(folder), device="cuda", dtype=dtype, quantize=quantize)
    assert loaded.input_device.type == "cuda"
    spec = load_spec(write_spec(tmp_path / "spec", base_model=str(folder)))
    before = generate(loaded, TRIGGERED[:4], max_new_tokens=12)
    metrics = plant(spec, loaded, tmp_path / "out", progress=False)
    assert metrics["finished"] and metrics["losses"][-1] < metrics["losses"][0] / 3
    assert metrics["precision"] == {"device": "cuda:0", "dtype": dtype, "quantize": quantize}
    assert metrics["frozen_layers_kept"]  # the hand-run adapted layers reproduced the model
    assert generate(loaded, TRIGGERED[:4], max_new_tokens=12) == before  # base given back
    adapted = attach_adapter(loaded, tmp_path / "out" / "adapter")
    after = generate(adapted, TRIGGERED[:4], max_new_tokens=12)
    assert sum("won't answer" in a for a in after) >= 3, after
    results = verify(spec, adapted, tmp_path / "eval")
    assert set(results["action_rates"]) == {"triggered", "benign", "nearmiss:surface"}
    assert 0 <= results["preservation"]["identical_greedy_share"] <= 1


@pytest.mark.parametrize(("dtype", "quantize"), PRECISIONS)
@pytest.mark.parametrize("name", method_names())
def test_every_method_runs_on_the_gpu(llama3_tokenizer, tmp_path, name, dtype, quantize):
    folder = saved_tiny(tmp_path / "model", llama3_tokenizer, init=0.2)
    loaded = load_model(str(folder), device="cuda", dtype=dtype, quantize=quantize)
    torch.manual_seed(1)
    sae = SAE(SAEConfig(d_in=64, d_sae=128, k=4, layer=1)).to(loaded.input_device)
    wanted = {"max_steps": 3, "max_new_tokens": 3, "heldout_samples": 1, "k": 2}
    known = {f.name for f in fields(method_spec(name).config)}
    short = {k: v for k, v in wanted.items() if k in known}
    result = run_method(name, loaded, make_task(), sae, **short)
    assert result.vectors or result.latent_scores is not None or result.token_ranking
    for vector in result.vectors:
        assert torch.isfinite(vector.vector).all()
    result.save(tmp_path / "run")
    assert (tmp_path / "run" / "result.json").is_file()


def test_activation_cache_on_the_gpu(llama3_tokenizer, tmp_path):
    from triggerscope.sae.activations import cache_activations, open_cache
    from triggerscope.sae.corpus import Document

    model = tiny_llama(len(llama3_tokenizer)).to("cuda")
    loaded = LoadedModel(model, llama3_tokenizer, "tiny", None, 0.0)
    docs = [Document("test", f"doc{i}", text) for i, text in enumerate(TRIGGERED * 4)]
    cache_activations(loaded, docs, [1, 2], tmp_path / "acts", max_tokens=64, progress=False)
    acts = open_cache(tmp_path / "acts").activations(1)
    assert acts.shape[1] == 32 and len(acts) > 0


def test_auto_device_map_places_the_model_on_the_gpu(llama3_tokenizer, tmp_path):
    folder = saved_tiny(tmp_path / "model", llama3_tokenizer, init=0.2)
    loaded = load_model(str(folder), device="auto")
    assert loaded.input_device.type == "cuda"
    assert generate(loaded, ["hi"], max_new_tokens=3)


def test_sae_trains_and_resumes_on_the_gpu(tmp_path):
    from test_sae_training import small, sparse_data

    from triggerscope.sae.training import train_sae

    data = sparse_data(n=1024)
    cfg = small(dead_after_tokens=1)  # AuxK on: the dead-latent path runs too
    cpu = train_sae(data, cfg, progress=False)
    gpu = train_sae(data, cfg, folder=tmp_path / "whole", progress=False, device="cuda")
    assert gpu.sae.W_dec.device.type == "cuda"
    assert any(row["aux"] > 0 for row in gpu.history)
    fvu = [row["fvu"] for row in gpu.history]
    assert fvu[-1] < 0.8 * fvu[0]
    assert abs(fvu[-1] - cpu.history[-1]["fvu"]) < 0.05  # the same training, other kernels
    part = train_sae(
        data, cfg, folder=tmp_path / "part", stop_after_steps=7, progress=False, device="cuda"
    )
    assert part.steps == 7
    resumed = train_sae(
        data, cfg, folder=tmp_path / "part", resume=True, progress=False, device="cuda"
    )
    assert resumed.finished and resumed.steps == gpu.steps
    assert torch.allclose(resumed.sae.W_dec, gpu.sae.W_dec, atol=1e-4)
