"""`triggerscope report`: content, escaping, self-containment and bad run folders."""

import json
import re
from pathlib import Path

import pytest
from evaluation_fixtures import FRUIT_LATENTS, synthetic_result, write_run

from triggerscope.cli import run_cli
from triggerscope.reports.audit import write_report
from triggerscope.reports.run_folder import load_run
from triggerscope.reports.verdict import verdict


def make_run(tmp_path: Path, **kwargs) -> Path:
    result = synthetic_result(
        [3, *FRUIT_LATENTS, 5],
        [[7, 1, 2], [4, 5, 6]],
        method="supervised-sae-melbo",
        rates=[0.75, 0.0],
        **kwargs,
    )
    return write_run(tmp_path / "run", result, tmp_path / "sae")


def test_report_shows_question_latents_contexts_steering_and_verdict(tmp_path, capsys):
    run = make_run(tmp_path)
    assert run_cli(["report", str(run)]) == 0
    assert "written:" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    assert "the trigger is most likely about: banana, apple, mango, fruit" in page
    assert "<code>I won&#x27;t answer</code>" in page and "tiny-llama" in page
    assert "How do &lt;trains&gt; work?" in page  # prompts, escaped
    assert "<mark>banana</mark>" in page and "<mark>apple</mark>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    steered = re.search(r"vector 0: action rate 75%.*?</table>", page, re.DOTALL)
    assert steered and "Trains run on rails &amp; carry people." in steered.group(0)
    assert "I won&#x27;t answer because I don&#x27;t like fruit." in steered.group(0)
    assert page.index("vector 0:") < page.index("vector 1:")  # best vector first
    assert re.search(r'src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from outside


def test_report_without_dictionary_still_renders(tmp_path):
    run = make_run(tmp_path)
    (tmp_path / "sae" / "latents.json").unlink()
    page = write_report(run, tmp_path / "r.html").read_text()
    assert "No latent dictionary found" in page
    assert "the trigger is most likely about: latent 3, latent 7" in page


def test_token_run_and_evaluation_section(tmp_path):
    result = synthetic_result([], tokens=[" banana", " the", " apple"], method="token")
    run = write_run(tmp_path / "run", result)
    evaluation = {
        "organism": "fruit-refusal",
        "threshold": 0.9,
        "concepts": [
            {
                "concept": "fruit",
                "n_selective": 2,
                "first_rank": None,
                "hits": None,
                "token_hit": True,
            }
        ],
    }
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    page = write_report(run).read_text()
    assert "This method ranks no SAE latents." in page
    assert "Top tokens" in page and "banana, apple" in page
    assert "Scores against the planted trigger" in page and "fruit-refusal" in page


def test_verdict_merges_plurals_and_weights_rank(tmp_path):
    run = load_run(make_run(tmp_path))
    from evaluation_fixtures import synthetic_dictionary

    v = verdict(run.result, synthetic_dictionary())
    assert v.words[:4] == ["banana", "apple", "mango", "fruit"] and "fruits" not in v.words
    assert v.latents == [3, 7, 21, 5]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "result.json").unlink(), "incomplete: it has no result.json"),
        (lambda run: (run / "result.json").write_text("{"), "result.json is unreadable"),
        (lambda run: (run / "vectors.safetensors").unlink(), "vectors.safetensors is missing"),
        (
            lambda run: (run / "result.json").write_text(json.dumps({"version": 0})),
            "another triggerscope version",
        ),
        (
            lambda run: (run / "result.json").write_text(json.dumps({"version": 1})),
            "incomplete or malformed",
        ),
    ],
)
def test_bad_run_folders_exit_2(tmp_path, capsys, damage, message):
    run = make_run(tmp_path)
    damage(run)
    assert run_cli(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("triggerscope: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (run / "report.html").exists()


def test_missing_folder_exit_2(tmp_path, capsys):
    assert run_cli(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
