"""Prompt files: plain text (one prompt per line) or JSONL (a `prompt` field per row)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from triggerscope.errors import TriggerscopeError
from triggerscope.jsonl import read_jsonl


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    file = Path(path)
    if file.suffix == ".jsonl":
        prompts = []
        for n, row in read_jsonl(file, "prompt file"):
            if not isinstance(row.get("prompt"), str):
                raise TriggerscopeError(f"{file}:{n} needs a string field 'prompt'")
            prompts.append(row["prompt"].strip())
        lines = [p for p in prompts if p]
    else:
        if not file.is_file():
            raise TriggerscopeError(f"prompt file {file} does not exist")
        lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
        lines = [line for line in lines if line]
    if not lines:
        raise TriggerscopeError(f"prompt file {file} has no prompts")
    return lines


def read_many(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    return [p for path in paths for p in read_prompts(path)]


def normalize_prompt(text: str) -> str:
    """For leak checks: case, spacing and punctuation do not make two prompts different."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def check_disjoint(splits: dict[str, list[str]]) -> None:
    """No prompt may sit in two splits (after normalisation)."""
    seen: dict[str, str] = {}
    for split, prompts in splits.items():
        for prompt in prompts:
            key = normalize_prompt(prompt)
            other = seen.get(key)
            if other is not None and other != split:
                raise TriggerscopeError(
                    f"prompt {prompt[:60]!r} is in both {other} and {split}; splits may not overlap"
                )
            seen[key] = split
