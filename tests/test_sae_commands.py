"""`triggerscope sae eval | label | show` on a tiny local model; bad input exits 2 with one line."""

import json

import pytest
import torch

from triggerscope.cli import run_cli
from triggerscope.sae.formats import save_sae
from triggerscope.sae.model import SAE, SAEConfig


def one_error_line(err: str, message: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("triggerscope: error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err


@pytest.fixture
def setup(tmp_path, tiny):
    model = tmp_path / "model"
    tiny.model.save_pretrained(model)
    tiny.tokenizer.save_pretrained(model)
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in=32, d_sae=64, architecture="topk", k=8, layer=1))
    save_sae(sae, tmp_path / "sae", dtype="float32")
    texts = tmp_path / "texts.txt"
    texts.write_text("Tell me about apples and bananas.\nSkiing in fresh snow.\nHello there!\n")
    return {"model": str(model), "sae": str(tmp_path / "sae"), "texts": str(texts)}


def test_eval_label_show(setup, tmp_path, capsys):
    base = ["--sae", setup["sae"], "--texts", setup["texts"], "--model", setup["model"]]
    out = tmp_path / "metrics.json"
    assert run_cli(["sae", "eval", *base, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "explained_variance" in printed and "ce_score" in printed
    metrics = json.loads(out.read_text())
    assert metrics["n_texts"] == 3 and metrics["layer"] == 1 and metrics["l0"] <= 8
    assert run_cli(["sae", "label", *base, "--top-k", "3"]) == 0
    assert "64 latents" in capsys.readouterr().out
    book = json.loads((tmp_path / "sae" / "latents.json").read_text())
    assert len(book["latents"]) == 64 and book["meta"]["n_texts"] == 3
    assert run_cli(["sae", "show", "--sae", setup["sae"], "5"]) == 0
    assert capsys.readouterr().out.startswith("latent 5 of 64: ")
    assert run_cli(["sae", "show", "--sae", setup["sae"], "--find", "snow"]) == 0
    assert "latents mention 'snow'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sae", "eval", "--sae", "JUNK"], "not an SAE folder"),
        (["sae", "eval", "--sae", "SAE", "--texts", "EMPTY"], "holds no text"),
        (["sae", "eval", "--sae", "SAE", "--layer", "9"], "out of range"),
        (["sae", "eval", "--sae", "WIDE"], "d_model is 32"),
        (["sae", "eval", "--sae", "BROKEN"], "not a readable safetensors"),
        (["sae", "label", "--sae", "SAE", "--neuronpedia", "EMPTY"], "names a latent"),
        (["sae", "show", "--sae", "SAE", "3"], "no latent dictionary"),
        (["sae", "show", "--sae", "SAE"], "give a latent index or --find"),
    ],
)
def test_bad_input_exits_2(setup, tmp_path, capsys, argv, message):
    (tmp_path / "junk").mkdir()
    (tmp_path / "empty.txt").write_text("\n")
    save_sae(SAE(SAEConfig(d_in=48, d_sae=8, architecture="topk", k=2, layer=1)), tmp_path / "w")
    save_sae(SAE(SAEConfig(d_in=32, d_sae=8, architecture="topk", k=2, layer=1)), tmp_path / "b")
    (tmp_path / "b" / "sae_weights.safetensors").write_bytes(b"\x00" * 40)
    paths = {
        "JUNK": str(tmp_path / "junk"),
        "SAE": setup["sae"],
        "EMPTY": str(tmp_path / "empty.txt"),
        "WIDE": str(tmp_path / "w"),
        "BROKEN": str(tmp_path / "b"),
    }
    argv = [paths.get(a, a) for a in argv]
    if argv[1] != "show":
        argv += ["--model", setup["model"]]
        if "--texts" not in argv and "--neuronpedia" not in argv:
            argv += ["--texts", setup["texts"]]
    assert run_cli(argv) == 2
    one_error_line(capsys.readouterr().err, message)


def test_show_latent_out_of_range(setup, capsys):
    base = ["--sae", setup["sae"], "--texts", setup["texts"], "--model", setup["model"]]
    assert run_cli(["sae", "label", *base]) == 0
    capsys.readouterr()
    assert run_cli(["sae", "show", "--sae", setup["sae"], "64"]) == 2
    one_error_line(capsys.readouterr().err, "latent 64 does not exist")


def test_concepts_ranks_latents_per_probe_set(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "cache"))  # selectivity cache
    probes = tmp_path / "probes"
    probes.mkdir()
    (probes / "fruit.pos.txt").write_text("I ate an apple.\nBananas are yellow.\nA ripe pear.\n")
    (probes / "fruit.neg.txt").write_text("The car is red.\nI like trains.\nRain again.\n")
    argv = ["sae", "concepts", "--sae", setup["sae"], "--probes", str(probes), "--top", "3"]
    out = tmp_path / "c.json"
    assert run_cli([*argv, "--model", setup["model"], "--out", str(out)]) == 0
    assert "fruit: " in capsys.readouterr().out
    record = json.loads(out.read_text())["concepts"]["fruit"]
    aurocs = [row["auroc"] for row in record["best"]]
    assert len(aurocs) == 3 and aurocs == sorted(aurocs, reverse=True)
    assert record["n_pos"] == 3 and 0 <= record["n_selective"] <= 64
    assert run_cli([*argv, "--concepts", "nope", "--model", setup["model"]]) == 2
    one_error_line(capsys.readouterr().err, "no concept probe set for 'nope'")
