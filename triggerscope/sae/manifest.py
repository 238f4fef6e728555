"""The manifest of a folder of shipped SAEs: what each file's hash is, how good, how made.

Rewritten whenever something in the folder changes (a retrained layer, a latent dictionary added
next to an SAE), so `sha256` always describes the files as they are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from triggerscope.atomic import write_json

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` except the manifest and hidden files."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (
            path.is_file()
            and rel.name != MANIFEST
            and not any(p.startswith(".") for p in rel.parts)
        ):
            out[rel.as_posix()] = sha256_file(path)
    return out


def update_manifest(folder: str | Path, entries: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge `entries` (e.g. {"layers": {"8": {...}}}) into the manifest and rehash the files."""
    folder = Path(folder)
    path = folder / MANIFEST
    manifest: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    for key, value in (entries or {}).items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    manifest["sha256"] = file_hashes(folder)
    write_json(path, manifest)
    return manifest
