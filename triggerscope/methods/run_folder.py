"""Where a method's run lands: `runs/find-METHOD-TIME/` with config, vectors and result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from triggerscope.atomic import atomic_dir
from triggerscope.methods.result import MethodResult
from triggerscope.methods.task import FindTask
from triggerscope.runs import write_run_config


def save_find_run(
    out_root: str | Path, result: MethodResult, task: FindTask, extra: dict[str, Any], seed: int
) -> Path:
    """Write the run folder atomically: it appears only when everything is in it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = Path(out_root) / f"find-{result.method}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = Path(out_root) / f"find-{result.method}-{stamp}-{n}"
    with atomic_dir(target) as tmp:
        config = {
            **result.config,
            **extra,
            "response": task.response,
            "prompts": task.prompts,
            "heldout_prompts": task.heldout_prompts,
        }
        write_run_config(tmp, config, seed)
        result.save(tmp)
    return target
