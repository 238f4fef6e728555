"""JSONL input files: one JSON object a line, with errors that name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from triggerscope.errors import TriggerscopeError


def read_jsonl(
    path: str | os.PathLike[str], what: str, *, hint: str = ""
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; `what` names the file in errors
    ("prompt file"), `hint` ends the missing-file message with how to fix it."""
    file = Path(path)
    if not file.is_file():
        raise TriggerscopeError(f"{what} {file} does not exist{'; ' + hint if hint else ''}")
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TriggerscopeError(
                f"{file}:{n} is not valid JSON ({err.msg}); write one JSON object per line"
            ) from err
        if not isinstance(row, dict):
            raise TriggerscopeError(f"{file}:{n} is not a JSON object")
        yield n, row
