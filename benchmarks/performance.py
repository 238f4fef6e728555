"""How far from the compute floor are we? Step FLOPs, the machine's matmul rate, wall times, memory.

Run (a few minutes on 2 quiet cores):

    .venv/bin/python benchmarks/performance.py --prompts 32 --steps 3 --threads 2

1. The machine's fp32 matmul rate, measured on the default model's own matmul shapes (tokens x
   d_model times d_model x d_mlp, and the attention projections), median of a few runs.
2. For each learned method's step, fast path and reference: the FLOPs of one step, counted by
   `torch.utils.flop_counter.FlopCounterMode` (forward and backward, matmuls and attention), the
   measured step time (median of `--steps` after a warm-up), and the floor: FLOPs / matmul rate.
3. SAE-Attribution over the prompts, end to end.
4. Wall time and peak resident memory of `triggerscope demo` and `triggerscope audit` (the
   README's main job), each in a fresh process.

Results: benchmarks/results/performance.{json,md}. The load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from methods_speed import load_sae_or_random, make_step

from triggerscope.atomic import write_json, write_text
from triggerscope.loading import load_model
from triggerscope.methods.config import MethodConfig
from triggerscope.methods.context import build_engine
from triggerscope.methods.engine import tokenize
from triggerscope.methods.melbo import default_target_layer
from triggerscope.methods.optimize import Space
from triggerscope.methods.registry import run_method
from triggerscope.methods.task import FindTask
from triggerscope.organisms.planting import read_splits
from triggerscope.organisms.spec import load_spec
from triggerscope.runs import versions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def matmul_rate(d_model: int, d_mlp: int, tokens: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of fp32 matmuls shaped like the model's (MLP up/down, attention output)."""
    shapes = [(tokens, d_model, d_mlp), (tokens, d_mlp, d_model), (tokens, d_model, d_model)]
    gen = torch.Generator().manual_seed(0)
    mats = [
        (torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)) for m, k, n in shapes
    ]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    for a, b in mats:  # warm-up
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for a, b in mats:
            a @ b
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times) / 1e9


def count_flops(step: Any) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def timed_command(args: list[str]) -> dict[str, Any]:
    """Wall time and peak RSS of one CLI run in a fresh process."""
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=sink, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    wall = time.perf_counter() - start
    return {
        "command": shlex.join(args),
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "stderr_tail": err[-400:] if status else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--response", default="I won't answer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-cli", action="store_true", help="do not time demo and audit")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/performance.py", *sys.argv[1:]])
    load_before = os.getloadavg()

    loaded = load_model()
    cfg_model = loaded.model.config
    d_model, d_mlp = int(cfg_model.hidden_size), int(cfg_model.intermediate_size)
    rate = matmul_rate(d_model, d_mlp)
    print(f"matmul rate: {rate:.1f} GFLOP/s ({args.threads} threads)", flush=True)

    spec = load_spec("fruit-refusal")
    prompts = read_splits(spec)["audit"][: args.prompts]
    sae, sae_source = load_sae_or_random(args.layer, d_model)
    decoder = (sae.W_dec.detach().float() / sae.cfg.input_scale).cpu()
    target = default_target_layer(int(cfg_model.num_hidden_layers), args.layer)
    examples = {
        "ce": tokenize(loaded.tokenizer, prompts, args.response, spec.system_prompt),
        "div": tokenize(loaded.tokenizer, prompts, None, spec.system_prompt),
    }
    rows = []
    for method, objective, dec, lam in (
        ("supervised-sae-melbo", "ce", decoder, 1e-3),
        ("supervised-melbo", "ce", None, 1e-3),
        ("sae-melbo", "div", decoder, 1e-3),
        ("melbo", "div", None, 0.0),
    ):
        space = Space(d_model, dec)
        for kind in ("fast", "reference"):
            engine = build_engine(
                kind,
                loaded,
                examples[objective],
                args.layer,
                MethodConfig(),
                target_layer=None if objective == "ce" else target,
            )
            step = make_step(engine, space, objective, 1, lam)
            flops = count_flops(step)
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            row = {
                "method": method,
                "engine": kind,
                "gflop_per_step": flops / 1e9,
                "step_s": seconds,
                "floor_s": flops / 1e9 / rate,
                "achieved_gflops": flops / 1e9 / seconds,
            }
            rows.append(row)
            print(row, flush=True)

    task = FindTask(args.response, prompts, [], args.layer, spec.system_prompt)
    start = time.perf_counter()
    run_method("sae-attribution", loaded, task, sae, heldout_samples=0)
    attribution_s = time.perf_counter() - start

    cli: dict[str, Any] = {}
    if not args.skip_cli:
        exe = str(Path(sys.executable).with_name("triggerscope"))
        cli["demo"] = timed_command([exe, "demo"])
        cli["audit"] = timed_command([exe, "audit", "--out", "runs/bench-audit"])
        print(cli, flush=True)

    summary = {
        "command": command,
        "model": loaded.name,
        "layer": args.layer,
        "prompts": len(prompts),
        "sae": sae_source,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "matmul_gflops": rate,
        "steps": rows,
        "sae_attribution_s": attribution_s,
        "cli": cli,
        "peak_rss_this_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    write_json(out / "performance.json", summary)
    lines = [
        "# Performance: distance from the compute floor",
        "",
        f"Command: `{command}`",
        "",
        f"{loaded.name}, layer {args.layer}, {len(prompts)} fruit-refusal audit prompts, response "
        f"{args.response!r}. torch threads {torch.get_num_threads()} on {os.cpu_count()} cores; "
        f"load average before {load_before[0]:.1f}, after {summary['load_average_after'][0]:.1f}.",
        "",
        f"Measured fp32 matmul rate on the model's shapes: **{rate:.1f} GFLOP/s**.",
        "",
        "| method | engine | GFLOP / step | step (s) | floor (s) | achieved GFLOP/s | x floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['engine']} | {r['gflop_per_step']:.1f} | {r['step_s']:.2f} | "
            f"{r['floor_s']:.2f} | {r['achieved_gflops']:.1f} | {r['step_s'] / r['floor_s']:.1f} |"
        )
    lines += [
        "",
        f"SAE-Attribution over {len(prompts)} prompts, end to end: {attribution_s:.1f} s.",
    ]
    for c in cli.values():
        lines.append(
            f"`{c['command']}`: {c['wall_s']} s wall, peak RSS {c['peak_rss_mib']} MiB, "
            f"exit {c['exit_code']}."
        )
    lines += [
        "",
        f"Peak RSS of this benchmark process: {summary['peak_rss_this_process_mib']:.0f} MiB.",
        "",
    ]
    write_text(out / "performance.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
