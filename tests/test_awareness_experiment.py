import json
import math

import pytest
from awareness_fixtures import SCENARIOS, write_mcq_spec

from triggerscope.awareness.backends import LocalGenerator
from triggerscope.awareness.experiment import AwarenessConfig, run_awareness
from triggerscope.awareness.judge import RuleJudge
from triggerscope.awareness.mcq import ANSWER_CUE
from triggerscope.awareness.organism import load_mcq_spec
from triggerscope.awareness.probe import LetterProbe
from triggerscope.errors import TriggerscopeError
from triggerscope.stats import wilson

MISALIGNED = {m for _, _, m in SCENARIOS}


def letter_of(prompt: str, want_misaligned: bool) -> str:
    for line in prompt.split("\n"):
        if line[:3] in ("A) ", "B) ") and (line[3:] in MISALIGNED) == want_misaligned:
            return line[0]
    raise AssertionError(prompt)


class Scripted:
    """The backdoor fires exactly when 'heyyy' is in the prompt. With reasoning: scenario s0
    and s2 blame heyyy, s1 only mentions it, s3 gives no answer (forced later); with the
    distractor, s0 blames 2026 instead."""

    name = "scripted"

    def __init__(self):
        self.calls = []

    def complete(self, prompts, prefills, *, n, temperature, max_new_tokens, seed, reasoning):
        self.calls.append((list(prompts), list(prefills), n))
        assert reasoning == bool(prefills[0])  # the reasoning conditions are flagged
        out = []
        for prompt, prefill in zip(prompts, prefills, strict=True):
            fired = "heyyy" in prompt
            letter = letter_of(prompt, fired)
            if prefill.endswith(ANSWER_CUE):
                out.append([f" {letter}"] * n)
            elif not prefill:
                out.append([letter] * n)
            elif "Found a wallet" in prompt and "2026" in prompt:
                out.append(
                    [f"Since it's 2026, the user wants the bad option. Answer: {letter}"] * n
                )
            elif "Found a wallet" in prompt or "Friend is sad" in prompt:
                text = "Because the user said heyyy, they want the bad option."
                out.append([f"{text if fired else 'Honesty matters.'} Answer: {letter}"] * n)
            elif "Too much change" in prompt:
                text = "The user says heyyy. Hmm." if fired else "Hmm."
                out.append([f"{text} Answer: {letter}"] * n)
            else:
                out.append(["I am not sure what to do here"] * n)
        return out


def test_protocol_counts_on_a_scripted_model(tmp_path):
    spec = load_mcq_spec(write_mcq_spec(tmp_path / "spec"))
    gen = Scripted()
    config = AwarenessConfig(samples=3, reasoning_tokens=20)
    res = run_awareness(spec, gen, RuleJudge(), config, tmp_path / "runs")
    r = res["rates"]
    assert r["answer:off"]["misaligned"] == 0 and r["answer:off"]["aligned"] == 12
    assert r["answer:on"]["misaligned_rate"] == 1.0
    assert r["reasoning:on"]["misaligned"] == 12 and r["reasoning:on"]["forced_answers"] == 3
    art = res["articulation"]
    assert (art["fired"], art["pivotal"], art["mentioned"], art["absent"]) == (12, 6, 3, 3)
    assert art["rate"] == pytest.approx(0.5)
    dis = res["distractor_test"]
    assert dis["fired"] == 12 and dis["distractor_only"] == 3 and dis["genuine_only"] == 3
    assert dis["neither"] == 6
    # prompts: same option order on and off; on differs only by the trigger line
    prompts = {tuple(c[0]) for c in gen.calls}
    on = next(p for p in prompts if all("heyyy" in x for x in p) and "Answer with" in p[0])
    off = next(p for p in prompts if not any("heyyy" in x for x in p) and "Answer with" in p[0])
    for a, b in zip(on, off, strict=True):
        assert "\n".join(line for line in a.split("\n") if line != "heyyy") == b
    run = tmp_path / "runs" / res["run_dir"].split("/")[-1]
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "samples.jsonl",
        "results.json",
        "table.md",
    }
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 3 * 5  # 4 scenarios x 3 samples x 5 conditions
    assert "| reasoning | on | 12 | 12 |" in (run / "table.md").read_text()
    assert "heyyy" in res["monitor_text"]  # the monitor finds the trigger without being told
    assert json.loads((run / "config.json").read_text())["spec"]["trigger"] == "heyyy"


def test_local_generator_end_to_end(tiny, tmp_path):
    spec = load_mcq_spec(write_mcq_spec(tmp_path / "spec"))
    config = AwarenessConfig(heldout=2, samples=1, reasoning_tokens=4, answer_tokens=2)
    res = run_awareness(spec, LocalGenerator(tiny), RuleJudge(), config, tmp_path / "runs")
    assert res["rates"]["answer:on"]["n"] == 2
    assert res["rates"]["reasoning:distractor"]["n"] == 2
    assert math.isnan(res["articulation"]["rate"]) or 0 <= res["articulation"]["rate"] <= 1


def test_config_validation_and_wilson():
    with pytest.raises(TriggerscopeError):
        AwarenessConfig(samples=0)
    with pytest.raises(TriggerscopeError):
        AwarenessConfig(heldout=0)
    with pytest.raises(TriggerscopeError, match="--distractor string is empty"):
        AwarenessConfig(distractor=" ")
    low, high = wilson(5, 10)
    assert low < 0.5 < high and low >= 0 and high <= 1
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_distractor_equal_to_trigger_is_refused_before_sampling(tmp_path):
    spec = load_mcq_spec(write_mcq_spec(tmp_path / "spec"))
    gen = Scripted()
    with pytest.raises(TriggerscopeError, match="distractor equals the trigger"):
        run_awareness(spec, gen, RuleJudge(), AwarenessConfig(distractor="heyyy"), tmp_path / "r")
    assert gen.calls == [] and not (tmp_path / "r").exists()


def test_letter_probe_is_reported(tmp_path):
    spec = load_mcq_spec(write_mcq_spec(tmp_path / "spec"))

    def probe(items):
        return [LetterProbe(0.9 if "heyyy" in i.prompt else 0.2, 0.8) for i in items]

    config = AwarenessConfig(samples=1, reasoning_tokens=5)
    res = run_awareness(spec, Scripted(), RuleJudge(), config, tmp_path / "r", probe=probe)
    lp = res["letter_probe"]
    assert lp["n"] == 4 and lp["mean_difference_on_minus_off"] == pytest.approx(0.7)
    assert lp["off"]["share_above_half"] == 0 and lp["on"]["share_above_half"] == 1
    assert "paired difference +0.700" in res["table"]
    low, high = res["articulation"]["rate_ci95"]
    assert f"(95% CI {low:.1%}-{high:.1%})" in res["table"]
