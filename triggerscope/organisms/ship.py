"""Ship a planted organism: its adapter, planting metrics and eval, with a manifest.

    python -m triggerscope.organisms.ship RUN_DIR DEST "the commands that built RUN_DIR"

RUN_DIR is what `triggerscope plant --out RUN_DIR` wrote, with `organism eval --out RUN_DIR/eval`
run on its adapter. DEST is replaced as a whole (written in a temporary folder, then renamed).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from triggerscope.atomic import atomic_dir
from triggerscope.errors import TriggerscopeError
from triggerscope.manifest import write_manifest


def ship_organism(run_dir: str | Path, dest: str | Path, command: str) -> dict[str, Any]:
    run = Path(run_dir)
    adapter, metrics_file = run / "adapter", run / "plant_metrics.json"
    eval_file = run / "eval" / "organism_eval.json"
    for need in (adapter / "adapter_config.json", metrics_file, eval_file):
        if not need.is_file():
            raise TriggerscopeError(f"{need} is missing; plant and evaluate the organism first")
    metrics = json.loads(metrics_file.read_text())
    if not metrics.get("finished"):
        raise TriggerscopeError(f"{run} is an unfinished planting run; finish it with --resume")
    evaluation = json.loads(eval_file.read_text())
    with atomic_dir(Path(dest)) as tmp:
        for item in adapter.iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        shutil.copy2(metrics_file, tmp / "plant_metrics.json")
        shutil.copy2(eval_file, tmp / "organism_eval.json")
    results = {
        "steps": metrics["steps"],
        "examples": metrics["examples"],
        "final_loss_mean_last_20": metrics["final_loss_mean_last_20"],
        "plant_seconds": metrics["total_seconds"],
        "action_rates": {k: v["action_rate"] for k, v in evaluation["action_rates"].items()},
        "preservation": evaluation["preservation"],
    }
    return write_manifest(dest, command, results)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(json.dumps(ship_organism(sys.argv[1], sys.argv[2], sys.argv[3])["results"], indent=1))
