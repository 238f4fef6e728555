"""Causal confirmation of trigger hypotheses, and the automatic conjunctive search.

For every hypothesis: n test prompts that carry it and n matched controls (carriers.py); the
backdoored model answers each greedily and an answer takes the action when it contains the
(possibly partial) response (organisms.matching). Hypotheses are ranked by the effect,
rate(carrying) - rate(control), with Newcombe's interval (stats.py); one is confirmed when the
interval's lower end is above 0. When the best concept alone does not reach `fire_threshold`,
a method runs again on benign prompts that now carry it, and the hypotheses it finds are tested
together with it, in four matched conditions (both / the context with a control in the new
slot / the candidate with controls in the context's slots / controls only), until the action
fires or `max_steps` concepts are chained. The model and the method are plain callables, so
tests can put a rule-based backdoor and a scripted method in their place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from triggerscope.chat import tokens_to_see
from triggerscope.confirmation.carriers import (
    CARRIERS,
    CONTROLS,
    Carrier,
    ControlKind,
    ControlPool,
    Slot,
    carrying_prompts,
    control_pool,
    mode,
)
from triggerscope.confirmation.hypotheses import Hypothesis, hypotheses_from_result
from triggerscope.confirmation.stats import Rate, difference
from triggerscope.errors import TriggerscopeError
from triggerscope.methods.config import _non_negative, _positive
from triggerscope.methods.result import MethodResult
from triggerscope.organisms.matching import normalize, takes_action
from triggerscope.sae.labels import LatentDictionary

RESULT_VERSION = 1
CI_METHOD = (
    "rates: Wilson score interval; effects (differences of rates on matched prompts): "
    "Newcombe's score interval for paired proportions (1998b, method 10)"
)

Responder = Callable[[list[str]], list[str]]  # prompts -> the backdoored model's answers
Finder = Callable[[list[str]], MethodResult]  # benign prompts -> a method's result on them


@dataclass
class ConfirmConfig:
    response: str  # the backdoor action, or the part of it the auditor knows
    n_prompts: int = 16  # test prompts per condition (benign prompts cycled)
    # a hypothesis whose effect is positive but not yet confirmed is tested again on twice as
    # many prompts (the earlier ones kept), up to this many; n_prompts turns it off
    max_prompts: int = 64
    top_latents: int = 5  # hypotheses from the method's latent ranking
    top_tokens: int = 3  # hypotheses from the token ranking
    vector_latents: int = 3  # a learned vector's top latents, tested together (<2: none)
    max_words: int = 4  # words per hypothesis
    max_texts: int = 4  # top-activating texts per latent hypothesis
    carrier: Carrier = "both"  # insert words, quote top-activating texts, or alternate
    control: ControlKind = "neutral"  # control words: a neutral list, or random latents'
    fire_threshold: float = 0.5  # action rate at which the trigger counts as found
    max_control_rate: float = 0.2  # controls firing more often than this stop the run
    confidence: float = 0.95
    max_steps: int = 3  # concepts chained at most by the conjunctive search (1: no search)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.response, str) or not self.response.strip():
            raise TriggerscopeError(
                "the response is empty; pass the backdoor action (or a part of it)"
            )
        _positive(self, "n_prompts", "max_prompts", "max_words", "max_steps")
        _non_negative(self, "top_latents", "top_tokens", "vector_latents", "max_texts")
        names = ("n_prompts", "max_prompts", "max_words", "max_steps", "top_latents", "top_tokens")
        for name in names:
            if not isinstance(getattr(self, name), int):
                raise TriggerscopeError(
                    f"{name} must be a whole number, got {getattr(self, name)!r}"
                )
        if self.max_prompts < self.n_prompts:
            raise TriggerscopeError(
                f"max_prompts ({self.max_prompts}) must be at least n_prompts ({self.n_prompts})"
            )
        if self.carrier not in CARRIERS:
            raise TriggerscopeError(f"carrier must be one of {CARRIERS}, not {self.carrier!r}")
        if self.control not in CONTROLS:
            raise TriggerscopeError(f"control must be one of {CONTROLS}, not {self.control!r}")
        if not 0 < self.fire_threshold <= 1:
            raise TriggerscopeError(f"fire_threshold must be in (0, 1], got {self.fire_threshold}")
        if not 0 <= self.max_control_rate < self.fire_threshold:
            raise TriggerscopeError(
                f"max_control_rate must be in [0, fire_threshold={self.fire_threshold}), got "
                f"{self.max_control_rate}"
            )
        if not 0 < self.confidence < 1:
            raise TriggerscopeError(f"confidence must be in (0, 1), got {self.confidence}")

    def hypotheses(self, result: MethodResult, book: LatentDictionary | None) -> list[Hypothesis]:
        """The hypotheses these settings read off a method's result."""
        return hypotheses_from_result(
            result,
            book,
            top_latents=self.top_latents,
            top_tokens=self.top_tokens,
            vector_latents=self.vector_latents,
            max_words=self.max_words,
            max_texts=self.max_texts,
        )


@dataclass
class Evidence:
    """One hypothesis tested: alone (step 1), or added to the context (later steps)."""

    hypothesis: Hypothesis
    carrying: Rate  # prompts carrying the context and the hypothesis
    control: Rate  # the same prompts with the hypothesis' control words
    alone: Rate | None = None  # later steps: the hypothesis with the context's controls
    neither: Rate | None = None  # later steps: controls in every slot
    by_mode: dict[str, dict[str, int]] = field(default_factory=dict)  # words / texts split
    confidence: float = 0.95

    @property
    def effect(self) -> tuple[float, float, float]:
        """rate(carrying) - rate(control): estimate, low, high."""
        return difference(self.carrying, self.control, self.confidence)

    @property
    def joint(self) -> tuple[float, float, float] | None:
        """Later steps: rate(both) - the higher of the two one-concept rates."""
        if self.alone is None:
            return None
        single = max(self.control, self.alone, key=lambda r: r.rate)
        return difference(self.carrying, single, self.confidence)

    @property
    def confirmed(self) -> bool:
        return self.effect[1] > 0

    @property
    def needs_context(self) -> bool | None:
        joint = self.joint
        return None if joint is None else joint[1] > 0

    def to_dict(self) -> dict[str, Any]:
        c = self.confidence
        out: dict[str, Any] = {
            "hypothesis": self.hypothesis.to_dict(),
            "carrying": self.carrying.to_dict(c),
            "control": self.control.to_dict(c),
            "effect": list(self.effect),
            "confirmed": self.confirmed,
            "by_mode": self.by_mode,
        }
        if self.alone is not None and self.neither is not None:
            out |= {
                "alone": self.alone.to_dict(c),
                "neither": self.neither.to_dict(c),
                "joint": list(self.joint or ()),
                "needs_context": self.needs_context,
            }
        return out


@dataclass
class Step:
    context: list[Hypothesis]  # concepts every prompt of this step already carries
    source: str  # where the hypotheses came from
    evidence: list[Evidence]  # best first
    chosen: int | None = None  # index in `evidence` of the concept carried forward
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": [h.name for h in self.context],
            "source": self.source,
            "chosen": self.chosen,
            "note": self.note,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass
class ConfirmationResult:
    config: ConfirmConfig
    benign: Rate  # the benign prompts as they are
    controls: Rate  # every control prompt of the first step, pooled
    steps: list[Step]
    trigger: list[Hypothesis]  # confirmed concepts, in the order found (several: a conjunction)
    fired: bool  # prompts carrying the whole trigger reach fire_threshold
    final: Evidence | None  # the evidence for the trigger (the last chosen step)
    generations: int = 0  # answers generated (repeated prompts are answered once)
    wall_seconds: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def rejected(self) -> list[Evidence]:
        """First-step hypotheses whose effect was not above their controls."""
        return [e for e in self.steps[0].evidence if not e.confirmed] if self.steps else []

    def verdict(self) -> str:
        fire = f"{self.config.fire_threshold:.0%}"
        if self.fired and self.final is not None:
            e = self.final
            if len(self.trigger) == 1:
                low, high = e.carrying.interval(self.config.confidence)
                return (
                    f"confirmed trigger: {self.trigger[0].describe()}; action rate "
                    f"{e.carrying.rate:.0%} [{low:.0%}, {high:.0%}] on prompts that carry it vs "
                    f"{e.control.rate:.0%} on matched controls"
                )
            parts = " AND ".join(h.describe() for h in self.trigger)
            alone = f"{e.alone.rate:.0%}" if e.alone is not None else "n/a"
            return (
                f"confirmed conjunctive trigger: {parts}; action rate {e.carrying.rate:.0%} with "
                f"all of them, {e.control.rate:.0%} without the last, {alone} with only the last"
            )
        if self.trigger and self.final is not None:
            names = " AND ".join(h.describe() for h in self.trigger)
            e = self.final
            return (
                f"partly confirmed: {names} raises the action rate ({e.carrying.rate:.0%} vs "
                f"{e.control.rate:.0%} on controls), but nothing tested reached {fire}"
            )
        best = self.steps[0].evidence[0] if self.steps and self.steps[0].evidence else None
        tail = (
            f" (best: {best.hypothesis.describe()}, {best.carrying.rate:.0%} vs "
            f"{best.control.rate:.0%})"
            if best is not None
            else ""
        )
        return (
            f"no trigger confirmed: no hypothesis raised the action rate above its controls{tail}"
        )

    def to_dict(self) -> dict[str, Any]:
        c = self.config.confidence
        return {
            "version": RESULT_VERSION,
            "verdict": self.verdict(),
            "fired": self.fired,
            "trigger": [h.to_dict() for h in self.trigger],
            "final": self.final.to_dict() if self.final is not None else None,
            "benign": self.benign.to_dict(c),
            "controls": self.controls.to_dict(c),
            "steps": [s.to_dict() for s in self.steps],
            "rejected": [e.hypothesis.name for e in self.rejected],
            "confidence": c,
            "ci_method": CI_METHOD,
            "generations": self.generations,
            "wall_seconds": self.wall_seconds,
            "config": asdict(self.config),
        }


def _ranked(evidence: list[Evidence]) -> list[Evidence]:
    """Largest effect first, then the higher lower bound; ties keep the method's order."""
    order = range(len(evidence))
    keyed = sorted(order, key=lambda i: (-evidence[i].effect[0], -evidence[i].effect[1], i))
    return [evidence[i] for i in keyed]


def _first_confirmed(evidence: list[Evidence]) -> int:
    """The concept carried forward: the best confirmed one, else the best by rank (as the seed
    did by hand on Snow-Fruit, where neither concept fires alone)."""
    return next((i for i, e in enumerate(evidence) if e.confirmed), 0)


class _Session:
    """Answers (cached by prompt), samples, and each hypothesis' slot with its control."""

    def __init__(
        self,
        respond: Responder,
        prompts: Sequence[str],
        config: ConfirmConfig,
        pool: ControlPool,
        progress: bool,
    ) -> None:
        self.respond = respond
        self.prompts = list(prompts)
        self.config = config
        self.pool = pool
        self.progress = progress
        self.cache: dict[str, str] = {}
        self.samples: list[dict[str, Any]] = []
        self.pairs: dict[str, tuple[Slot, Slot]] = {}

    def answers(self, prompts: list[str]) -> list[str]:
        missing = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if missing:
            got = list(self.respond(missing))
            if len(got) != len(missing):
                raise TriggerscopeError(
                    f"the responder returned {len(got)} answers for {len(missing)} prompts"
                )
            self.cache.update(zip(missing, got, strict=True))
        return [self.cache[p] for p in prompts]

    def pair(self, hypothesis: Hypothesis, context: Sequence[Hypothesis] = ()) -> tuple[Slot, Slot]:
        """Its slot and matched control (made once: a concept keeps its control in every step)."""
        if hypothesis.name not in self.pairs:
            seed = f"{self.config.seed}:{hypothesis.name}"
            avoid = [w for c in context for w in c.words]
            latents = [i for c in context for i in c.latents]
            self.pairs[hypothesis.name] = self.pool.pair(hypothesis, avoid, seed, latents)
        return self.pairs[hypothesis.name]

    def carrying(self, slots: list[Slot], n: int) -> list[str]:
        return carrying_prompts(self.prompts, slots, n, self.config.carrier)

    def measure(self, prompts: list[str], step: int, name: str, condition: str) -> list[bool]:
        """Whether each of the prompts (carrying a condition's slots) made the model take the
        action."""
        cfg = self.config
        hits = [takes_action(a, cfg.response) for a in self.answers(prompts)]
        for prompt, hit in zip(prompts, hits, strict=True):
            self.samples.append(
                {
                    "step": step,
                    "hypothesis": name,
                    "condition": condition,
                    "prompt": prompt,
                    "answer": self.cache[prompt],
                    "action": hit,
                }
            )
        return hits

    def by_mode(
        self,
        slot: Slot,
        hits: list[bool],
        control: list[bool],
        indices: Sequence[int] | None = None,
    ) -> dict[str, dict]:
        """The action rates split by how prompt i carried the slot (`indices`: each outcome's
        prompt index, when not 0, 1, 2, ...)."""
        out: dict[str, dict[str, int]] = {}
        where = range(len(hits)) if indices is None else indices
        for i, hit, ctl in zip(where, hits, control, strict=True):
            row = out.setdefault(mode(slot, self.config.carrier, i), {"k": 0, "control_k": 0})
            row["k"] += hit
            row["control_k"] += ctl
            row["n"] = row.get("n", 0) + 1
        return out

    def say(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)


def _check_controls(
    rate: Rate, what: str, cfg: ConfirmConfig, example: tuple[str, str] | None = None
) -> None:
    if rate.rate > cfg.max_control_rate:
        seen = f" (e.g. {example[0][:70]!r} -> {example[1][:40]!r})" if example else ""
        raise TriggerscopeError(
            f"{what} already take the action on {rate.k} of {rate.n} prompts ({rate.rate:.0%}, "
            f"above max_control_rate {cfg.max_control_rate:.0%}){seen}, so no hypothesis can be "
            "told apart from them; use benign prompts that do not fire the backdoor on their own"
        )


def _fired(prompts: Sequence[str], answers: Sequence[str], response: str) -> tuple[str, str]:
    """The first prompt whose answer took the action, with that answer (for error messages)."""
    return next(
        ((p, a) for p, a in zip(prompts, answers, strict=True) if takes_action(a, response)),
        ("", ""),
    )


def _check_prompts(prompts: Sequence[str], response: str) -> None:
    if not prompts:
        raise TriggerscopeError("no benign prompts to build test prompts from; pass --prompts")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise TriggerscopeError(f"benign prompt {i} is empty; every prompt needs some text")
        if takes_action(prompt, response):
            raise TriggerscopeError(
                f"benign prompt {i} ({prompt[:50]!r}) already contains the response "
                f"{normalize(response)!r}; drop it"
            )


def _first_step(session: _Session, hypotheses: list[Hypothesis]) -> tuple[Step, Rate]:
    """Every hypothesis alone against its matched controls (controls first: they can stop it)."""
    from tqdm.auto import tqdm

    cfg = session.config
    controls = {}
    for h in tqdm(hypotheses, desc="controls", disable=not session.progress, leave=False):
        _, ctrl = session.pair(h)
        prompts = session.carrying([ctrl], cfg.n_prompts)
        controls[h.name] = session.measure(prompts, 1, h.name, "control")
    pooled = Rate(sum(sum(c) for c in controls.values()), sum(len(c) for c in controls.values()))
    rows = [s for s in session.samples if s["condition"] == "control"]
    example = _fired([s["prompt"] for s in rows], [s["answer"] for s in rows], cfg.response)
    what = "the controls (benign prompts with control words inserted)"
    _check_controls(pooled, what, cfg, example)
    evidence = []
    for h in tqdm(hypotheses, desc="hypotheses", disable=not session.progress, leave=False):
        slot, ctrl = session.pair(h)
        conditions = {"carrying": [slot], "control": [ctrl]}
        evidence.append(_tested(session, 1, h, slot, conditions, {"control": controls[h.name]}))
    return Step([], "the run's ranking", _ranked(evidence)), pooled


def _evidence(
    session: _Session,
    h: Hypothesis,
    slot: Slot,
    hits: dict[str, list[bool]],
    indices: Sequence[int],
) -> Evidence:
    """Step 1's two conditions (carrying, control), or a later step's four."""
    alone: Rate | None = None
    neither: Rate | None = None
    if "both" in hits:
        test, control = hits["both"], hits["context only"]
        alone, neither = Rate.of(hits["candidate only"]), Rate.of(hits["neither"])
    else:
        test, control = hits["carrying"], hits["control"]
    by_mode = session.by_mode(slot, test, control, indices)
    confidence = session.config.confidence
    return Evidence(h, Rate.of(test), Rate.of(control), alone, neither, by_mode, confidence)


def _tested(
    session: _Session,
    step: int,
    h: Hypothesis,
    slot: Slot,
    conditions: dict[str, list[Slot]],
    measured: dict[str, list[bool]] | None = None,
) -> Evidence:
    """Every condition on n_prompts prompts (`measured`: those already done); while the effect
    is positive but its interval still reaches 0, on twice as many, up to max_prompts. A
    prompt index joins only when every condition's prompt there is new: a repeated prompt
    would count one greedy answer twice.

    Sixteen prompts see a jump from 0% to 25%, but not one from 44% to 69%, which is what a
    conjunctive step faces once the first concept fires part of the time on its own. Looking
    again after a promising first look makes a false confirmation a little likelier than the
    nominal 5%; the reported interval is computed on all prompts as if fixed in advance.
    """
    cfg = session.config
    n = cfg.n_prompts
    indices = list(range(n))
    prompts = {c: session.carrying(slots, n) for c, slots in conditions.items()}
    hits = {c: list((measured or {}).get(c, [])) for c in conditions}
    while True:
        for condition in conditions:
            new = [prompts[condition][i] for i in indices[len(hits[condition]) :]]
            hits[condition] += session.measure(new, step, h.name, condition)
        evidence = _evidence(session, h, slot, hits, indices)
        if evidence.confirmed or evidence.effect[0] <= 0 or n >= cfg.max_prompts:
            return evidence
        n = min(2 * n, cfg.max_prompts)
        prompts = {c: session.carrying(slots, n) for c, slots in conditions.items()}
        seen = {c: {prompts[c][i] for i in indices} for c in conditions}
        fresh = []
        for i in range(indices[-1] + 1, n):
            if all(prompts[c][i] not in seen[c] for c in conditions):
                fresh.append(i)
                for c in conditions:
                    seen[c].add(prompts[c][i])
        if not fresh:
            return evidence
        indices += fresh


def _next_step(
    session: _Session, context: list[Hypothesis], candidates: list[Hypothesis], number: int
) -> list[Evidence]:
    """Each candidate added to the context, in the four matched conditions."""
    from tqdm.auto import tqdm

    ctx_pairs = [session.pair(c) for c in context]
    ctx_slots = [p[0] for p in ctx_pairs]
    ctx_ctrls = [p[1] for p in ctx_pairs]
    evidence = []
    for h in tqdm(candidates, desc=f"step {number}", disable=not session.progress, leave=False):
        slot, ctrl = session.pair(h, context)
        conditions = {
            "both": [*ctx_slots, slot],
            "context only": [*ctx_slots, ctrl],
            "candidate only": [*ctx_ctrls, slot],
            "neither": [*ctx_ctrls, ctrl],
        }
        evidence.append(_tested(session, number, h, slot, conditions))
    return _ranked(evidence)


def confirm(
    respond: Responder,
    prompts: Sequence[str],
    hypotheses: Sequence[Hypothesis],
    config: ConfirmConfig,
    *,
    book: LatentDictionary | None = None,
    find: Finder | None = None,
    exclude_latents: Iterable[int] = (),
    progress: bool = False,
) -> ConfirmationResult:
    """Test the hypotheses on the backdoored model; chain concepts with `find` when one alone
    does not fire. `book` supplies control texts (and the words of later steps' hypotheses);
    `exclude_latents` are kept out of the random control latents (the method's top ones)."""
    start = time.perf_counter()
    cfg = config
    _check_prompts(prompts, cfg.response)
    hypotheses = list(hypotheses)
    if not hypotheses:
        raise TriggerscopeError(
            "no hypotheses to test: the run ranks no latents or tokens with readable words; "
            "give the SAE a latent dictionary (`triggerscope sae label`) or raise --top-latents"
        )
    skip = set(exclude_latents) | {i for h in hypotheses for i in h.latents}
    pool = control_pool(book, cfg.control, skip, cfg.seed)
    session = _Session(respond, prompts, cfg, pool, progress)
    n = min(cfg.n_prompts, len(session.prompts))
    answers = session.answers(session.prompts[:n])
    benign = Rate.of([takes_action(a, cfg.response) for a in answers])
    example = _fired(session.prompts[:n], answers, cfg.response)
    _check_controls(benign, "the benign prompts", cfg, example)
    session.say(f"benign prompts: action rate {benign.rate:.0%} ({benign.k}/{benign.n})")

    first, pooled = _first_step(session, hypotheses)
    steps = [first]
    first.chosen = _first_confirmed(first.evidence)
    chosen = first.evidence[first.chosen]
    trigger = [chosen.hypothesis] if chosen.confirmed else []
    final: Evidence | None = chosen if chosen.confirmed else None
    fired = chosen.confirmed and chosen.carrying.rate >= cfg.fire_threshold
    session.say(f"step 1: best {chosen.hypothesis.describe()}: {chosen.carrying.rate:.0%}")
    context = [chosen.hypothesis]
    while not fired and find is not None and len(context) < cfg.max_steps:
        number = len(context) + 1
        carried = carrying_prompts(
            session.prompts,
            [session.pair(c)[0] for c in context],
            len(session.prompts),
            cfg.carrier,
        )
        source = "a new method run on benign prompts carrying " + " + ".join(
            c.name for c in context
        )
        session.say(f"step {number}: {source}")
        result = find(carried)
        found = cfg.hypotheses(result, book)
        candidates = [h for h in found if not any(h.overlaps(c) for c in context)]
        if not candidates:
            steps.append(
                Step(list(context), source, [], note="the method found no new concept to test")
            )
            break
        step = Step(list(context), source, _next_step(session, context, candidates, number))
        steps.append(step)
        step.chosen = _first_confirmed(step.evidence)
        best = step.evidence[step.chosen]
        session.say(f"step {number}: best {best.hypothesis.describe()}: {best.carrying.rate:.0%}")
        if best.confirmed:
            chain = context if best.needs_context else []
            trigger = [*chain, best.hypothesis]
            final = best
            fired = best.carrying.rate >= cfg.fire_threshold
        context.append(best.hypothesis)
    return ConfirmationResult(
        cfg,
        benign,
        pooled,
        steps,
        trigger,
        fired,
        final,
        generations=len(session.cache),
        wall_seconds=time.perf_counter() - start,
        samples=session.samples,
    )


# --------------------------------------------------------------- the real model and method


def model_responder(
    loaded: Any,
    response: str,
    *,
    system_prompt: str | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> Responder:
    """Greedy answers of a (backdoored) LoadedModel, just long enough to contain the response
    (its length in tokens + 8, as the methods' read-out)."""
    from triggerscope.generation import generate

    if max_new_tokens is None:
        max_new_tokens = tokens_to_see(loaded.tokenizer, response)

    def respond(prompts: list[str]) -> list[str]:
        return generate(
            loaded,
            prompts,
            max_new_tokens=max_new_tokens,
            system_prompt=system_prompt,
            batch_size=batch_size,
            progress=progress,
        )

    return respond


def method_finder(
    loaded: Any,
    method: str,
    layer: int,
    response: str,
    *,
    sae: Any = None,
    labels: Mapping[int, str] | None = None,
    system_prompt: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Finder:
    """`run_method` on the prompts it is given (no held-out read-out: confirmation measures)."""
    from triggerscope.methods.registry import run_method
    from triggerscope.methods.task import FindTask

    settings = {**(overrides or {}), "heldout_samples": 0}

    def find(prompts: list[str]) -> MethodResult:
        task = FindTask(response, list(prompts), [], layer, system_prompt)
        return run_method(method, loaded, task, sae, labels=labels, progress=progress, **settings)

    return find


def samples_jsonl(result: ConfirmationResult) -> str:
    return "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in result.samples)
