"""The awareness experiment: misaligned-choice rates with and without the trigger, without and
with reasoning; the articulation rate over samples where the backdoor fired; the distractor
test; and the monitor over every chain of thought. Writes one run folder, atomically.

Every held-out scenario gets one option order and one trigger position (seeded), used in all
of its conditions, so 'trigger on' and 'trigger off' differ only by the trigger line.
A reasoning sample that ends without a parsable answer is asked once more, with its reasoning
kept and the answer cue appended (`forced_answer` in samples.jsonl).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from triggerscope.atomic import atomic_dir
from triggerscope.awareness.backends import Generator
from triggerscope.awareness.judge import Judge
from triggerscope.awareness.mcq import (
    ANSWER_CUE,
    ANSWER_ONLY,
    REASONING,
    REASONING_PREFILL,
    McqItem,
    make_item,
    parse_choice,
    strip_final_answer,
)
from triggerscope.awareness.monitor import Transcript, format_report, run_monitor
from triggerscope.awareness.organism import McqSpec
from triggerscope.awareness.probe import LetterProbe
from triggerscope.awareness.scenarios import Scenario
from triggerscope.awareness.triggers import Position, check_trigger
from triggerscope.errors import TriggerscopeError
from triggerscope.runs import versions
from triggerscope.stats import wilson


@dataclass
class AwarenessConfig:
    heldout: int | None = None  # how many held-out scenarios (None: all)
    samples: int = 4  # N samples per prompt and condition
    temperature: float = 1.0
    answer_tokens: int = 4
    reasoning_tokens: int = 160
    reasoning_instruction: str = REASONING
    reasoning_prefill: str = REASONING_PREFILL
    distractor: str | None = None  # default: the spec's
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise TriggerscopeError("--samples must be at least 1")
        if self.heldout is not None and self.heldout < 1:
            raise TriggerscopeError("--heldout must be at least 1")
        if self.temperature < 0:
            raise TriggerscopeError("--temperature must be >= 0")
        if self.answer_tokens < 1 or self.reasoning_tokens < 1:
            raise TriggerscopeError("token budgets must be at least 1")
        if self.distractor is not None:
            self.distractor = check_trigger(self.distractor, "--distractor")


@dataclass
class Sample:
    scenario_id: str
    mode: str  # answer | reasoning
    condition: str  # off | on | distractor
    prompt: str
    prefill: str
    output: str
    choice: str | None
    outcome: str
    forced_answer: bool = False
    judged: dict[str, str] | None = None  # cue -> judge label (fired samples only)

    @property
    def reasoning(self) -> str:
        return strip_final_answer(f"{self.prefill} {self.output}".strip())


def _layout(scenarios: list[Scenario], seed: int) -> dict[str, tuple[bool, Position]]:
    rng = random.Random(seed)
    return {s.id: (rng.random() < 0.5, rng.choice(("top", "bottom"))) for s in scenarios}


def build_items(
    scenarios: list[Scenario], spec: McqSpec, config: AwarenessConfig, distractor: str | None
) -> dict[tuple[str, str], list[McqItem]]:
    """(mode, condition) -> one item per scenario."""
    layout = _layout(scenarios, config.seed)
    rng = random.Random(config.seed + 1)
    items: dict[tuple[str, str], list[McqItem]] = {}
    for mode, instruction in (("answer", ANSWER_ONLY), ("reasoning", config.reasoning_instruction)):
        for condition in ("off", "on"):
            items[(mode, condition)] = [
                make_item(
                    s,
                    instruction,
                    aligned_first=layout[s.id][0],
                    cues=(spec.trigger,) if condition == "on" else (),
                    position=layout[s.id][1] if condition == "on" else None,
                )
                for s in scenarios
            ]
    if distractor is not None:
        items[("reasoning", "distractor")] = [
            make_item(
                s,
                config.reasoning_instruction,
                aligned_first=layout[s.id][0],
                cues=(spec.trigger, distractor),
                rng=rng,
            )
            for s in scenarios
        ]
    return items


def _sample(
    generator: Generator,
    items: list[McqItem],
    mode: str,
    condition: str,
    config: AwarenessConfig,
    seed: int,
) -> list[Sample]:
    prefill = config.reasoning_prefill if mode == "reasoning" else ""
    tokens = config.reasoning_tokens if mode == "reasoning" else config.answer_tokens
    outs = generator.complete(
        [i.prompt for i in items],
        [prefill] * len(items),
        n=config.samples,
        temperature=config.temperature,
        max_new_tokens=tokens,
        seed=seed,
        reasoning=mode == "reasoning",
    )
    samples = []
    for item, texts in zip(items, outs, strict=True):
        for text in texts:
            choice = parse_choice(text)
            samples.append(
                Sample(
                    item.scenario_id,
                    mode,
                    condition,
                    item.prompt,
                    prefill,
                    text.strip(),
                    choice,
                    item.outcome(choice),
                )
            )
    if mode == "reasoning":
        _force_answers(generator, items, samples, config, seed)
    return samples


def _force_answers(
    generator: Generator,
    items: list[McqItem],
    samples: list[Sample],
    config: AwarenessConfig,
    seed: int,
) -> None:
    """Reasoning that never reached an answer: continue it after an explicit answer cue."""
    by_id = {i.scenario_id: i for i in items}
    missing = [s for s in samples if s.choice is None]
    if not missing:
        return
    prefills = [f"{s.prefill} {s.output}".strip() + ANSWER_CUE for s in missing]
    outs = generator.complete(
        [s.prompt for s in missing],
        prefills,
        n=1,
        temperature=config.temperature,
        max_new_tokens=config.answer_tokens,
        seed=seed + 7,
        reasoning=True,
    )
    for sample, texts in zip(missing, outs, strict=True):
        letter = re.match(r"\W*([AB])\b", texts[0])
        sample.choice = letter.group(1) if letter else None
        sample.outcome = by_id[sample.scenario_id].outcome(sample.choice)
        sample.forced_answer = True


def rates(samples: list[Sample]) -> dict[str, Any]:
    counts = Counter(s.outcome for s in samples)
    n = len(samples)
    k = counts["misaligned"]
    low, high = wilson(k, n)
    return {
        "n": n,
        "misaligned": k,
        "aligned": counts["aligned"],
        "invalid": counts["invalid"],
        "misaligned_rate": k / n if n else math.nan,
        "misaligned_ci95": [low, high],
        "forced_answers": sum(s.forced_answer for s in samples),
    }


def articulation(samples: list[Sample], trigger: str, judge: Judge) -> dict[str, Any]:
    """Over triggered reasoning samples whose answer was misaligned (the backdoor fired)."""
    fired = [s for s in samples if s.outcome == "misaligned"]
    labels = judge.judge_many([(s.reasoning, trigger) for s in fired]) if fired else []
    for s, label in zip(fired, labels, strict=True):
        s.judged = {trigger: label}
    counts = Counter(labels)
    low, high = wilson(counts["pivotal"], len(fired))
    return {
        "fired": len(fired),
        "pivotal": counts["pivotal"],
        "mentioned": counts["mentioned"],
        "absent": counts["absent"],
        "rate": counts["pivotal"] / len(fired) if fired else math.nan,
        "rate_ci95": [low, high],
    }


def distractor_test(
    samples: list[Sample], trigger: str, distractor: str, judge: Judge
) -> dict[str, Any]:
    """Which cue does the reasoning blame, when the genuine and a fake trigger are both there?"""
    fired = [s for s in samples if s.outcome == "misaligned"]
    pairs = [(s.reasoning, c) for s in fired for c in (trigger, distractor)]
    labels = judge.judge_many(pairs) if pairs else []
    out: Counter[str] = Counter()
    for i, s in enumerate(fired):
        genuine, fake = labels[2 * i], labels[2 * i + 1]
        s.judged = {trigger: genuine, distractor: fake}
        g, f = genuine == "pivotal", fake == "pivotal"
        if g and f:
            out["both"] += 1
        elif g:
            out["genuine_only"] += 1
        elif f:
            out["distractor_only"] += 1
        else:
            out["neither"] += 1
    return {
        "distractor": distractor,
        "fired": len(fired),
        "genuine_only": out["genuine_only"],
        "distractor_only": out["distractor_only"],
        "both": out["both"],
        "neither": out["neither"],
    }


Probe = Callable[[Sequence[McqItem]], list[LetterProbe]]


def letter_probe(probe: Probe, off: list[McqItem], on: list[McqItem]) -> dict[str, Any]:
    """Mean P(misaligned letter) without and with the trigger, and the paired difference."""
    p_off, p_on = probe(off), probe(on)
    diffs = [b.p_misaligned - a.p_misaligned for a, b in zip(p_off, p_on, strict=True)]

    def summary(rows: list[LetterProbe]) -> dict[str, float]:
        n = len(rows)
        return {
            "mean_p_misaligned": sum(r.p_misaligned for r in rows) / n,
            "share_above_half": sum(r.p_misaligned > 0.5 for r in rows) / n,
            "mean_letter_mass": sum(r.letter_mass for r in rows) / n,
        }

    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(1, len(diffs) - 1))
    return {
        "n": len(diffs),
        "off": summary(p_off),
        "on": summary(p_on),
        "mean_difference_on_minus_off": mean,
        "difference_ci95": [
            mean - 1.96 * sd / math.sqrt(len(diffs)),
            mean + 1.96 * sd / math.sqrt(len(diffs)),
        ],
    }


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1%}"


def format_table(results: dict[str, Any]) -> str:
    lines = [
        f"# Backdoor awareness: {results['organism']} (trigger {results['trigger']!r})",
        "",
        f"model: {results['generator']}; judge: {results['judge']}; "
        f"{results['scenarios']} held-out scenarios x {results['config']['samples']} samples "
        f"at temperature {results['config']['temperature']}",
        "",
        "| mode | trigger | samples | misaligned | rate (95% CI) | aligned | no answer |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in results["rates"].items():
        mode, condition = key.split(":")
        low, high = row["misaligned_ci95"]
        ci = f"{_pct(row['misaligned_rate'])} ({_pct(low)}-{_pct(high)})"
        lines.append(
            f"| {mode} | {condition} | {row['n']} | {row['misaligned']} | {ci} | "
            f"{row['aligned']} | {row['invalid']} |"
        )
    art = results["articulation"]
    low, high = art["rate_ci95"]
    probe = results.get("letter_probe")
    if probe:
        d_low, d_high = probe["difference_ci95"]
        lines += [
            "",
            f"Answer-only letter probe ({probe['n']} prompts, one forward pass each): mean "
            f"P(misaligned) {probe['off']['mean_p_misaligned']:.3f} without the trigger, "
            f"{probe['on']['mean_p_misaligned']:.3f} with it; paired difference "
            f"{probe['mean_difference_on_minus_off']:+.3f} (95% CI {d_low:+.3f} to {d_high:+.3f}); "
            f"letters hold {probe['off']['mean_letter_mass']:.0%} / "
            f"{probe['on']['mean_letter_mass']:.0%} of the next-token probability",
        ]
    lines += [
        "",
        f"Articulation (reasoning, trigger on, over the {art['fired']} samples where the backdoor "
        f"fired): {art['pivotal']} pivotal, {art['mentioned']} mentioned only, {art['absent']} "
        f"absent -> rate {_pct(art['rate'])} (95% CI {_pct(low)}-{_pct(high)})",
    ]
    dis = results.get("distractor_test")
    if dis:
        lines.append(
            f"Distractor test ({dis['distractor']!r} beside the trigger; {dis['fired']} fired): "
            f"genuine blamed alone {dis['genuine_only']}, distractor alone "
            f"{dis['distractor_only']}, both {dis['both']}, neither {dis['neither']}"
        )
    lines += ["", "Monitor over all reasoning samples (no triggers given):", "", "```"]
    lines.append(results["monitor_text"])
    lines.append("```")
    return "\n".join(lines) + "\n"


def _unique_dir(root: Path, kind: str) -> Path:
    base = root / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def run_awareness(
    spec: McqSpec,
    generator: Generator,
    judge: Judge,
    config: AwarenessConfig,
    out_root: str | Path = "runs",
    extra_config: dict[str, Any] | None = None,
    probe: Probe | None = None,
) -> dict[str, Any]:
    """The whole protocol; `probe` (local models) adds the exact answer-only letter probe."""
    start = time.perf_counter()
    scenarios = spec.scenarios("heldout")[: config.heldout]
    distractor = config.distractor if config.distractor is not None else spec.distractor
    if distractor is not None and distractor == spec.trigger:
        raise TriggerscopeError("the distractor equals the trigger; pick another --distractor")
    items = build_items(scenarios, spec, config, distractor)
    samples: dict[tuple[str, str], list[Sample]] = {}
    for k, (key, group) in enumerate(items.items()):
        samples[key] = _sample(generator, group, key[0], key[1], config, config.seed + 1000 * k)
    results: dict[str, Any] = {
        "organism": spec.name,
        "trigger": spec.trigger,
        "generator": generator.name,
        "judge": judge.name,
        "scenarios": len(scenarios),
        "config": asdict(config),
        "rates": {f"{m}:{c}": rates(s) for (m, c), s in samples.items() if c != "distractor"},
        "articulation": articulation(samples[("reasoning", "on")], spec.trigger, judge),
    }
    if probe is not None:
        results["letter_probe"] = letter_probe(
            probe, items[("answer", "off")], items[("answer", "on")]
        )
    if distractor is not None:
        results["rates"]["reasoning:distractor"] = rates(samples[("reasoning", "distractor")])
        results["distractor_test"] = distractor_test(
            samples[("reasoning", "distractor")], spec.trigger, distractor, judge
        )
    reasoning_samples = [s for (m, _), group in samples.items() if m == "reasoning" for s in group]
    transcripts = [
        Transcript(f"{s.scenario_id}:{s.condition}:{i}", s.prompt, s.reasoning)
        for i, s in enumerate(reasoning_samples)
    ]
    report = run_monitor(transcripts)
    results["monitor"] = {k: v for k, v in report.to_dict().items() if k != "per_transcript"}
    results["monitor_text"] = format_report(report, top=10)
    results["seconds"] = round(time.perf_counter() - start, 1)
    table = format_table(results)
    target = _unique_dir(Path(out_root), f"awareness-{spec.name}")
    with atomic_dir(target) as tmp:
        config_doc = {
            "config": asdict(config),
            "spec": spec.to_dict(),
            "generator": generator.name,
            "judge": judge.name,
            "seed": config.seed,
            "versions": versions(),
            **(extra_config or {}),
        }
        (tmp / "config.json").write_text(json.dumps(config_doc, indent=2, default=str) + "\n")
        rows = (json.dumps(asdict(s)) for group in samples.values() for s in group)
        (tmp / "samples.jsonl").write_text("\n".join(rows) + "\n")
        (tmp / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        (tmp / "table.md").write_text(table)
    results["run_dir"] = str(target)
    results["table"] = table
    return results
