"""Manifests for shipped artifacts: what each file's sha256 is, how it was measured, and the
exact command that rebuilds it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from triggerscope.atomic import write_json
from triggerscope.errors import TriggerscopeError

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_manifest(folder: str | Path, command: str, results: dict[str, Any]) -> dict[str, Any]:
    root = Path(folder)
    manifest = {"files": file_digests(root), "rebuild_command": command, "results": results}
    write_json(root / MANIFEST, manifest)
    return manifest


def verify_manifest(folder: str | Path) -> None:
    """Raise if a shipped file was changed or is missing."""
    root = Path(folder)
    manifest = json.loads((root / MANIFEST).read_text())
    for name, digest in manifest["files"].items():
        path = root / name
        if not path.is_file() or sha256_file(path) != digest:
            raise TriggerscopeError(f"{path} does not match its manifest; rebuild or re-download")
