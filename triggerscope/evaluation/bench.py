"""The benchmark: methods x organisms x seeds, resumable, aggregated into one results file.

Layout of the output folder:

    bench.json                       what was asked (the settings a resumed run must share)
    cells/<organism>/<method>/seed<N>.json   one scored cell, written atomically when done
    runs/<organism>/<method>/seed<N>/        that cell's MethodResult (result.json, vectors)
    results.json                     the aggregate, rewritten after every cell
    results.md, plots/*.png          the table and plots, written when every cell is done

A cell file is the "done" marker and is written last, with a rename, so a killed run leaves
only finished cells behind; running the same command again skips them and continues.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triggerscope.atomic import atomic_dir, write_json
from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.scoring import KS, SWEEP, Evaluation, evaluate_result
from triggerscope.evaluation.selectivity import DEFAULT_THRESHOLD, ConceptSelectivity
from triggerscope.methods.result import MethodResult
from triggerscope.runs import write_run_config

BENCH_VERSION = 1
BENCH_FILE = "bench.json"
EVALUATION_FILE = "evaluation.json"  # in each cell's run folder; `triggerscope report` shows it


@dataclass(frozen=True)
class Cell:
    organism: str
    method: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.organism}/{self.method}/seed{self.seed}"


@dataclass
class CellOutput:
    """What a runner hands back for one cell."""

    result: MethodResult
    selectivity: list[ConceptSelectivity]  # one per trigger concept of the organism
    words: dict[str, list[str]]  # concept -> words, for the token baseline
    config: dict[str, Any] = field(default_factory=dict)  # what the run was asked (for reports)


Runner = Callable[[Cell], CellOutput]


def grid(methods: Sequence[str], organisms: Sequence[str], seeds: Sequence[int]) -> list[Cell]:
    """Cells grouped by organism (a runner loads each organism's adapter once)."""
    for name, values in (("methods", methods), ("organisms", organisms), ("seeds", seeds)):
        if not values:
            raise TriggerscopeError(f"the benchmark needs at least one of {name}")
        if len(set(values)) != len(values):
            raise TriggerscopeError(f"{name} are listed twice: {', '.join(map(str, values))}")
    return [Cell(o, m, s) for o in organisms for m in methods for s in seeds]


def cell_file(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.organism / cell.method / f"seed{cell.seed}.json"


def run_folder(out: Path, cell: Cell) -> Path:
    return out / "runs" / cell.organism / cell.method / f"seed{cell.seed}"


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """A resumed run must use the same settings, or its cells would not be comparable."""
    file = out / BENCH_FILE
    wanted = {"version": BENCH_VERSION, "settings": settings}
    if file.is_file():
        try:
            known = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise TriggerscopeError(f"{file} is unreadable ({err}); use a new --out") from err
        if known.get("version") != BENCH_VERSION:
            raise TriggerscopeError(
                f"{out} holds a benchmark from another triggerscope version "
                f"({known.get('version')!r}, this is {BENCH_VERSION}); use a new --out"
            )
        old = known.get("settings", {})
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise TriggerscopeError(
                f"{out} holds a benchmark with other settings ({detail}); resume it with the "
                f"same ones or use a new --out"
            )
        return
    write_json(file, wanted)


def load_cell(out: Path, cell: Cell, threshold: float) -> Evaluation | None:
    """The finished cell, or None when it still has to run (missing or unusable file)."""
    file = cell_file(out, cell)
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("version") != BENCH_VERSION or data.get("cell") != cell.key:
            return None
        evaluation = Evaluation.from_dict(data["evaluation"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return evaluation if evaluation.threshold == threshold else None


def run_cell(out: Path, cell: Cell, runner: Runner, threshold: float) -> Evaluation:
    output = runner(cell)
    evaluation = evaluate_result(
        output.result,
        output.selectivity,
        organism=cell.organism,
        words=output.words,
        threshold=threshold,
        seed=cell.seed,
    )
    with atomic_dir(run_folder(out, cell)) as tmp:
        output.result.save(tmp)
        write_run_config(tmp, output.config, cell.seed)
        write_json(tmp / EVALUATION_FILE, evaluation.to_dict())
    selectivity = {
        s.concept: {"n_pos": s.n_pos, "n_neg": s.n_neg, "best": s.best(5)}
        for s in output.selectivity
    }
    write_json(
        cell_file(out, cell),
        {
            "version": BENCH_VERSION,
            "cell": cell.key,
            "evaluation": evaluation.to_dict(),
            "selectivity": selectivity,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    return evaluation


def run_bench(
    cells: Sequence[Cell],
    out: str | Path,
    runner: Runner,
    settings: dict[str, Any],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    log: Callable[[str], None] = print,
    write_outputs: Callable[[Path, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every cell not yet done (results.json is rewritten after each), then aggregate;
    `write_outputs(out, results)` adds the table and plots at the end (kept outside so this
    module needs no plotting library)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    _check_settings(folder, {**settings, "threshold": threshold})
    done: dict[Cell, Evaluation] = {}
    for cell in cells:
        known = load_cell(folder, cell, threshold)
        if known is not None:
            done[cell] = known
    if done:
        log(f"resuming: {len(done)} of {len(cells)} cells already done")
    for n, cell in enumerate(cells, 1):
        if cell in done:
            continue
        log(f"[{n}/{len(cells)}] {cell.key} ...")
        done[cell] = run_cell(folder, cell, runner, threshold)
        _write_results(folder, cells, done, settings, threshold)  # partial, but always current
    results = _write_results(folder, cells, done, settings, threshold)
    if write_outputs is not None:
        write_outputs(folder, results)
    return results


def _write_results(
    out: Path,
    cells: Sequence[Cell],
    done: dict[Cell, Evaluation],
    settings: dict[str, Any],
    threshold: float,
) -> dict[str, Any]:
    results = aggregate([done[c] for c in cells if c in done], settings, threshold)
    results["complete"] = all(c in done for c in cells)
    results["cells_total"] = len(cells)
    write_json(out / "results.json", results)
    return results


# -------------------------------------------------------------------------------- aggregate


def _mean(values: Sequence[float | bool | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


def aggregate(
    evaluations: Sequence[Evaluation], settings: dict[str, Any], threshold: float
) -> dict[str, Any]:
    """One row per (method, organism): shares over seeds and means, plus every cell."""
    groups: dict[tuple[str, str], list[Evaluation]] = {}
    for ev in evaluations:
        groups.setdefault((ev.method, ev.organism), []).append(ev)
    rows = []
    for (method, organism), evs in groups.items():
        concepts = [c.concept for c in evs[0].concepts]
        per_concept = {}
        for i, concept in enumerate(concepts):
            ranks = [ev.concepts[i].first_rank for ev in evs]
            vectors = [v for ev in evs for v in ev.concepts[i].vectors_top3]
            per_concept[concept] = {
                "first_ranks": ranks,
                "n_selective": evs[0].concepts[i].n_selective,
                "vectors_top3": _mean(vectors) if vectors else None,
                "all_vectors_top3": all(vectors) if vectors else None,
                "token_ranks": [ev.concepts[i].token_rank for ev in evs],
                "token_hit": _mean([ev.concepts[i].token_hit for ev in evs]),
            }
        times = [ev.wall_seconds for ev in evs]
        rows.append(
            {
                "method": method,
                "organism": organism,
                "seeds": [ev.seed for ev in evs],
                "concepts": per_concept,
                "hits": {
                    f"hit@{k}": _mean([ev.hits[f"hit@{k}"] if ev.hits else None for ev in evs])
                    for k in KS
                },
                "all_top10": _mean([ev.all_top10 for ev in evs]),
                "all_top10_vectors": _mean([ev.all_top10_vectors for ev in evs]),
                "vectors_top3_share": _mean([ev.vectors_top3_share for ev in evs]),
                "token_hit": _mean([ev.token_hit for ev in evs]),
                "action_rate": _mean([ev.action_rate for ev in evs]),
                "best_action_rate": _mean([ev.best_action_rate for ev in evs]),
                "baseline_action_rate": _mean([ev.baseline_action_rate for ev in evs]),
                "wall_seconds": _mean(times),
                "wall_seconds_sd": statistics.stdev(times) if len(times) > 1 else 0.0,
                "forward_passes": _mean([ev.forward_passes for ev in evs]),
                "backward_passes": _mean([ev.backward_passes for ev in evs]),
                "sweep_hit10": {
                    f"{t:g}": _mean([ev.sweep_hit10.get(f"{t:g}") for ev in evs]) for t in SWEEP
                },
            }
        )
    selective: dict[str, dict[str, int]] = {}
    for ev in evaluations:
        for c in ev.concepts:
            selective.setdefault(c.concept, dict(c.n_selective_sweep))
    return {
        "version": BENCH_VERSION,
        "threshold": threshold,
        "settings": settings,
        "selective_latents": selective,  # concept -> threshold -> how many latents qualify
        "rows": rows,
        "cells": [ev.to_dict() for ev in evaluations],
    }
