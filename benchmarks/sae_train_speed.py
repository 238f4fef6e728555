"""How long does training an SAE for the default model take on this CPU, caching included?

Run (a few minutes on 2 cores):

    .venv/bin/python benchmarks/sae_train_speed.py --tokens 20000 --steps 5

Caches `--tokens` user tokens of the offline corpus (model stopped after the deepest layer) for
layer 8 alone and for layers 8 and 12 in one pass, then times TopK training steps (width 4608,
k 32, batch 4096; mean of `--steps` after one warm-up). It extrapolates to the 2M-token
recipe: one SAE = caching 2M tokens to layer 8 + one epoch (488 steps). The CPU load average is
recorded before and after, since other jobs share the machine; the real build's own times are in
the shipped SAEs' manifest.json. Results: benchmarks/results/sae_train_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from triggerscope.loading import load_model  # noqa: E402
from triggerscope.sae.activations import cache_activations  # noqa: E402
from triggerscope.sae.corpus import ensure_corpus, read_split  # noqa: E402
from triggerscope.sae.training import TrainConfig, train_sae  # noqa: E402

BUDGET = 2_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000, help="tokens cached per timing")
    parser.add_argument("--steps", type=int, default=5, help="training steps timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    lm = load_model()
    docs = read_split(ensure_corpus(), "train")
    results: dict[str, object] = {"tokens": args.tokens, "threads": args.threads}
    cached = None
    for layers in ([8], [8, 12]):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            cache = cache_activations(
                lm, docs, layers, Path(tmp) / "c", max_tokens=args.tokens, progress=False
            )
            seconds = time.perf_counter() - start
            if layers == [8]:
                cached = np.array(cache.activations(8))
        key = "cache_layer_" + "_".join(map(str, layers))
        results[key] = {"seconds": round(seconds, 1), "tokens_per_s": round(args.tokens / seconds)}
    assert cached is not None
    rows = np.resize(cached, (max(len(cached), 4096 * (args.steps + 1)), cached.shape[1]))
    cfg = TrainConfig(batch_size=4096, warmup_steps=0)
    # one warm-up step, then `steps` more: the difference of two runs is their time
    warm = train_sae(rows, cfg, stop_after_steps=1, progress=False).seconds
    total = train_sae(rows, cfg, stop_after_steps=args.steps + 1, progress=False).seconds
    per_step = (total - warm) / args.steps
    steps = BUDGET // 4096
    tps8 = results["cache_layer_8"]["tokens_per_s"]  # type: ignore[index]
    tps12 = results["cache_layer_8_12"]["tokens_per_s"]  # type: ignore[index]
    results["train_step_seconds"] = round(per_step, 2)
    results["estimate_minutes"] = {
        "one_sae_layer8_2M_tokens": round((BUDGET / tps8 + steps * per_step) / 60, 1),
        "two_saes_layers_8_12_2M_tokens": round((BUDGET / tps12 + 2 * steps * per_step) / 60, 1),
    }
    results["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sae_train_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    est = results["estimate_minutes"]
    lines = [
        "# SAE training speed (default model, this CPU)",
        "",
        f"`.venv/bin/python benchmarks/sae_train_speed.py --tokens {args.tokens} "
        f"--steps {args.steps}`; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}",
        "",
        "| what | measured |",
        "|---|---|",
        f"| caching, layer 8 | {tps8} tokens/s |",
        f"| caching, layers 8+12 in one pass | {tps12} tokens/s |",
        f"| training step (4608 latents, k 32, batch 4096) | {per_step:.2f} s |",
        f"| one SAE, 2M tokens (cache + 1 epoch), estimated | "
        f"{est['one_sae_layer8_2M_tokens']} min |",  # type: ignore[index]
        f"| two SAEs, one pass, 2M tokens, estimated | "
        f"{est['two_saes_layers_8_12_2M_tokens']} min |",  # type: ignore[index]
    ]
    (out / "sae_train_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
