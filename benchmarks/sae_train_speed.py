"""How long does one SAE for the default model take on this CPU, activation caching included?

Run (about half an hour on 2 quiet cores):

    .venv/bin/python benchmarks/sae_train_speed.py --threads 2

Runs the shipped layer-8 recipe end to end, as a user would, in a fresh process with a fresh
activation cache (no cache is reused or grown): `triggerscope sae train --layers 8` with 1M
cached user tokens, 2 epochs (2M training tokens), 4608 latents, k 32, batch 1024, then the
held-out measurement (200 texts). The phases' times come from the run's own manifest; the
total is the wall clock of the whole command, model load included. It also says whether the
rebuilt weights are byte-identical to the shipped ones. The CPU load average is recorded before
and after, since other jobs may share the machine. Results: benchmarks/results/sae_train_speed.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "triggerscope" / "data" / "saes" / "smollm2-135m-instruct" / "layer8"
RECIPE = (
    "--layers 8 --max-tokens 1000000 --k 32 --batch-size 1024 --epochs 2 "
    "--aux-coef 0.03125 --seed 0 --eval-texts 200"
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    cli = Path(sys.executable).with_name("triggerscope")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sae"
        command = (
            f"{cli} sae train {RECIPE} --threads {args.threads} --out {out} "
            f"--cache {Path(tmp) / 'cache'} --work {Path(tmp) / 'work'} --no-progress"
        )
        start = time.perf_counter()
        subprocess.run(shlex.split(command), check=True)
        wall = time.perf_counter() - start
        manifest = json.loads((out / "manifest.json").read_text())
        layer = manifest["layers"]["8"]
        identical = sha256(out / "layer8" / "sae_weights.safetensors") == sha256(
            SHIPPED / "sae_weights.safetensors"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    caching = manifest["activations"]["caching_seconds"]
    rows = {
        "caching 1M user tokens to layer 8": caching,
        "training, 2 epochs (2M tokens)": layer["train_seconds"],
        "held-out measurement (200 texts)": layer.get("eval_seconds"),
        "whole command (model load included)": round(wall, 1),
    }
    m = layer["metrics"]
    lines = [
        "# One SAE for the default model, caching included",
        "",
        f"Command: `python benchmarks/sae_train_speed.py --threads {args.threads}`, which runs "
        f"`triggerscope sae train {RECIPE} --threads {args.threads}` with a fresh cache.",
        "",
        f"Load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f} (2 cores); peak "
        f"RSS {peak_mib:.0f} MiB.",
        "",
        "| phase | seconds | minutes |",
        "|---|---|---|",
        *(f"| {k} | {v} | {v / 60:.1f} |" for k, v in rows.items() if v is not None),
        "",
        f"Caching + training: **{(caching + layer['train_seconds']) / 60:.1f} min** (target: "
        f"one SAE, caching included, within 60 min). Result: explained variance "
        f"{m['explained_variance']:.3f}, CE-loss score {m['ce_score']:.3f}, L0 {m['l0']:.0f}, "
        f"dead {m['dead_fraction']:.1%}; weights byte-identical to the shipped layer-8 SAE: "
        f"{'yes' if identical else 'no'}.",
    ]
    result = {"rows": rows, "metrics": m, "identical_to_shipped": identical, "peak_mib": peak_mib}
    target = Path(args.out)
    target.mkdir(parents=True, exist_ok=True)
    (target / "sae_train_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (target / "sae_train_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
