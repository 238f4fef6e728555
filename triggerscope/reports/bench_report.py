"""The benchmark's human-readable files: results.md and plots/*.png, each written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from triggerscope.atomic import atomic_path, write_text
from triggerscope.reports.markdown import bench_markdown
from triggerscope.reports.plots import BENCH_PLOTS


def write_bench_outputs(out: Path, results: dict[str, Any], command: str | None = None) -> None:
    write_text(out / "results.md", bench_markdown(results, command))
    if not results["rows"]:
        return
    for name, plot in BENCH_PLOTS.items():
        png = plot(results)
        with atomic_path(out / "plots" / name) as tmp:
            tmp.write_bytes(png)
