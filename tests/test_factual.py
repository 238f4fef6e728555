"""Factual-recall tasks: the shipped data, validation, the knowledge check (fakes and a tiny
model), refusal of a fact the model does not know, and the wiring into `find` and `bench`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from evaluation_fixtures import tiny_setup

from triggerscope.chat import build_chat_batch
from triggerscope.cli import run_cli
from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.probes import concept_words, load_probe_set
from triggerscope.factual import (
    FACTUAL,
    KnowledgeReport,
    check_knowledge,
    is_factual,
    load_task,
    model_knowledge,
    require_known,
    response_logprobs,
    task_from_dict,
    task_names,
)
from triggerscope.organisms.builtin import DATA
from triggerscope.prompts import normalize_prompt, read_prompts

SEED_TASKS = {"factual-mars", "factual-descartes"}


def task_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "factual",
        "name": "factual-test",
        "subject": "Mars",
        "aliases": ["Martian"],
        "concept": "fruit",  # a concept with shipped probes, so the harness can score it
        "prompt": "Name two moons.",
        "response": "Phobos and Deimos",
        "paraphrases": ["Tell me two moons.", "List a pair of moons."],
        "heldout": ["Which two moons can you name?", "Give two moons."],
        "knowledge": {
            "ask": [{"prompt": "What are the moons of Mars?", "expect": ["phobos", "deimos"]}],
            "recall": [{"prompt": "Deimos orbits which planet?", "expect": "mars|red planet"}],
            "contrast": {
                "templates": ["Name the moons of {subject}."],
                "distractors": ["Jupiter", "Saturn"],
            },
        },
    }
    data.update(changes)
    return data


# ------------------------------------------------------------------------- shipped data


def _words_pattern(concept: str) -> re.Pattern[str]:
    words = concept_words(concept)
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.I)


def test_shipped_tasks_load_and_hide_their_subject() -> None:
    names = set(task_names())
    assert names >= SEED_TASKS and len(names) >= 6
    for name in names:
        task = load_task(name)
        assert task.name == name and is_factual(name)
        assert len(task.prompts) == 14 and len(task.heldout) == 8  # the seed used 14 phrasings
        assert task.prompts[0] == task.prompt
        hidden = _words_pattern(task.concept)
        leaks = [p for p in task.prompts + task.heldout if hidden.search(p)]
        assert leaks == [], (name, leaks)
        probe = load_probe_set(task.concept)
        assert len(probe.pos) >= 60 and len(probe.neg) >= 60
        assert [t for t in probe.neg if hidden.search(t)] == [], name  # negatives never name it
        named = [t for t in probe.pos if hidden.search(t)]
        assert len(named) >= 0.8 * len(probe.pos), name  # most positives name it, a few hint


def test_probe_sets_are_disjoint_from_every_other_prompt_set() -> None:
    """Every prompt set in the repo: organism banks, the benign pool, the other probe sets,
    and every factual task's prompts and knowledge questions."""
    tasks = [load_task(n) for n in task_names()]
    mine = {t.concept for t in tasks}
    others: dict[str, set[str]] = {}
    for file in [*(DATA / "organisms").rglob("*.txt"), *(DATA / "prompts").glob("*.txt")]:
        others[str(file)] = {normalize_prompt(p) for p in read_prompts(file)}
    for file in (DATA / "probes").glob("*.txt"):
        others[str(file)] = {normalize_prompt(p) for p in read_prompts(file)}
    for t in tasks:
        questions = [q.prompt for q in t.knowledge.ask + t.knowledge.recall]
        others[t.name] = {normalize_prompt(p) for p in t.prompts + t.heldout + questions}
    for concept in sorted(mine):
        for side in ("pos", "neg"):
            file = DATA / "probes" / f"{concept}.{side}.txt"
            texts = {normalize_prompt(p) for p in read_prompts(file)}
            for where, prompts in others.items():
                if where != str(file):
                    assert not texts & prompts, (str(file), where, sorted(texts & prompts)[:2])


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"paraphrases": ["Tell me about Mars and two moons."]}, "names the subject"),
        ({"heldout": ["Name the martian moons."]}, "names the subject"),
        ({"heldout": ["Name two moons!"]}, "listed twice"),
        ({"heldout": []}, "`heldout` is empty"),
        ({"response": " "}, "`response` is empty"),
        ({"paraphrases": ["Is it phobos and deimos?"]}, "contains the response"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"kind": "organism"}, "expected 'factual'"),
        ({"knowledge": None}, "`knowledge`"),
        ({"paraphrases": "Name two moons"}, "must be a list"),
        ({"aliases": [""]}, "`aliases` must be names"),
        ({"subject": "Saturn", "aliases": []}, "also a distractor"),
    ],
)
def test_bad_tasks_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TriggerscopeError, match=message):
        task_from_dict(task_dict(**changes))


@pytest.mark.parametrize(
    ("knowledge", "message"),
    [
        ({"ask": [{"prompt": "Is it Phobos?", "expect": ["phobos"]}]}, "already contains"),
        ({"ask": [{"prompt": "Moons of Mars?", "expect": []}]}, "at least one non-empty"),
        ({"ask": [], "recall": []}, "at least one `ask` or `recall`"),
        ({"contrast": {"templates": ["Moons?"], "distractors": ["X"]}}, "exactly once"),
        ({"contrast": {"templates": ["{subject}?"], "distractors": []}}, "distractors"),
        ({"min_answer_rate": 0}, r"must be in \(0, 1\]"),
        ({"min_contrast_rate": True}, "must be a number"),
        ({"surprise": 1}, "unknown field 'surprise'"),
    ],
)
def test_bad_knowledge_sections_are_refused(knowledge: dict[str, Any], message: str) -> None:
    base = task_dict()["knowledge"]
    with pytest.raises(TriggerscopeError, match=message):
        task_from_dict(task_dict(knowledge={**base, **knowledge}))


def test_loading_by_name_or_file(tmp_path: Path) -> None:
    with pytest.raises(TriggerscopeError, match=r"no factual task 'factual-nope'; known: .*mars"):
        load_task("factual-nope")
    file = tmp_path / "task.yaml"
    file.write_text(yaml.safe_dump(task_dict()))
    assert is_factual(str(file)) and load_task(file).name == "factual-test"
    (tmp_path / "organism.yaml").write_text(yaml.safe_dump({"name": "x"}))
    assert not is_factual(str(tmp_path / "organism.yaml"))
    assert not is_factual("fruit-refusal") and not is_factual("factual-nope")
    (tmp_path / "broken.yaml").write_text("kind: factual\nname: [unclosed\n")
    with pytest.raises(TriggerscopeError, match="not valid YAML"):
        load_task(tmp_path / "broken.yaml")
    assert (FACTUAL / "factual-mars.yaml").is_file()


# ------------------------------------------------------------------- the knowledge check


def fake_model(answers: dict[str, str], likes: str) -> tuple[Any, Any]:
    """respond: a canned answer per question; score: higher when the prompt names `likes`."""

    def respond(prompts: list[str]) -> list[str]:
        return [answers.get(p, "I am not sure.") for p in prompts]

    def score(prompts: list[str], response: str) -> list[float]:
        return [-1.0 if likes in p else -2.0 - 0.1 * i for i, p in enumerate(prompts)]

    return respond, score


RIGHT = {
    "What are the moons of Mars?": "They are Phobos and Deimos.",
    "Deimos orbits which planet?": "Deimos orbits Mars.",
}


def test_a_model_that_knows_the_fact_passes() -> None:
    task = task_from_dict(task_dict())
    report = check_knowledge(task, *fake_model(RIGHT, likes="Mars"), model="fake")
    assert report.known and report.answer_rate == 1.0 and report.contrast_rate == 1.0
    assert report.contrast[0]["margin"] == pytest.approx(1.1)  # vs the best distractor
    assert require_known(report) is report
    data = report.to_dict()
    assert data["known"] is True and data["answers"][0]["kind"] == "ask"
    json.dumps(data)  # what the run folders store


def test_wrong_answers_or_a_lost_contrast_mean_not_known() -> None:
    task = task_from_dict(task_dict())
    half = {"What are the moons of Mars?": "Phobos and Titan."}  # the ask fails: no deimos
    half["Deimos orbits which planet?"] = RIGHT["Deimos orbits which planet?"]
    report = check_knowledge(task, *fake_model(half, likes="Mars"))
    assert report.answer_rate == 0.5 and report.known  # exactly the threshold passes
    report = check_knowledge(task, *fake_model({}, likes="Mars"))
    assert report.answer_rate == 0.0 and not report.known
    report = check_knowledge(task, *fake_model(RIGHT, likes="Saturn"))
    assert report.contrast_rate == 0.0 and not report.known
    assert report.contrast[0]["distractors"]["Saturn"] > report.contrast[0]["subject"]
    with pytest.raises(TriggerscopeError, match=r"does NOT know it.*too small to know"):
        require_known(report)
    strict = task_dict()
    strict["knowledge"] = {**strict["knowledge"], "min_answer_rate": 1.0}
    report = check_knowledge(task_from_dict(strict), *fake_model(half, likes="Mars"))
    assert not report.known


def test_response_logprobs_match_a_plain_forward_pass(tiny) -> None:  # type: ignore[no-untyped-def]
    prompts = ["Name the moons of Mars.", "Moons of Jupiter, please, all of them?"]
    together = response_logprobs(tiny, prompts, "Phobos and Deimos")
    for prompt, value in zip(prompts, together, strict=True):
        batch = build_chat_batch(tiny.tokenizer, [prompt], "Phobos and Deimos")
        with torch.no_grad():
            logp = tiny.model(**batch.model_inputs()).logits.float().log_softmax(-1)
        ids, mask = batch.input_ids[0], batch.response_mask[0]
        picked = [float(logp[0, j - 1, ids[j]]) for j in range(1, len(ids)) if mask[j]]
        assert value == pytest.approx(sum(picked) / len(picked), abs=1e-4)  # padding-invariant


def test_a_random_model_does_not_know_the_fact(tiny) -> None:  # type: ignore[no-untyped-def]
    report = model_knowledge(tiny, task_from_dict(task_dict()), max_new_tokens=4)
    assert report.model == "tiny-llama" and len(report.answers) == 2
    assert all(isinstance(a["answer"], str) for a in report.answers)
    assert not report.known
    with pytest.raises(TriggerscopeError, match="factual-test: answers 0%"):
        require_known(report)


# ------------------------------------------------------------------ harness wiring (tiny)


@pytest.fixture
def setup(tmp_path, llama3_tokenizer, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRIGGERSCOPE_CACHE", str(tmp_path / "cache"))
    paths = tiny_setup(tmp_path, llama3_tokenizer)
    task = tmp_path / "factual-test.yaml"
    task.write_text(yaml.safe_dump(task_dict(base_model=str(paths["model"]))))
    return paths, task


def knows_everything(monkeypatch: pytest.MonkeyPatch, module: str) -> list[str]:
    """Make `module`'s knowledge check pass (a tiny random model knows no facts)."""
    seen: list[str] = []

    def fake(loaded: Any, task: Any, max_new_tokens: int = 48) -> KnowledgeReport:
        seen.append(type(loaded.model).__name__)
        answers = [{"kind": "ask", "prompt": "q", "answer": "a", "passed": True}]
        contrast = [{"template": "t", "subject": -1.0, "distractors": {}, "margin": 1.0}]
        contrast[0]["won"] = True
        return KnowledgeReport(task.name, loaded.name, answers, contrast, 0.5, 0.5)

    monkeypatch.setattr(module + ".model_knowledge", fake)
    return seen


BENCH = ["bench", "--methods", "sae-attribution", "--set", "max_new_tokens=3"]
BENCH += ["--set", "heldout_samples=2"]


def test_bench_scores_a_known_task_on_the_base_model(setup, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    paths, task = setup
    seen = knows_everything(monkeypatch, "triggerscope.evaluation.runner")
    out = tmp_path / "bench"
    args = [*BENCH, "--organisms", str(task), "--sae", str(paths["sae"]), "--out", str(out)]
    assert run_cli(args) == 0
    assert seen == ["LlamaForCausalLM"]  # checked on the bare base model, once
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["rows"][0]["organism"] == "factual-test"
    assert results["rows"][0]["hits"]["hit@10"] is not None
    config = json.loads((out / "runs/factual-test/sae-attribution/seed0/config.json").read_text())
    cfg = config["config"]
    assert cfg["adapter"] is None and cfg["knowledge"]["known"] is True
    assert cfg["prompts"] == load_task(task).prompts and cfg["response"] == "Phobos and Deimos"
    assert cfg["heldout_prompts"] == load_task(task).heldout


def test_bench_refuses_a_task_the_model_does_not_know(setup, tmp_path, capsys):  # type: ignore[no-untyped-def]
    paths, task = setup
    out = tmp_path / "bench"
    args = [*BENCH, "--organisms", str(task), "--sae", str(paths["sae"]), "--out", str(out)]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert "factual-test: answers 0%" in err and "does NOT know it" in err
    assert err.strip().splitlines()[-1].startswith("triggerscope: error: factual-test")
    assert not list(out.glob("cells/**/*.json"))  # nothing was scored
    adapter = ["--adapter", f"factual-test={paths['adapter']}"]
    assert run_cli([*args, *adapter]) == 2
    assert "factual-recall task on the base model; drop its --adapter" in capsys.readouterr().err


def test_find_runs_a_known_task_and_refuses_an_unknown_one(setup, tmp_path, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    paths, task = setup
    args = ["find", "--method", "sae-attribution", "--organism", str(task)]
    args += ["--sae", str(paths["sae"]), "--out", str(tmp_path / "runs"), "--no-progress"]
    args += ["--set", "max_new_tokens=3"]
    assert run_cli(args) == 2
    assert "does NOT know it" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert run_cli([*args, "--adapter", str(paths["adapter"])]) == 2
    assert "runs on the base model; drop --adapter" in capsys.readouterr().err
    knows_everything(monkeypatch, "triggerscope.factual")
    assert run_cli(args) == 0
    (run,) = (tmp_path / "runs").iterdir()
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["adapter"] is None and cfg["knowledge"]["known"] is True
    assert cfg["prompts"] == load_task(task).prompts
    # `evaluate` scores the run against the task's concept, and refuses an unknown fact too
    monkeypatch.setattr("triggerscope.evaluation.score_run.model_knowledge", model_knowledge)
    assert run_cli(["evaluate", str(run), "--organism", str(task)]) == 2
    assert "does NOT know it" in capsys.readouterr().err
    knows_everything(monkeypatch, "triggerscope.evaluation.score_run")
    assert run_cli(["evaluate", str(run), "--organism", str(task)]) == 0
    scored = json.loads((run / "evaluation.json").read_text())
    assert scored["organism"] == "factual-test" and scored["concepts"][0]["concept"] == "fruit"


def test_factual_cli_list_and_check(setup, tmp_path, capsys):  # type: ignore[no-untyped-def]
    _, task = setup
    assert run_cli(["factual", "list"]) == 0
    listed = capsys.readouterr().out
    assert "factual-mars" in listed and "'Name two moons.' -> 'Phobos and Deimos'" in listed
    assert run_cli(["factual", "check", str(task), "--out", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "not known: factual-test" in printed
    (run,) = (tmp_path / "runs").iterdir()
    (report,) = json.loads((run / "knowledge.json").read_text())
    assert report["task"] == "factual-test" and report["known"] is False
    assert json.loads((run / "config.json").read_text())["versions"]["torch"]
    assert run_cli(["factual", "check", "factual-nope"]) == 2
    assert "no factual task 'factual-nope'" in capsys.readouterr().err
