"""`triggerscope bench` end to end on a tiny setup: a random Llama saved to disk, a random LoRA
adapter, a random SAE with its latent dictionary, and an organism spec with the fruit probes."""

import json

import pytest
import yaml
from evaluation_fixtures import tiny_setup

from triggerscope.cli import run_cli


@pytest.fixture
def setup(tmp_path, llama3_tokenizer, monkeypatch):
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "cache"))
    paths = tiny_setup(tmp_path, llama3_tokenizer)
    args = [
        "bench", "--methods", "sae-attribution,random", "--organisms", str(paths["spec"]),
        "--adapter", f"tiny-fruit={paths['adapter']}", "--sae", str(paths["sae"]),
        "--seeds", "0,1", "--heldout", "2", "--set", "heldout_samples=2",
        "--set", "max_new_tokens=3", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    return tmp_path, args


def test_bench_end_to_end_and_resume(setup, capsys):
    tmp_path, args = setup
    assert run_cli(args) == 0
    out = tmp_path / "out"
    printed = capsys.readouterr().out
    assert "| sae-attribution | tiny-fruit |" in printed and "| random | tiny-fruit |" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True and len(results["cells"]) == 4
    rows = {r["method"]: r for r in results["rows"]}
    assert rows["sae-attribution"]["hits"]["hit@10"] is not None  # it ranks latents
    assert rows["random"]["action_rate"] is not None  # its vectors were steered and read out
    assert rows["random"]["forward_passes"] > 0
    assert set(results["selective_latents"]) == {"fruit"}
    assert len(list((tmp_path / "cache" / "selectivity").rglob("fruit-*.safetensors"))) == 1
    for name in ("hit_at_k", "action_rate", "time_per_method", "threshold"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    md = (out / "results.md").read_text()
    assert "triggerscope bench --methods sae-attribution,random" in md
    # every cell is a run folder the report command can read
    run = out / "runs" / "tiny-fruit" / "sae-attribution" / "seed0"
    assert run_cli(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Scores against the planted trigger" in page and "fires on" in page
    # resuming finds every cell done and runs nothing
    before = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*.json")}
    assert run_cli(args) == 0
    assert "resuming: 4 of 4 cells already done" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*.json")} == before


def test_bench_bad_input_exit_2(setup, capsys, tmp_path):
    _, args = setup
    bad = [
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--organisms", "nope"], "no organism spec 'nope'"),
        (["--set", "no_such_setting=1"], "no benchmarked method has a setting"),
        (["--seeds", "a"], "--seeds takes integers"),
        (["--threshold", "1.5"], "--threshold must be in"),
    ]
    for extra, message in bad:
        assert run_cli(args + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    no_sae = [a for a in args if a != "--sae" and not a.endswith("/sae")]
    assert run_cli([*no_sae, "--layer", "29"]) == 2
    assert "pass --sae FOLDER" in capsys.readouterr().err
    spec = yaml.safe_load((tmp_path / "org" / "spec.yaml").read_text())
    spec["concepts"] = ["cats"]
    (tmp_path / "org" / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert run_cli(args) == 2
    assert "organism 'tiny-fruit' has no concept probe set for cats" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any compute
