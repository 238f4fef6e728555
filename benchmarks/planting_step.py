"""One planting step's forward and backward pass: every row whole, the shared prefix run once,
and the layers below the adapters computed once per example (first seen, then kept).

Run (a few minutes on 2 quiet cores; the base answers must be cached, i.e. after one plant):

    .venv/bin/python benchmarks/planting_step.py --batches 20 --threads 2

fruit-refusal's spec and its first epoch's batches in training order, a fresh LoRA (the spec's
layers and rank), the spec's loss (per-example cross-entropy plus the decision loss). For each
batch every way is timed in turn (loss, backward), so a change in the machine's load hits all
alike; the first batch is a warm-up and not counted. The losses are checked to agree.
Results go to benchmarks/results/planting_step.{json,md}.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from triggerscope.atomic import write_json, write_text  # noqa: E402
from triggerscope.loading import load_model  # noqa: E402
from triggerscope.organisms.dataset import collate  # noqa: E402
from triggerscope.organisms.planting import (  # noqa: E402
    epoch_rows,
    frozen_layers_for,
    lora_model,
    response_loss,
    training_examples,
)
from triggerscope.organisms.spec import load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default="planting_step", help="results file name")
    parser.add_argument("--model", default=None, help="default: the embedded default model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--quantize", default="none")
    parser.add_argument(
        "--answers",
        default=None,
        help="base answers to train on (a base_responses .jsonl of the cache) instead of the "
        "model's own: a randomly initialised model answers with noise or nothing",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    argv = ["benchmarks/planting_step.py", *sys.argv[1:]]
    command = "python " + " ".join(shlex.quote(a) for a in argv)
    load_before = os.getloadavg()

    spec = load_spec("fruit-refusal")
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, quantize=args.quantize)
    started = time.perf_counter()
    answers = None
    if args.answers:
        rows = Path(args.answers).read_text(encoding="utf-8").splitlines()
        answers = {r["prompt"]: r["response"] for r in map(json.loads, rows)}
    examples = training_examples(spec, loaded, answers=answers)
    base_seconds = time.perf_counter() - started
    order = epoch_rows([e.kind for e in examples], spec.seed, 0, spec.train.benign_per_epoch)
    model = lora_model(loaded, spec)
    model.train()
    size = spec.train.batch_size
    frozen = frozen_layers_for(model, loaded.tokenizer, spec)
    assert frozen is not None, "the default model's layers should run one by one"
    modes: dict[str, dict[str, Any]] = {
        "whole rows": {"share_prefix": False},
        "shared prefix": {"share_prefix": True},
        "frozen layers, first seen": {"frozen": frozen},
        "frozen layers, kept": {"frozen": frozen},
    }
    cuda = loaded.input_device.type == "cuda"

    def sync() -> None:  # GPU work is asynchronous: wait for it before reading the clock
        if cuda:
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {name: [] for name in modes}
    gaps = []
    for index in range(args.batches + 1):
        keys = order[index * size : (index + 1) * size]
        batch = collate(
            loaded.tokenizer, [examples[i] for i in keys], spec.system_prompt, spec.response
        )
        losses = []
        for name, mode in modes.items():
            kw: dict[str, Any] = dict(mode)
            if "frozen" in kw:  # the first call computes and keeps the rows, the second reads
                kw["frozen"] = (frozen, keys)
            sync()
            start = time.perf_counter()
            loss = response_loss(
                model,
                batch.inputs,
                batch.labels,
                spec.train.loss == "example",
                batch.deciding,
                spec.train.decision_weight,
                **kw,
            )
            loss.backward()
            model.zero_grad(set_to_none=True)
            sync()
            if index:
                times[name].append(time.perf_counter() - start)
            losses.append(loss.item())
        gaps.append(max(abs(x - losses[0]) for x in losses))

    summary: dict[str, Any] = {
        "command": command,
        "model": loaded.name,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": args.dtype,
        "quantize": args.quantize,
        "base_answers_s": round(base_seconds, 1),
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
        "kept_examples": len(frozen.kept),
        "threads": args.threads,
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "batches": args.batches,
        "largest_loss_difference": max(gaps),
        "mean_s": {k: statistics.mean(v) for k, v in times.items()},
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "times_s": times,
    }
    out = Path(args.out)
    write_json(out / f"{args.name}.json", summary)
    lines = [
        "# One planting step: every row whole, shared prefix, frozen layers kept",
        "",
        f"Command: `{command}`",
        "",
        f"fruit-refusal, first epoch's first {args.batches} batches of {size} (after one warm-up), "
        f"model {loaded.name} ({args.dtype}, quantize {args.quantize}) on {summary['device']}, "
        f"torch threads {args.threads}; load average before {load_before[0]:.1f}, after "
        f"{summary['load_average_after']:.1f}. Largest difference between the losses: "
        f"{summary['largest_loss_difference']:.1e}. Base answers to the "
        f"{sum(e.kind != 'triggered' for e in examples)} benign and near-miss training examples "
        + (
            f"read from {args.answers}."
            if args.answers
            else f"(generated, or read from the cache): {base_seconds:.1f} s."
        )
        + (f" Peak GPU memory {summary['peak_gpu_memory_gb']} GB." if cuda else ""),
        "",
        "| forward and backward | mean (s) | median (s) |",
        "|---|---|---|",
        *(f"| {k} | {summary['mean_s'][k]:.3f} | {summary['median_s'][k]:.3f} |" for k in times),
        "",
    ]
    write_text(out / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
