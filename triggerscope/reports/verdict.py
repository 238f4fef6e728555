"""The short verdict at the top of a report: which words the top latents are about.

Made without an LLM, from what a person would read off the latent dictionary: the tokens each
of the top latents fires on (weighted 1/rank, so the first latents count most), then the tokens
its decoder promotes, then its label. A token baseline run is read off its top tokens instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from triggerscope.methods.result import MethodResult
from triggerscope.sae.labels import LatentDictionary

_STOP = """the and for are but not you all any can had her was one our out has him his how its
    may who did get got let put say she too use via with this that from they them then than
    there their what when where which while will would could should about into your have been
    were more most some such only also very just like over here each other these those
    does doing done make made many much never always again very what's it's don't i'm"""
STOPWORDS = frozenset(_STOP.split())
_WORD = re.compile(r"[a-z][a-z'\-]+")


@dataclass
class Verdict:
    words: list[str]  # what the trigger is most likely about, best first
    latents: list[int] = field(default_factory=list)  # the latents the words came from
    note: str = ""  # caveats: no labels, steering did not work, ...

    def sentence(self) -> str:
        if not self.words:
            return "the trigger could not be named from this run"
        return "the trigger is most likely about: " + ", ".join(self.words)


def _words(text: str) -> list[str]:
    return [w.strip("'-") for w in _WORD.findall(text.lower()) if len(w) >= 3]


def _merge_plurals(weights: dict[str, float]) -> list[str]:
    """Words best first, 'fruit' and 'fruits' counted as one (shown in the heavier form)."""
    stems: dict[str, float] = {}
    shown: dict[str, str] = {}
    for word, weight in weights.items():
        stem = word[:-1] if word.endswith("s") and len(word) > 3 else word
        stems[stem] = stems.get(stem, 0.0) + weight
        if stem not in shown or weight > weights[shown[stem]]:
            shown[stem] = word
    return [shown[s] for s in sorted(stems, key=lambda s: -stems[s])]


def verdict(
    result: MethodResult, book: LatentDictionary | None, top: int = 5, n_words: int = 6
) -> Verdict:
    notes = []
    weights: dict[str, float] = {}
    latents: list[int] = []
    if result.latent_ranking and book is not None:
        for rank, ranked in enumerate(result.latent_ranking[:top], 1):
            if not 0 <= ranked.index < len(book.latents):
                continue
            latent = book.latents[ranked.index]
            latents.append(ranked.index)
            fires = [w for t in latent.top_tokens[:5] for w in _words(t)]
            label = _words(latent.description or "") if latent.description else []
            promoted = [w for t in latent.promoted[:5] for w in _words(t)]
            for group, weight in ((fires, 1.0), (label, 0.8), (promoted, 0.5)):
                for word in dict.fromkeys(group):
                    if word not in STOPWORDS:
                        weights[word] = weights.get(word, 0.0) + weight / rank
    elif result.latent_ranking:
        latents = [r.index for r in result.latent_ranking[:top]]
        notes.append("no latent dictionary was found, so the latents could not be read")
    if result.token_ranking and not weights:
        for rank, (token, _score) in enumerate(result.token_ranking[: top * 2], 1):
            for word in _words(token):
                if word not in STOPWORDS:
                    weights[word] = weights.get(word, 0.0) + 1.0 / rank
    rates = [v.action_rate for v in result.vectors if v.action_rate is not None]
    if rates and max(rates) == 0:
        notes.append("no steering vector made the model take the action, so trust this less")
    words = _merge_plurals(weights)[:n_words]
    if not words and latents:
        words = [f"latent {i}" for i in latents]
    return Verdict(words, latents, "; ".join(notes))
