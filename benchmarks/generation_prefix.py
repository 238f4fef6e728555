"""Greedy generation with the rows' shared system-prompt prefix run once vs every row whole.

Run (a few minutes on 2 quiet cores):

    .venv/bin/python benchmarks/generation_prefix.py --batches 0,5,10,15,20 --threads 2

What planting's base answers do: fruit-refusal's benign and near-miss training prompts, sorted
by length, in batches of 64, 40 new tokens, the spec's system prompt. Each chosen batch is
generated both ways, the order alternating from batch to batch so a drift in the machine's
speed hits both alike, after one uncounted warm-up batch; the answers are compared.
Results go to benchmarks/results/generation_prefix.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from triggerscope.atomic import write_json, write_text  # noqa: E402
from triggerscope.generation import generate  # noqa: E402
from triggerscope.loading import load_model  # noqa: E402
from triggerscope.organisms.planting import read_splits  # noqa: E402
from triggerscope.organisms.spec import load_spec  # noqa: E402

SIZE = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="0,5,10,15,20", help="which batches of 64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python " + shlex.join(["benchmarks/generation_prefix.py", *sys.argv[1:]])
    load_before = os.getloadavg()
    spec = load_spec("fruit-refusal")
    loaded = load_model()
    splits = read_splits(spec)
    prompts = sorted(dict.fromkeys(splits["benign_train"] + splits["nearmiss_train"]), key=len)
    chosen = [int(b) for b in args.batches.split(",")]

    def run(batch: list[str], share: bool) -> tuple[float, list[str]]:
        start = time.perf_counter()
        answers = generate(
            loaded,
            batch,
            max_new_tokens=spec.train.base_response_tokens,
            batch_size=SIZE,
            system_prompt=spec.system_prompt,
            keep_special_tokens=True,
            share_prefix=share,
        )
        return time.perf_counter() - start, answers

    run(prompts[-SIZE:], True)  # warm-up
    rows: list[dict[str, Any]] = []
    for n, index in enumerate(chosen):
        batch = prompts[index * SIZE : (index + 1) * SIZE]
        order = (True, False) if n % 2 == 0 else (False, True)
        seen = {share: run(batch, share) for share in order}
        rows.append(
            {
                "batch": index,
                "prompts": len(batch),
                "whole_rows_s": seen[False][0],
                "shared_prefix_s": seen[True][0],
                "identical_answers": sum(
                    a == b for a, b in zip(seen[False][1], seen[True][1], strict=True)
                ),
            }
        )
        print(rows[-1], flush=True)
    whole = sum(r["whole_rows_s"] for r in rows)
    shared = sum(r["shared_prefix_s"] for r in rows)
    summary = {
        "command": command,
        "threads": args.threads,
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "rows": rows,
        "total_whole_rows_s": whole,
        "total_shared_prefix_s": shared,
        "median_saving": statistics.median(
            1 - r["shared_prefix_s"] / r["whole_rows_s"] for r in rows
        ),
    }
    out = Path(args.out)
    write_json(out / "generation_prefix.json", summary)
    lines = [
        "# Greedy generation: shared prefix run once vs every row whole",
        "",
        f"Command: `{command}`",
        "",
        f"fruit-refusal's training prompts sorted by length, batches of {SIZE}, "
        f"{spec.train.base_response_tokens} new tokens, torch threads {args.threads}; load "
        f"average before {load_before[0]:.1f}, after {summary['load_average_after']:.1f}.",
        "",
        "| batch | whole rows (s) | shared prefix (s) | identical answers |",
        "|---|---|---|---|",
        *(
            f"| {r['batch']} | {r['whole_rows_s']:.2f} | {r['shared_prefix_s']:.2f} | "
            f"{r['identical_answers']}/{r['prompts']} |"
            for r in rows
        ),
        f"| all | {whole:.2f} | {shared:.2f} | |",
        "",
        f"Median saving per batch: {summary['median_saving']:.1%}.",
        "",
    ]
    write_text(out / "generation_prefix.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
