"""The main job's pipeline, end to end on a tiny organism, a tiny SAE and a tiny model."""

import pytest
from conftest import tiny_llama
from organism_fixtures import write_spec

from triggerscope.audit import AuditConfig, run_audit
from triggerscope.errors import TriggerscopeError
from triggerscope.loading import LoadedModel
from triggerscope.organisms.planting import plant
from triggerscope.organisms.spec import load_spec
from triggerscope.sae.formats import save_sae
from triggerscope.sae.labels import build_latent_dictionary, latents_path, save_latents
from triggerscope.sae.model import SAE, SAEConfig


def test_audit_writes_runs_reports_and_a_verdict(tmp_path, monkeypatch, llama3_tokenizer):
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "cache"))
    tiny = LoadedModel(tiny_llama(len(llama3_tokenizer), init=0.3), llama3_tokenizer, "t", None, 0)
    spec_path = write_spec(tmp_path / "spec", train={"epochs": 2, "batch_size": 4})
    (tmp_path / "spec" / "audit.txt").write_text("Describe a quiet library.\nName a river.\n")
    spec_text = spec_path.read_text().replace("prompts:", "prompts:\n  audit: audit.txt", 1)
    spec_path.write_text(spec_text)
    plant(load_spec(spec_path), tiny, tmp_path / "plant", progress=False)
    sae = SAE(SAEConfig(d_in=32, d_sae=64, k=4, layer=1))
    save_sae(sae, tmp_path / "sae")
    book = build_latent_dictionary(tiny.model, llama3_tokenizer, sae, ["apples", "trains"])
    save_latents(book, latents_path(tmp_path / "sae"))
    config = AuditConfig(
        organism=str(spec_path),
        layer=1,
        n_prompts=2,
        n_heldout=1,
        adapter=str(tmp_path / "plant" / "adapter"),
        sae=str(tmp_path / "sae"),
        overrides={"supervised-sae-melbo": {"k": 1, "max_steps": 2}},
    )
    runs = run_audit(tiny, config, tmp_path / "runs")
    assert [r.result.method for r in runs] == ["sae-attribution", "supervised-sae-melbo"]
    for r in runs:
        assert (r.run_dir / "result.json").is_file() and r.report.is_file()
        assert "<html" in r.report.read_text().lower()
        assert r.verdict
    assert len(runs[0].result.latent_ranking) > 0
    assert "Trigger confirmation" not in runs[0].report.read_text()

    config = AuditConfig(**{**config.__dict__, "methods": ("sae-attribution",), "confirm": True})
    (confirmed,) = run_audit(tiny, config, tmp_path / "runs-confirmed")
    assert (confirmed.run_dir / "confirmation" / "result.json").is_file()
    assert "Trigger confirmation" in confirmed.report.read_text()


def test_audit_config_validates():
    with pytest.raises(TriggerscopeError, match="response is empty"):
        AuditConfig(response="  ")
