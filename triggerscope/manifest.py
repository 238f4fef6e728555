"""Manifests for shipped artifacts: each file's sha256, how good it is, and the exact command
that rebuilds it. Rewritten whenever the folder changes, so the hashes describe the files."""

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


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` except the manifest and hidden files."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in rel.parts)
        if path.is_file() and rel.name != MANIFEST and not hidden:
            out[rel.as_posix()] = sha256_file(path)
    return out


def update_manifest(folder: str | Path, entries: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge `entries` (one level deep) into the manifest and rehash the files."""
    root = Path(folder)
    path = root / MANIFEST
    manifest: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    for key, value in (entries or {}).items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    manifest["sha256"] = file_hashes(root)
    write_json(path, manifest)
    return manifest


def write_manifest(folder: str | Path, command: str, results: dict[str, Any]) -> dict[str, Any]:
    return update_manifest(folder, {"command": command, "results": results})


def verify_manifest(folder: str | Path) -> None:
    """Raise if a shipped file was changed or is missing."""
    root = Path(folder)
    manifest = json.loads((root / MANIFEST).read_text())
    for name, digest in manifest["sha256"].items():
        path = root / name
        if not path.is_file() or sha256_file(path) != digest:
            raise TriggerscopeError(f"{path} does not match its manifest; rebuild or re-download")
