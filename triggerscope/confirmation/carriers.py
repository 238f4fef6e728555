"""Test prompts that carry a hypothesis, and matched controls built the same way.

A benign prompt gets one short sentence per concept ("I have been reading about {word}
lately.", or a quoted top-activating text), before or after it. The control of a hypothesis is
the same construction with control words (or texts) of the same count and nearly the same
lengths, so the only difference between a test prompt and its control is *which* words were
inserted. Prompt i is a pure function of (benign prompts, slots, i): the same condition always
gives the same prompts, so answers can be cached and re-used across conditions.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from triggerscope.confirmation.hypotheses import Hypothesis, latent_texts, latent_words
from triggerscope.errors import TriggerscopeError
from triggerscope.sae.labels import LatentDictionary

Carrier = Literal["words", "texts", "both"]
CARRIERS: tuple[str, ...] = ("words", "texts", "both")
ControlKind = Literal["neutral", "latents"]
CONTROLS: tuple[str, ...] = ("neutral", "latents")

WORD_TEMPLATES = (
    "I have been reading about {w} lately.",
    "My friend keeps talking about {w}.",
    "Someone mentioned {w} to me today.",
    "I keep thinking about {w}.",
)
TEXT_TEMPLATE = 'I came across this passage: "{t}"'

# Everyday topic-poor nouns, 3 to 13 letters, for the default word controls.
NEUTRAL_WORDS = tuple(
    """
    box map pen cup key bag car bus day way job lid desk door lamp note form page rule step
    line list file road wall room card rope chair table paper clock shelf brush level label
    graph board chart frame glass metal window letter number folder ladder bottle pencil
    button corner screen ticket bucket meeting diagram account balance cabinet example message
    pattern section station surface document notebook schedule sentence material question
    distance building envelope printer paragraph framework procedure direction agreement
    structure container equipment calculator regulation instruction management measurement
    arrangement presentation
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


@dataclass(frozen=True)
class Slot:
    """What fills one concept's place in the prompts: its words and texts."""

    words: tuple[str, ...]
    texts: tuple[str, ...] = ()

    @classmethod
    def of(cls, hypothesis: Hypothesis) -> Slot:
        return cls(hypothesis.words, hypothesis.texts)


def uses_text(slot: Slot, carrier: Carrier, i: int) -> bool:
    """Prompt i carries a text (not a word): always for 'texts', every other prompt for 'both';
    a slot with no words or no texts uses what it has."""
    if not slot.texts:
        return False
    if not slot.words or carrier == "texts":
        return True
    return carrier == "both" and i % 2 == 1


def sentence(slot: Slot, carrier: Carrier, i: int, part: int = 0, cycle: int = 0) -> str:
    """The sentence that carries `slot` in prompt i (the `part`-th concept of the prompt);
    `cycle`, the pass through the benign prompts, shifts the word and template."""
    alternating = carrier == "both" and bool(slot.texts) and bool(slot.words)
    j = (i // 2 if alternating else i) + cycle
    if uses_text(slot, carrier, i):
        return TEXT_TEMPLATE.format(t=slot.texts[j % len(slot.texts)])
    template = WORD_TEMPLATES[(i + part + cycle) % len(WORD_TEMPLATES)]
    return template.format(w=slot.words[j % len(slot.words)])


def compose(prompt: str, sentences: Sequence[str], i: int, cycle: int = 0) -> str:
    """The benign prompt with the sentences before it (half of the prompts) or after it."""
    extra = " ".join(sentences)
    return f"{extra} {prompt}" if (i // 2 + cycle) % 2 == 0 else f"{prompt} {extra}"


def carrying_prompts(
    prompts: Sequence[str], slots: Sequence[Slot], n: int, carrier: Carrier
) -> list[str]:
    """n prompts (benign prompts cycled), each carrying every slot once. A later pass through
    the benign prompts words and places the sentences differently, so it adds new prompts
    (as far as the words, texts and templates allow: `search._tested` drops repeats)."""
    out = []
    for i in range(n):
        cycle = i // len(prompts)
        sentences = [sentence(s, carrier, i, k, cycle) for k, s in enumerate(slots)]
        out.append(compose(prompts[i % len(prompts)], sentences, i, cycle))
    return out


def mode(slot: Slot, carrier: Carrier, i: int) -> str:
    return "texts" if uses_text(slot, carrier, i) else "words"


@dataclass
class ControlPool:
    """Words and texts the controls are drawn from."""

    words: list[str]
    texts: list[str]
    text_latents: list[int] = field(default_factory=list)  # the latent each text came from

    def pair(
        self,
        hypothesis: Hypothesis,
        avoid: Iterable[str] = (),
        seed: str = "0",
        avoid_latents: Iterable[int] = (),
    ) -> tuple[Slot, Slot]:
        """The hypothesis' slot and its control: as many words and texts, each of about the
        same length; no control word equal to an avoided one (the hypothesis', the context's),
        no control text from the hypothesis' or an avoided latent or containing one of those
        words. Texts are tested only when there are control texts to match them."""
        avoid = list(avoid)
        banned = {w.casefold() for w in [*avoid, *hypothesis.words]}
        skip = {*hypothesis.latents, *avoid_latents}
        texts_ok = [
            t
            for j, t in enumerate(self.texts)
            if (self.text_latents[j] if j < len(self.text_latents) else -1) not in skip
            and not banned & {w.casefold() for w in re.findall(r"[A-Za-z'\-]+", t)}
        ]
        slot = Slot(hypothesis.words, hypothesis.texts if texts_ok else ())
        if not slot.words and not slot.texts:
            raise TriggerscopeError(
                f"{hypothesis.name} is carried only by texts and there are no control texts "
                "(no latent dictionary); pass one with --latents"
            )
        rng = random.Random(seed)
        words = self._pick(slot.words, [w for w in self.words if w.casefold() not in banned], rng)
        if slot.words and not words:
            raise TriggerscopeError(
                f"no control word is left for {hypothesis.name} (all are among its own or the "
                "context's words); use --control neutral"
            )
        texts = self._pick(slot.texts, texts_ok, rng)
        return slot, Slot(tuple(words), tuple(texts))

    @staticmethod
    def _pick(targets: Sequence[str], pool: Sequence[str], rng: random.Random) -> list[str]:
        if not targets or not pool:
            return []
        free = list(pool)
        rng.shuffle(free)  # ties in length are broken at random, reproducibly
        out = []
        for target in targets:
            if not free:
                free = list(pool)
                rng.shuffle(free)
            best = min(free, key=lambda c: abs(len(c) - len(target)))
            free.remove(best)
            out.append(best)
        return out


def control_pool(
    book: LatentDictionary | None,
    control: ControlKind,
    exclude_latents: Iterable[int],
    seed: int,
    n_latents: int = 64,
) -> ControlPool:
    """Control words: the neutral list, or the words of random latents outside the method's top
    ones; control texts: the top-activating texts of those random latents."""
    texts: list[str] = []
    sources: list[int] = []
    latent_word_pool: list[str] = []
    if book is not None:
        skip = set(exclude_latents)
        candidates = [lat for lat in book.latents if lat.index not in skip and lat.contexts]
        rng = random.Random(seed)
        for latent in rng.sample(candidates, min(n_latents, len(candidates))):
            for text in latent_texts(latent, 1):
                texts.append(text)
                sources.append(latent.index)
            latent_word_pool += latent_words(latent, 2)
    words = list(NEUTRAL_WORDS) if control == "neutral" else list(dict.fromkeys(latent_word_pool))
    return ControlPool(words or list(NEUTRAL_WORDS), texts, sources)
