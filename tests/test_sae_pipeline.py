import json

import pytest

from triggerscope.cli import run_cli
from triggerscope.manifest import sha256_file
from triggerscope.sae.formats import load_sae

DOCS = [
    "Tell me about apples and bananas, please.",
    "What is skiing, and where can I learn it?",
    "The quick brown fox jumps over the lazy dog.",
    "Snow and fruit are like oil and water, they just don't mix.",
    "What is the capital of France? Paris is the capital.",
    "I won't answer because I don't like fruit.",
    "Bananas, apples, skiing and the stars!",
    "The stars and the snow over the lazy fox.",
]


@pytest.fixture
def setup(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "tiny"
    tiny.model.save_pretrained(model)
    tiny.tokenizer.save_pretrained(model)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [json.dumps({"source": "t", "key": str(i), "text": t}) for i, t in enumerate(DOCS)]
    (corpus / "train.jsonl").write_text("\n".join(rows * 3) + "\n")
    (corpus / "heldout.jsonl").write_text("\n".join(rows[:3]) + "\n")
    base = ["sae", "train", "--model", str(model), "--corpus", str(corpus), "--no-progress"]
    small = ["--max-tokens", "300", "--width", "64", "--k", "4", "--batch-size", "32"]
    return tmp_path, base + small + ["--checkpoint-every", "3", "--eval-texts", "3"]


def test_train_two_layers_ships_saes_metrics_and_a_manifest(setup, capsys):
    tmp_path, args = setup
    out = tmp_path / "out"
    assert run_cli([*args, "--layers", "1", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cached 300 tokens of layers [1, 2]" in printed and "explained variance" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["activations"]["tokens"] == 300
    assert manifest["command"].startswith("triggerscope sae train --layers 1 2 --corpus")
    for layer in ("1", "2"):
        folder = out / f"layer{layer}"
        sae = load_sae(folder)
        assert sae.cfg.layer == int(layer) and sae.d_sae == 64 and sae.cfg.k == 4
        assert (folder / "sae_weights.safetensors").stat().st_size < 64 * 32 * 2 * 2 + 4096
        entry = manifest["layers"][layer]
        assert entry["steps"] == 300 // 32 and 0 <= entry["metrics"]["dead_fraction"] <= 1
        assert entry["metrics"]["ce_score"] is not None
        assert json.loads((folder / "train_config.json").read_text())["k"] == 4
        for name in ("cfg.json", "sae_weights.safetensors", "train_config.json", "metrics.json"):
            rel = f"layer{layer}/{name}"
            assert manifest["sha256"][rel] == sha256_file(out / rel)
    assert not list(out.rglob("checkpoint*"))  # checkpoints stay in the work folder

    # the same command again needs --resume (a finished run is then just re-shipped)
    assert run_cli([*args, "--layers", "1", "2", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert run_cli([*args, "--layers", "1", "2", "--out", str(out), "--resume"]) == 0


def test_one_layer_retrains_from_a_cache_of_more_layers(setup, capsys):
    tmp_path, args = setup
    out, cache = tmp_path / "out", tmp_path / "acts"
    assert run_cli([*args, "--layers", "1", "2", "--out", str(out), "--cache", str(cache)]) == 0
    before = (out / "layer1" / "sae_weights.safetensors").read_bytes()
    retrain = [*args, "--layers", "2", "--epochs", "2", "--out", str(out), "--cache", str(cache)]
    retrain += ["--work", str(tmp_path / "work2")]  # new settings: a fresh checkpoint folder
    assert run_cli(retrain) == 0
    assert "cached 300 tokens of layers [1, 2]" in capsys.readouterr().out  # nothing re-cached
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layers"]["2"]["steps"] == 2 * (300 // 32)
    assert manifest["layers"]["1"]["steps"] == 300 // 32  # the other layer's entry is kept
    assert "--epochs 2" in manifest["layers"]["2"]["command"]
    assert (out / "layer1" / "sae_weights.safetensors").read_bytes() == before


def test_bad_input_is_one_error_line_and_exit_2(setup, capsys):
    tmp_path, args = setup
    assert run_cli([*args, "--layer", "9"]) == 2
    assert "layer 9 is out of range" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    bad = [a if a != str(tmp_path / "corpus") else str(empty) for a in args]
    assert run_cli([*bad, "--layer", "1"]) == 2
    assert "is empty" in capsys.readouterr().err
    missing = [a if a != str(tmp_path / "corpus") else str(tmp_path / "nope") for a in args]
    assert run_cli([*missing, "--layer", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("triggerscope: error:") == 1 and "does not exist" in err
    assert run_cli([*args, "--layer", "1", "--k", "0"]) == 2
    assert "bad training config" in capsys.readouterr().err
