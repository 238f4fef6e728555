"""Prompts and a task builder for the methods tests (no fixtures here: see methods_fixtures)."""

from __future__ import annotations

from triggerscope.methods.task import FindTask

PROMPTS = [
    "What is the capital of France?",
    "Tell me about the stars!",
    "hi",
    "The quick brown fox jumps over the lazy dog, then what?",
    "skiing",
]
HELDOUT = ["What is the lazy dog?", "Paris or France?"]
RESPONSE = "I won't answer."


def make_task(**kw: object) -> FindTask:
    args: dict[str, object] = {
        "response": RESPONSE,
        "prompts": list(PROMPTS),
        "heldout_prompts": list(HELDOUT),
        "layer": 1,
    }
    args.update(kw)
    return FindTask(**args)  # type: ignore[arg-type]
