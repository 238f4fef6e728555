"""The built-in organisms, shipped as data: specs, prompt banks and trained adapters."""

from __future__ import annotations

from pathlib import Path

from triggerscope.errors import TriggerscopeError

DATA = Path(__file__).resolve().parent.parent / "data"
ORGANISMS = DATA / "organisms"
ADAPTERS = DATA / "adapters"


def builtin_names() -> list[str]:
    return sorted(p.parent.name for p in ORGANISMS.glob("*/spec.yaml"))


def builtin_spec_path(name: str) -> Path:
    path = ORGANISMS / name / "spec.yaml"
    if not path.is_file():
        names = ", ".join(builtin_names()) or "(none)"
        raise TriggerscopeError(f"no organism spec {name!r}; pass a spec file or one of: {names}")
    return path


def builtin_adapter_path(name: str) -> Path:
    path = ADAPTERS / name
    if not (path / "adapter_config.json").is_file():
        raise TriggerscopeError(
            f"no shipped adapter for {name!r}; plant it with: triggerscope plant {name}"
        )
    return path
