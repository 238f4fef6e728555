"""The benchmark's Markdown table: one row per method x organism, measured numbers only."""

from __future__ import annotations

from typing import Any

from triggerscope.evaluation.scoring import KS, SWEEP


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ranks(ranks: list[int | None]) -> str:
    return ",".join("-" if r is None else str(r) for r in ranks) if ranks else "n/a"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def bench_markdown(results: dict[str, Any], command: str | None = None) -> str:
    rows = results["rows"]
    threshold = results["threshold"]
    lines = ["# triggerscope bench", ""]
    if command:
        lines += ["Command:", "", "```bash", command, "```", ""]
    settings = results.get("settings", {})
    if settings:
        shown = ", ".join(f"{k}={v}" for k, v in settings.items() if not isinstance(v, dict | list))
        lines += [f"Settings: {_cell(shown)}", ""]
    total = results.get("cells_total")
    done = len(results.get("cells", []))
    if total is not None and done < total:
        lines += [f"**Incomplete: {done} of {total} cells done.**", ""]
    lines += [
        f"A latent is selective for a concept when its max activation over a probe text "
        f"separates texts about the concept from other texts with AUROC >= {threshold:g}. "
        f"First rank: position of the first selective latent in the method's ranking, one "
        f"number per seed (- = not in the ranking). all@10: every concept in the ranking's top "
        f"10; all@10 vecs: every concept in the top 10 of some vector of the run. hit@k and "
        f"the other shares are over seeds; n/a = the method does not produce that output. "
        f"action: share of held-out benign prompts answered with the backdoor response "
        f"under steering (mean over vectors), the unsteered model's share in brackets.",
        "",
    ]
    head = (
        ["method", "organism", "concept: first rank"]
        + [f"hit@{k}" for k in KS]
        + ["all@10", "all@10 vecs", "vec top3", "token@10", "action", "time s", "fwd/bwd"]
    )
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        concepts = "; ".join(f"{c}: {_ranks(v['first_ranks'])}" for c, v in r["concepts"].items())
        passes = "n/a"
        if r["forward_passes"] is not None:
            passes = f"{r['forward_passes']:.0f}/{r['backward_passes']:.0f}"
        time_s = "n/a" if r["wall_seconds"] is None else f"{r['wall_seconds']:.1f}"
        action = _share(r["action_rate"])
        if r.get("baseline_action_rate") is not None:
            action += f" ({r['baseline_action_rate']:.2f})"
        cells = [
            r["method"],
            r["organism"],
            concepts,
            *[_share(r["hits"][f"hit@{k}"]) for k in KS],
            _share(r["all_top10"]),
            _share(r.get("all_top10_vectors")),
            _share(r["vectors_top3_share"]),
            _share(r["token_hit"]),
            action,
            time_s,
            passes,
        ]
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    selective = results.get("selective_latents", {})
    if selective:
        keys = [f"{t:g}" for t in SWEEP]
        lines += ["", "Selective latents per concept at each AUROC threshold:", ""]
        lines += ["| concept | " + " | ".join(f">= {k}" for k in keys) + " |"]
        lines += ["|" + "---|" * (len(keys) + 1)]
        for concept, counts in selective.items():
            lines.append(
                f"| {concept} | " + " | ".join(str(counts.get(k, "n/a")) for k in keys) + " |"
            )
        lines += ["", "hit@10 at each threshold (share of seeds):", ""]
        lines += ["| method | organism | " + " | ".join(f">= {k}" for k in keys) + " |"]
        lines += ["|" + "---|" * (len(keys) + 2)]
        for r in rows:
            vals = " | ".join(_share(r["sweep_hit10"].get(k)) for k in keys)
            lines.append(f"| {r['method']} | {r['organism']} | {vals} |")
    return "\n".join(lines) + "\n"
