"""The report of real run folders: `triggerscope find` on a tiny setup, and a saved result read
back field for field."""

import re

import torch
from evaluation_fixtures import synthetic_result, tiny_setup

from triggerscope.cli import run_cli
from triggerscope.reports.run_folder import load_run


def test_report_of_a_find_run(tmp_path, llama3_tokenizer, capsys, monkeypatch):
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "cache"))
    paths = tiny_setup(tmp_path, llama3_tokenizer)
    for method in ("sae-attribution", "token"):
        args = [
            "find", "--method", method, "--model", str(paths["model"]),
            "--adapter", str(paths["adapter"]), "--sae", str(paths["sae"]),
            "--response", "I won't answer", "--prompts", str(paths["audit"]),
            "--heldout", str(paths["heldout"]), "--set", "heldout_samples=2",
            "--set", "max_new_tokens=3", "--out", str(tmp_path / "runs"), "--no-progress",
        ]  # fmt: skip
        if method == "token":
            args += ["--set", "candidates=4"]
        assert run_cli(args) == 0, capsys.readouterr().err
        run = next((tmp_path / "runs").glob(f"find-{method}-*"))
        evaluate = ["evaluate", str(run), "--organism", str(paths["spec"])]
        assert run_cli([*evaluate, "--model", str(paths["model"])]) == 0
        printed = capsys.readouterr().out
        assert f"{method} on tiny-fruit (selective: AUROC >= 0.9)" in printed
        assert "first rank by threshold: >=0.6:" in printed
        assert (run / "evaluation.json").is_file()
        assert run_cli(["report", str(run)]) == 0
        page = (run / "report.html").read_text()
        assert "Verdict:" in page
        assert "<code>I won&#x27;t answer</code>" in page
        assert "Explain gravity to me." in page  # the audit prompts it optimised on
        assert "Scores against the planted trigger" in page
        if method == "sae-attribution":
            assert "the trigger is most likely about: " in page
            assert "<mark>" in page  # contexts from the SAE's latent dictionary (found by path)
            assert re.search(r"<td class=\"num\">1</td><td class=\"num\">\d+</td>", page)
        else:
            assert "Top tokens" in page and "inserted: action rate" in page
    capsys.readouterr()
    spec = paths["spec"].read_text().replace("- fruit", "- cats")
    paths["spec"].write_text(spec)
    assert run_cli(["evaluate", str(run), "--organism", str(paths["spec"])]) == 2
    assert "no concept probe set for cats" in capsys.readouterr().err


def test_saved_result_reads_back_identically(tmp_path):
    result = synthetic_result([3, 7], [[7, 1], [2]], tokens=[" a"], rates=[0.5, 1.0])
    result.vectors[0].latent_vector = torch.randn(40)
    result.vectors[0].stopped = "plateau"
    result.baseline_action_rate = 0.125
    result.extras = {"best_token": " a", "samples": []}
    result.latent_scores = torch.randn(2, 40)
    result.save(tmp_path)
    back = load_run(tmp_path).result
    assert back.summary() == result.summary()
    assert torch.equal(back.vectors[0].vector, result.vectors[0].vector)
    assert torch.equal(back.vectors[0].latent_vector, result.vectors[0].latent_vector)
    assert torch.equal(back.latent_scores, result.latent_scores)
