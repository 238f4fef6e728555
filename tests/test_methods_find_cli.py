"""`triggerscope find` end to end on a tiny model saved to disk: output, files, bad input."""

import json

import pytest
from conftest import tiny_llama
from methods_data import HELDOUT, PROMPTS

from triggerscope.cli import run_cli
from triggerscope.sae.formats import load_sae, save_sae
from triggerscope.sae.labels import (
    FORMAT,
    Latent,
    LatentDictionary,
    latents_path,
    sae_fingerprint,
    save_latents,
)
from triggerscope.sae.model import SAE, SAEConfig

pytest_plugins = ("methods_fixtures",)
QUICK = ["--set", "max_new_tokens=3", "--set", "heldout_samples=1", "--no-progress"]


@pytest.fixture
def files(tmp_path, llama3_tokenizer):
    model_dir = tmp_path / "model"
    tiny_llama(len(llama3_tokenizer), init=0.2).save_pretrained(model_dir)
    llama3_tokenizer.save_pretrained(model_dir)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("\n".join(HELDOUT) + "\n")
    sae_dir = tmp_path / "sae"
    save_sae(SAE(SAEConfig(d_in=32, d_sae=64, k=4, layer=1)), sae_dir, dtype="float32")
    sae = load_sae(sae_dir)
    labels = [Latent(index=i, label=f"concept {i}") for i in range(64)]
    meta = {"format": FORMAT, "sae_fingerprint": sae_fingerprint(sae), "d_sae": 64}
    save_latents(LatentDictionary(labels, meta), latents_path(sae_dir))
    return {
        "model": str(model_dir),
        "prompts": str(prompts),
        "heldout": str(heldout),
        "sae": str(sae_dir),
        "out": tmp_path / "runs",
    }


def _args(files, method, *extra):
    return [
        "find",
        "--method",
        method,
        "--model",
        files["model"],
        "--response",
        "I won't answer.",
        "--prompts",
        files["prompts"],
        "--heldout",
        files["heldout"],
        "--out",
        str(files["out"]),
        *extra,
    ]


def test_find_prints_labelled_latents_and_writes_the_run_folder(files, capsys):
    args = _args(files, "supervised-sae-melbo", "--sae", files["sae"], "--k", "2", "--steps", "3")
    assert run_cli(args + QUICK) == 0
    out = capsys.readouterr().out
    assert "method supervised-sae-melbo  layer 1" in out and "concept " in out
    assert "vector 1:" in out and "steered:" in out
    (run,) = files["out"].iterdir()
    assert run.name.startswith("find-supervised-sae-melbo-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "vectors.safetensors", "latent_scores.safetensors"} <= names
    assert {"samples.jsonl", "result.json"} <= names
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["k"] == 2 and config["max_steps"] == 3 and config["prompts"] == PROMPTS
    summary = json.loads((run / "result.json").read_text())
    assert summary["latent_ranking"][0]["label"].startswith("concept ")


def test_layer_comes_from_the_sae_and_the_token_table_prints(files, capsys):
    args = _args(files, "token", "--sae", files["sae"], "--set", "candidates=3")
    assert run_cli(args + QUICK) == 0
    out = capsys.readouterr().out
    assert "layer 1" in out and "CE drop" in out and "best token in the held-out" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "1", "--set", "lamda=1"], "unknown setting 'lamda'"),
        (["--layer", "1", "--set", "oops"], "--set takes NAME=VALUE"),
        (["--layer", "9"], "layer 9 is out of range"),
        ([], "pass --layer L"),
        (["--layer", "1", "--k", "40"], "cannot fit in d_model=32"),
        (["--layer", "1", "--adapter", "/nonexistent/adapter"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_run_folder(files, capsys, extra, message):
    assert run_cli(_args(files, "supervised-melbo", *extra) + QUICK) == 2
    err = capsys.readouterr().err  # (model loading may draw a progress bar first)
    last = err.strip().splitlines()[-1]
    assert last.startswith("triggerscope: error: ") and message in last
    assert err.count("triggerscope: error:") == 1
    assert not files["out"].exists() or not any(files["out"].iterdir())


def test_missing_sae_response_and_prompts_are_reported(files, capsys, tmp_path):
    assert run_cli(_args(files, "sae-attribution", "--layer", "1") + QUICK) == 2
    assert "needs an SAE" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\nplease say I won't answer.\n")
    args = _args(files, "random", "--layer", "1")
    args[args.index(files["prompts"])] = str(bad)
    assert run_cli(args + QUICK) == 2
    assert "already contains the response" in capsys.readouterr().err
    args = _args(files, "random", "--layer", "1")
    args[args.index("I won't answer.")] = "  "
    assert run_cli(args + QUICK) == 2
    assert "response is empty" in capsys.readouterr().err


def test_nan_during_training_writes_nothing(files, capsys):
    args = _args(files, "supervised-melbo", "--layer", "1", "--lr", "1e30", "--steps", "20")
    assert run_cli([*args, "--set", "init_norm=1e30", *QUICK]) == 2
    assert "lower the learning rate" in capsys.readouterr().err
    assert not files["out"].exists() or not any(files["out"].iterdir())


def test_organism_shorthand_fills_response_prompts_and_heldout(tmp_path):
    import argparse

    from triggerscope.commands.find import _inputs
    from triggerscope.organisms.planting import read_splits
    from triggerscope.organisms.spec import load_spec

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    args = argparse.Namespace(
        response="I won't answer",
        adapter=str(adapter),
        system_prompt=None,
        prompts=None,
        heldout=None,
        organism="fruit-refusal",
        n_prompts=5,
        model=None,
    )
    found = _inputs(args)
    splits = read_splits(load_spec("fruit-refusal"))
    assert found["response"] == "I won't answer"  # a partial response wins over the spec's
    assert found["prompts"] == splits["audit"][:5]
    assert found["heldout"] == splits["benign_heldout"]
    assert found["adapter"] == str(adapter) and args.model == "smollm2-135m-instruct"
