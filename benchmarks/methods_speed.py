"""Fast path vs reference: optimisation-step time of each learned method, SAE-Attribution time.

Run (CPU-sized, ~10-20 min on 2 busy cores):

    .venv/bin/python benchmarks/methods_speed.py --prompts 32 --steps 3 --threads 1

On the default model (SmolLM2-135M-Instruct), layer 8, the fruit-refusal organism's first 32
`audit` prompts and the partial response "I won't answer". A step is what the trainer does
each iteration: delta from theta, loss and gradient from the engine, penalty, Adam update. Both
engines run the same step function; only the engine differs. Each timing is the median of
`--steps` steps after one warm-up step; the reference, fast and batched steps are timed in
turn, so a change in the machine's load hits all three alike. SAE-Attribution is timed end to
end through `run_method` (engine preparation and its self-check included) and against the
reference's one backward pass per prompt. The CPU load average is recorded before and after,
since other jobs share the machine. Results go to benchmarks/results/methods_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

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

RESULTS = Path(__file__).resolve().parent / "results"


def load_sae_or_random(layer: int, d_model: int) -> tuple[Any, str]:
    from triggerscope.commands.find import shipped_sae
    from triggerscope.sae.formats import load_sae
    from triggerscope.sae.model import SAE, SAEConfig

    folder = shipped_sae(layer)
    if folder is not None:
        root = Path(__file__).resolve().parent.parent
        shown = folder.relative_to(root) if folder.is_relative_to(root) else folder
        return load_sae(folder, d_model=d_model), str(shown)
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in=d_model, d_sae=8 * d_model, k=32, layer=layer))
    return sae, "random SAE, 8 x d_model latents (no shipped SAE yet; timing is the same)"


def time_interleaved(steps: dict[str, Any], n: int) -> dict[str, list[float]]:
    """Warm each step up, then time them in turn, n rounds: load changes hit all alike."""
    for step in steps.values():
        step()
    out: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(n):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            out[name].append(time.perf_counter() - start)
    return out


def make_step(engine: Any, space: Space, kind: str, n_vectors: int, lam: float) -> Any:
    """One trainer step for n_vectors vectors at once (n_vectors > 1: the batched pass)."""
    gen = torch.Generator().manual_seed(0)
    theta = torch.nn.Parameter(0.01 * torch.randn(n_vectors, space.dim, generator=gen))
    opt = torch.optim.Adam([theta], lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        delta = space.to_residual(theta)
        if kind == "ce":
            _, grad = engine.ce(delta.detach(), grad=True)
        else:
            _, grad = engine.divergence(delta.detach(), grad=True)
            grad = -grad
        pen = lam * (theta.abs().sum() if space.decoder is not None else delta.pow(2).sum())
        (delta * grad).sum().add(pen).backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--batched", type=int, default=4, help="vectors in the batched pass")
    parser.add_argument("--response", default="I won't answer")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a CPU shared with other jobs, 2 threads measured 10x slower)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python " + " ".join(
        shlex.quote(a) for a in ["benchmarks/methods_speed.py", *sys.argv[1:]]
    )

    load_before = os.getloadavg()
    loaded = load_model()
    d_model = int(loaded.model.config.hidden_size)
    spec = load_spec("fruit-refusal")
    prompts = read_splits(spec)["audit"][: args.prompts]
    sae, sae_source = load_sae_or_random(args.layer, d_model)
    decoder = (sae.W_dec.detach().float() / sae.cfg.input_scale).cpu()
    cfg = MethodConfig()
    n_layers = int(loaded.model.config.num_hidden_layers)
    target = default_target_layer(n_layers, args.layer)
    sup = tokenize(loaded.tokenizer, prompts, args.response, spec.system_prompt)
    unsup = tokenize(loaded.tokenizer, prompts, None, spec.system_prompt)

    rows: list[dict[str, Any]] = []
    engines: dict[tuple[str, str], Any] = {}
    prep: dict[str, float] = {}
    for kind in ("fast", "reference"):
        for objective, examples in (("ce", sup), ("div", unsup)):
            start = time.perf_counter()
            engines[(kind, objective)] = build_engine(
                kind,
                loaded,
                examples,
                args.layer,
                cfg,
                target_layer=None if objective == "ce" else target,
            )
            prep[f"{kind}/{objective}"] = time.perf_counter() - start

    methods = [
        ("supervised-melbo", "ce", None, 1e-3),
        ("supervised-sae-melbo", "ce", decoder, 1e-3),
        ("melbo", "div", None, 0.0),
        ("sae-melbo", "div", decoder, 1e-3),
    ]
    for name, objective, dec, lam in methods:
        space = Space(d_model, dec)
        row: dict[str, Any] = {"method": name}
        times = time_interleaved(
            {
                "reference": make_step(engines[("reference", objective)], space, objective, 1, lam),
                "fast": make_step(engines[("fast", objective)], space, objective, 1, lam),
                "batched": make_step(
                    engines[("fast", objective)], space, objective, args.batched, lam
                ),
            },
            args.steps,
        )
        row["reference_step_s"] = statistics.median(times["reference"])
        row["fast_step_s"] = statistics.median(times["fast"])
        row["fast_batched_step_per_vector_s"] = statistics.median(times["batched"]) / args.batched
        row["times_s"] = times
        row["speedup"] = row["reference_step_s"] / row["fast_step_s"]
        row["speedup_batched"] = row["reference_step_s"] / row["fast_batched_step_per_vector_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    task = FindTask(args.response, prompts, [], args.layer, spec.system_prompt)
    start = time.perf_counter()
    result = run_method("sae-attribution", loaded, task, sae, heldout_samples=0)
    attribution_fast = time.perf_counter() - start
    start = time.perf_counter()
    run_method("sae-attribution", loaded, task, sae, heldout_samples=0, engine="reference")
    attribution_ref = time.perf_counter() - start
    load_after = os.getloadavg()

    summary = {
        "command": command,
        "model": loaded.name,
        "layer": args.layer,
        "target_layer_unsupervised": target,
        "prompts": len(prompts),
        "response": args.response,
        "sae": sae_source,
        "d_sae": int(sae.cfg.d_sae),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "engine_preparation_s": prep,
        "steps": rows,
        "sae_attribution": {
            "fast_total_s": attribution_fast,
            "reference_total_s": attribution_ref,
            "forward_passes": result.forward_passes,
            "backward_passes": result.backward_passes,
        },
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    write_json(out / "methods_speed.json", summary)
    lines = [
        "# Methods speed: fast path vs reference",
        "",
        f"Command: `{command}`",
        "",
        f"{loaded.name}, layer {args.layer} (unsupervised target layer {target}), "
        f"{len(prompts)} fruit-refusal audit prompts, response {args.response!r}, SAE: "
        f"{sae_source} ({sae.cfg.d_sae} latents). torch threads {torch.get_num_threads()}, "
        f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} "
        f"(on {os.cpu_count()} cores; other jobs share them).",
        "",
        "| method | reference step (s) | fast step (s) | speedup | fast, "
        f"{args.batched} vectors batched (s/vector) | speedup batched |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['reference_step_s']:.2f} | {r['fast_step_s']:.2f} | "
            f"{r['speedup']:.1f}x | {r['fast_batched_step_per_vector_s']:.2f} | "
            f"{r['speedup_batched']:.1f}x |"
        )
    lines += [
        "",
        f"SAE-Attribution over {len(prompts)} prompts, end to end (`run_method`, engine "
        f"preparation and self-check included): fast {attribution_fast:.1f} s, reference "
        f"(one backward per prompt) {attribution_ref:.1f} s.",
        "",
        "Engine preparation (layers 0..l once, shared prefix, self-check): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in prep.items()),
        "",
    ]
    write_text(out / "methods_speed.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
