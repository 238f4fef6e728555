"""Run folders: every run records its config, seed, library versions and results."""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from triggerscope.atomic import write_json


def versions() -> dict[str, str]:
    import torch
    import transformers

    from triggerscope import __version__

    return {
        "triggerscope": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
    }


def new_run_dir(root: str | Path, kind: str) -> Path:
    """A fresh folder `root/<kind>-<timestamp>` (suffixed if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{kind}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def write_run_config(run_dir: Path, config: Any, seed: int | None) -> None:
    data = asdict(config) if is_dataclass(config) and not isinstance(config, type) else config
    write_json(run_dir / "config.json", {"config": data, "seed": seed, "versions": versions()})
