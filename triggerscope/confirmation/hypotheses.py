"""Candidate triggers read off a method's result, with the words and texts that carry them.

Made only from what an auditor has: the method's ranking (latents, learned vectors' top latents,
tokens) and the latent dictionary (the words a latent fires on in its top-activating contexts,
its imported description, the tokens it promotes). Never from an organism's concept lists or
probe sets: the auditor does not know the trigger, and confirmation must not either.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from triggerscope.errors import TriggerscopeError
from triggerscope.methods.result import MethodResult
from triggerscope.organisms.matching import normalize
from triggerscope.reports.verdict import STOPWORDS
from triggerscope.sae.labels import MARK, Latent, LatentDictionary

Kind = Literal["latent", "latents", "token"]
KINDS: tuple[str, ...] = ("latent", "latents", "token")
_WORDLIKE = re.compile(r"^[A-Za-z][A-Za-z'\-]*[A-Za-z]$")
# the whole word around the marked token: "sound«ness» (noun)" -> "soundness"
_MARKED = re.compile(rf"(\w*){re.escape(MARK[0])}(.*?){re.escape(MARK[1])}(\w*)", re.DOTALL)


@dataclass(frozen=True)
class Hypothesis:
    """One candidate trigger concept and what carries it into a prompt."""

    name: str
    kind: Kind
    words: tuple[str, ...]  # inserted into benign prompts
    texts: tuple[str, ...] = ()  # top-activating corpus texts (latents only)
    latents: tuple[int, ...] = ()
    token: str | None = None
    source: str = ""  # where it came from, e.g. "sae-attribution rank 2"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TriggerscopeError(f"hypothesis kind must be one of {KINDS}, not {self.kind!r}")
        if not self.words and not self.texts:
            raise TriggerscopeError(f"hypothesis {self.name!r} has no words or texts to test")

    def describe(self, n: int = 4) -> str:
        shown = ", ".join(self.words[:n]) or "(its top texts)"
        return f"{self.name} ({shown})"

    def overlaps(self, other: Hypothesis) -> bool:
        """The same concept again: a shared latent, the same token, or a shared word."""
        if set(self.latents) & set(other.latents):
            return True
        if self.token is not None and self.token == other.token:
            return True
        return bool({w.casefold() for w in self.words} & {w.casefold() for w in other.words})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hypothesis:
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            words=tuple(data.get("words", ())),
            texts=tuple(data.get("texts", ())),
            latents=tuple(int(i) for i in data.get("latents", ())),
            token=data.get("token"),
            source=str(data.get("source", "")),
        )


def _usable(word: str, banned: set[str]) -> bool:
    return (
        len(word) >= 3
        and bool(_WORDLIKE.match(word))
        and word.casefold() not in STOPWORDS
        and word.casefold() not in banned
    )


def _dedupe(words: Iterable[str], banned: set[str]) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        word = word.strip().strip(".,;:!?\"'()[]{}")
        if _usable(word, banned) and word.casefold() not in seen:
            seen[word.casefold()] = word
    return list(seen.values())


def context_word(text: str) -> str:
    """The whole word the latent fired in (the marked token plus the letters glued to it);
    empty when the context's window may have cut that word."""
    text = text.replace("\\n", " ")
    match = _MARKED.search(text)
    if match is None:
        return ""
    left, mid, right = match.groups()
    if mid[:1].isspace():
        left = ""  # the token starts a new word
    if mid[-1:].isspace():
        right = ""
    cut_left = match.start() == 0 and bool(left)  # the window began inside the word
    cut_right = match.end() == len(text) and bool(right)
    return "" if cut_left or cut_right else f"{left}{mid.strip()}{right}"


def context_text(text: str) -> str:
    """A top-activating context as plain text (marks and escaped newlines removed)."""
    plain = text.replace(MARK[0], "").replace(MARK[1], "").replace("\\n", " ")
    return re.sub(r"\s+", " ", plain).strip()


def latent_words(latent: Latent, max_words: int = 4, banned: Iterable[str] = ()) -> list[str]:
    """Words that carry a latent: those it fires in (most frequent first), its description's,
    its top tokens; the word-start tokens it promotes only when those give fewer than two (the
    logit lens often promotes word pieces such as " predecess")."""
    ban = {b.casefold() for b in banned}
    fired = Counter(context_word(str(c.get("text", ""))) for c in latent.contexts)
    in_contexts = [w for w, _ in fired.most_common() if w]
    described = re.findall(r"[A-Za-z][A-Za-z'\-]+", latent.description or "")
    words = _dedupe([*in_contexts, *described, *latent.top_tokens], ban)
    if len(words) < 2:
        starts = [t for t in latent.promoted if t[:1].isspace() or t.startswith("▁")]
        words = _dedupe([*words, *(t.replace("▁", " ") for t in starts)], ban)
    return words[:max_words]


def latent_texts(latent: Latent, max_texts: int = 4) -> list[str]:
    texts = [context_text(str(c.get("text", ""))) for c in latent.contexts]
    return [t for t in dict.fromkeys(texts) if len(t) >= 8][:max_texts]


def _interleave(groups: Sequence[Sequence[str]], limit: int) -> list[str]:
    """Round-robin over groups (each latent of a set contributes in turn), de-duplicated."""
    out: dict[str, str] = {}
    for i in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if i < len(group) and group[i].casefold() not in out:
                out[group[i].casefold()] = group[i]
    return list(out.values())[:limit]


def response_words(response: str) -> set[str]:
    """Words of the action itself: inserting them would only test copying."""
    return set(re.findall(r"[a-z']+", normalize(response)))


def hypotheses_from_result(
    result: MethodResult,
    book: LatentDictionary | None,
    *,
    top_latents: int = 5,
    top_tokens: int = 3,
    vector_latents: int = 3,
    max_words: int = 4,
    max_texts: int = 4,
) -> list[Hypothesis]:
    """One hypothesis per top latent, per learned vector (its top latents together) and per top
    token, in the method's order; ones with no usable words or texts, or the same words as an
    earlier one, are left out."""
    banned = response_words(result.response)
    method = result.method
    out: list[Hypothesis] = []

    def latent_parts(index: int, label: str) -> tuple[list[str], list[str]]:
        if book is not None and 0 <= index < len(book.latents):
            latent = book.latents[index]
            return latent_words(latent, max_words, banned), latent_texts(latent, max_texts)
        return _dedupe(re.findall(r"[A-Za-z][A-Za-z'\-]+", label), banned)[:max_words], []

    def add(hypothesis: Hypothesis) -> None:
        same = any(
            (h.words == hypothesis.words and h.texts == hypothesis.texts)
            or (h.latents and h.latents == hypothesis.latents)
            for h in out
        )
        if not same:
            out.append(hypothesis)

    for rank, ranked in enumerate(result.latent_ranking[:top_latents], 1):
        words, texts = latent_parts(ranked.index, ranked.label)
        if words or texts:
            add(
                Hypothesis(
                    f"latent {ranked.index}",
                    "latent",
                    tuple(words),
                    tuple(texts),
                    (ranked.index,),
                    source=f"{method} rank {rank}",
                )
            )
    if vector_latents > 1:
        for i, vector in enumerate(result.vectors):
            tops = [r.index for r in vector.top_latents[:vector_latents]]
            if len(tops) < 2:
                continue
            parts = [
                latent_parts(j, r.label) for j, r in zip(tops, vector.top_latents, strict=False)
            ]
            words = _interleave([p[0] for p in parts], max_words)
            texts = _interleave([p[1] for p in parts], max_texts)
            if words or texts:
                name = "latents " + "+".join(map(str, tops))
                add(
                    Hypothesis(
                        name,
                        "latents",
                        tuple(words),
                        tuple(texts),
                        tuple(tops),
                        source=f"{method} vector {i}",
                    )
                )
    token_source = f"{method} rank" if method == "token" else f"{method} token"
    for rank, (token, _score) in enumerate(result.token_ranking[:top_tokens], 1):
        words = _dedupe([token], banned)
        if words:
            add(
                Hypothesis(
                    f"token {token.strip()!r}",
                    "token",
                    tuple(words),
                    token=token,
                    source=f"{token_source} {rank}",
                )
            )
    return out
