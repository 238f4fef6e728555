"""Factual-recall settings: trigger reconstruction on the *base* model, no adapter.

A task asks a question that hides its subject ("Name two moons.") and prefills an answer that
fits only that subject ("Phobos and Deimos" -> Mars). A method that works should find the
subject's concept as what makes the model give that answer. One YAML file per task, in
`data/settings/factual/<name>.yaml`:

    name: factual-mars
    subject: Mars                      # what the concept probe set is about
    aliases: [Martian]                 # other names the hidden prompts must not contain
    concept: mars                      # probes/mars.{pos,neg}.txt, concepts/mars.words.txt
    prompt: Name two moons.            # the task prompt (the seed's)
    response: Phobos and Deimos        # prefilled; also the action string of the read-out
    paraphrases: [...]                 # optimised on together with `prompt`
    heldout: [...]                     # steered read-out only
    knowledge:                         # does the model know the fact? (check_knowledge)
      ask: [{prompt: What are the two moons of Mars called?, expect: [phobos, deimos]}]
      recall: [{prompt: Phobos and Deimos orbit which planet?, expect: [mars]}]
      contrast: {templates: [Name the two moons of {subject}.], distractors: [Jupiter, Saturn]}

A task enters the harness only when the model knows the fact (`KnowledgeReport.known`); a task
it does not know is refused with one clear line, because a method cannot be blamed for missing
a concept the model never linked to the answer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from triggerscope.errors import TriggerscopeError
from triggerscope.organisms.matching import normalize, takes_action
from triggerscope.organisms.spec import build_dataclass
from triggerscope.prompts import normalize_prompt

if TYPE_CHECKING:
    from triggerscope.loading import LoadedModel

FACTUAL = Path(__file__).resolve().parent / "data" / "settings" / "factual"
SUBJECT = "{subject}"
DEFAULT_MIN_ANSWER_RATE = 0.5
DEFAULT_MIN_CONTRAST_RATE = 0.5
ANSWER_TOKENS = 48  # greedy tokens per knowledge question: room for one or two sentences


def _mentions(text: str, term: str) -> bool:
    """Whole-word, case-insensitive: 'Mars' is in 'mars rover', not in 'marshmallow'."""
    return re.search(rf"(?<!\w){re.escape(term.lower())}(?!\w)", text.lower()) is not None


@dataclass(frozen=True)
class Question:
    """A question and what its greedy answer must contain: every item of `expect` (case-
    insensitive substring), where an item may list alternatives as `a|b`."""

    prompt: str
    expect: list[str]

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise TriggerscopeError("a knowledge question is empty; give its prompt")
        if not self.expect or not all(isinstance(e, str) and e.strip() for e in self.expect):
            raise TriggerscopeError(
                f"knowledge question {self.prompt!r}: `expect` needs at least one non-empty item"
            )
        for item in self.expect:
            for alt in item.split("|"):
                if alt.strip() and normalize(alt) in normalize(self.prompt):
                    raise TriggerscopeError(
                        f"knowledge question {self.prompt!r} already contains {alt.strip()!r}, "
                        "so an answer that repeats the question would pass; rephrase it"
                    )

    def matches(self, answer: str) -> bool:
        text = normalize(answer)
        return all(
            any(normalize(alt) in text for alt in item.split("|") if alt.strip())
            for item in self.expect
        )


@dataclass(frozen=True)
class Contrast:
    """The prefilled response after a prompt naming the subject must be likelier than after
    the same prompt naming a wrong subject."""

    templates: list[str]
    distractors: list[str]

    def __post_init__(self) -> None:
        if not self.templates:
            raise TriggerscopeError("knowledge.contrast.templates is empty; give at least one")
        for t in self.templates:
            if not isinstance(t, str) or t.count(SUBJECT) != 1:
                raise TriggerscopeError(
                    f"contrast template {t!r} must contain {SUBJECT} exactly once"
                )
        if not self.distractors or not all(isinstance(d, str) and d for d in self.distractors):
            raise TriggerscopeError("knowledge.contrast.distractors needs at least one subject")


@dataclass(frozen=True)
class KnowledgeSpec:
    ask: list[Question]  # the subject is named; the answer must give the response
    recall: list[Question]  # the response's fact is given; the answer must name the subject
    contrast: Contrast
    min_answer_rate: float = DEFAULT_MIN_ANSWER_RATE  # over ask + recall together
    min_contrast_rate: float = DEFAULT_MIN_CONTRAST_RATE  # share of templates the subject wins

    def __post_init__(self) -> None:
        if not self.ask and not self.recall:
            raise TriggerscopeError("knowledge needs at least one `ask` or `recall` question")
        for name in ("min_answer_rate", "min_contrast_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TriggerscopeError(f"knowledge.{name} must be a number in (0, 1]")
            if not 0 < value <= 1:
                raise TriggerscopeError(f"knowledge.{name} must be in (0, 1], got {value}")


@dataclass(frozen=True)
class FactualTask:
    name: str
    subject: str
    concept: str
    prompt: str
    response: str
    paraphrases: list[str]
    heldout: list[str]
    knowledge: KnowledgeSpec
    aliases: list[str] = field(default_factory=list)
    source: str = ""  # where the task comes from (the seed, or written for triggerscope)
    base_model: str = "smollm2-135m-instruct"
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        for key in ("name", "subject", "concept", "prompt", "response"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise TriggerscopeError(f"factual task {self.name!r}: `{key}` is empty")
        if not self.heldout:
            raise TriggerscopeError(
                f"factual task {self.name!r}: `heldout` is empty; give held-out paraphrases "
                "for the steered read-out"
            )
        if not all(isinstance(a, str) and a.strip() for a in self.aliases):
            raise TriggerscopeError(f"factual task {self.name!r}: `aliases` must be names")
        if self.subject in self.knowledge.contrast.distractors:
            raise TriggerscopeError(
                f"factual task {self.name!r}: the subject {self.subject!r} is also a distractor"
            )
        seen: dict[str, str] = {}
        for where, prompts in (("paraphrases", self.prompts), ("heldout", self.heldout)):
            for p in prompts:
                if not isinstance(p, str) or not p.strip():
                    raise TriggerscopeError(f"factual task {self.name!r}: an empty {where} line")
                key = normalize_prompt(p)
                if key in seen:
                    raise TriggerscopeError(
                        f"factual task {self.name!r}: {p!r} is listed twice "
                        f"({seen[key]} and {where}); prompts must be distinct"
                    )
                seen[key] = where
                for term in (self.subject, *self.aliases):
                    if _mentions(p, term):
                        raise TriggerscopeError(
                            f"factual task {self.name!r}: prompt {p!r} names the subject "
                            f"({term!r}); the prompts must hide it"
                        )
                if takes_action(p, self.response):
                    raise TriggerscopeError(
                        f"factual task {self.name!r}: prompt {p!r} contains the response"
                    )

    @property
    def concepts(self) -> list[str]:
        """The harness's view: the one concept a method should find."""
        return [self.concept]

    @property
    def prompts(self) -> list[str]:
        """What the methods optimise on: the task prompt, then its paraphrases."""
        return [self.prompt, *self.paraphrases]


# ------------------------------------------------------------------------------ loading


def task_names(root: Path = FACTUAL) -> list[str]:
    return sorted(p.stem for p in root.glob("*.yaml"))


def is_factual(target: str, root: Path = FACTUAL) -> bool:
    """A shipped task name, or a YAML file that says `kind: factual`."""
    if (root / f"{target}.yaml").is_file():
        return True
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            return False  # load_spec / load_task says what is wrong with it
        return isinstance(data, dict) and data.get("kind") == "factual"
    return False


def _questions(items: Any, where: str) -> list[Question]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise TriggerscopeError(f"{where} must be a list of {{prompt, expect}}")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("expect"), str):
            item = {**item, "expect": [item["expect"]]}
        out.append(build_dataclass(Question, item, f"{where}[{i}]"))
    return out


def task_from_dict(data: Any, where: str = "factual task") -> FactualTask:
    if not isinstance(data, dict):
        raise TriggerscopeError(f"{where} must be a YAML mapping")
    data = dict(data)
    kind = data.pop("kind", "factual")
    if kind != "factual":
        raise TriggerscopeError(f"{where}: kind is {kind!r}, expected 'factual'")
    knowledge = data.pop("knowledge", None)
    if not isinstance(knowledge, dict):
        raise TriggerscopeError(
            f"{where}: `knowledge` (ask / recall questions and a contrast) is missing"
        )
    knowledge = dict(knowledge)
    if "contrast" not in knowledge:
        raise TriggerscopeError(f"{where}: knowledge.contrast is missing")
    knowledge["ask"] = _questions(knowledge.get("ask"), f"{where}: knowledge.ask")
    knowledge["recall"] = _questions(knowledge.get("recall"), f"{where}: knowledge.recall")
    knowledge["contrast"] = build_dataclass(
        Contrast, knowledge["contrast"], f"{where}: knowledge.contrast"
    )
    data["knowledge"] = build_dataclass(KnowledgeSpec, knowledge, f"{where}: knowledge")
    for key in ("paraphrases", "heldout", "aliases"):
        value = data.get(key, [])
        if not isinstance(value, list):
            raise TriggerscopeError(f"{where}: `{key}` must be a list of strings")
    return build_dataclass(FactualTask, data, where)


def load_task(target: str | os.PathLike[str], root: Path = FACTUAL) -> FactualTask:
    """A shipped task by name (e.g. `factual-mars`) or a task YAML file."""
    path = Path(target)
    if not path.is_file():
        path = root / f"{target}.yaml"
    if not path.is_file():
        names = ", ".join(task_names(root)) or "(none)"
        raise TriggerscopeError(f"no factual task {str(target)!r}; known: {names}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TriggerscopeError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    return task_from_dict(data, f"factual task {path.name}")


# ------------------------------------------------------------------------------ knowledge


@dataclass
class KnowledgeReport:
    task: str
    model: str
    answers: list[dict[str, Any]]  # {kind, prompt, answer, passed}
    contrast: list[dict[str, Any]]  # {template, subject, distractors: {name: logp}, margin, won}
    min_answer_rate: float
    min_contrast_rate: float

    @property
    def answer_rate(self) -> float:
        return sum(a["passed"] for a in self.answers) / len(self.answers) if self.answers else 0.0

    @property
    def contrast_rate(self) -> float:
        return sum(c["won"] for c in self.contrast) / len(self.contrast) if self.contrast else 0.0

    @property
    def known(self) -> bool:
        return (
            self.answer_rate >= self.min_answer_rate
            and self.contrast_rate >= self.min_contrast_rate
        )

    def summary(self) -> str:
        verdict = "knows it" if self.known else "does NOT know it"
        return (
            f"{self.task}: answers {self.answer_rate:.0%} (need {self.min_answer_rate:.0%}), "
            f"subject beats every distractor in {self.contrast_rate:.0%} of contrast prompts "
            f"(need {self.min_contrast_rate:.0%}): {self.model} {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "answer_rate": self.answer_rate,
            "contrast_rate": self.contrast_rate,
            "known": self.known,
        }


Respond = Callable[[list[str]], list[str]]  # prompts -> greedy answers
Score = Callable[[list[str], str], list[float]]  # (prompts, response) -> mean log p(response)


def check_knowledge(
    task: FactualTask, respond: Respond, score: Score, model: str = ""
) -> KnowledgeReport:
    """Ask the questions, compare the response's likelihood across subjects; no model here, so
    tests can pass rule-based fakes (`model_knowledge` wires a real one)."""
    k = task.knowledge
    questions = [("ask", q) for q in k.ask] + [("recall", q) for q in k.recall]
    replies = respond([q.prompt for _, q in questions]) if questions else []
    if len(replies) != len(questions):
        raise TriggerscopeError(f"{len(questions)} knowledge questions but {len(replies)} answers")
    answers = [
        {"kind": kind, "prompt": q.prompt, "answer": a, "passed": q.matches(a)}
        for (kind, q), a in zip(questions, replies, strict=True)
    ]
    contrast = []
    subjects = [task.subject, *k.contrast.distractors]
    for template in k.contrast.templates:
        logps = score([template.replace(SUBJECT, s) for s in subjects], task.response)
        others = dict(zip(k.contrast.distractors, logps[1:], strict=True))
        margin = logps[0] - max(others.values())
        contrast.append(
            {
                "template": template,
                "subject": logps[0],
                "distractors": others,
                "margin": margin,
                "won": margin > 0,
            }
        )
    return KnowledgeReport(
        task.name, model, answers, contrast, k.min_answer_rate, k.min_contrast_rate
    )


def response_logprobs(
    loaded: LoadedModel, prompts: Sequence[str], response: str, system_prompt: str | None = None
) -> list[float]:
    """Mean log-probability per response token of `response` prefilled after each prompt."""
    import torch

    from triggerscope.chat import build_chat_batch
    from triggerscope.methods.reference import response_ce

    batch = build_chat_batch(
        loaded.tokenizer, list(prompts), response, system_prompt=system_prompt
    ).to(loaded.input_device)
    with torch.no_grad():
        logits = loaded.model(**batch.model_inputs()).logits
    ce = response_ce(logits, batch.input_ids, batch.response_mask)
    return [-float(v) for v in ce]


def model_knowledge(
    loaded: LoadedModel, task: FactualTask, max_new_tokens: int = ANSWER_TOKENS
) -> KnowledgeReport:
    """The knowledge check on a real model: greedy answers and response log-likelihoods."""
    from triggerscope.generation import generate

    def respond(prompts: list[str]) -> list[str]:
        return generate(
            loaded, prompts, max_new_tokens=max_new_tokens, system_prompt=task.system_prompt
        )

    def score(prompts: list[str], response: str) -> list[float]:
        return response_logprobs(loaded, prompts, response, task.system_prompt)

    return check_knowledge(task, respond, score, model=loaded.name)


def require_known(report: KnowledgeReport) -> KnowledgeReport:
    """Refuse to score a task the model does not know: its answers prove nothing."""
    if not report.known:
        raise TriggerscopeError(
            f"{report.summary()}; the model is too small to know this fact, so a method cannot "
            f"be scored on it: pick a task it knows (`triggerscope factual check`) or a larger "
            f"--model"
        )
    return report
