"""The benchmark loop with a fake runner: resume, interruption, settings, aggregate, outputs."""

import json
import os
from pathlib import Path

import pytest
import torch
from evaluation_fixtures import synthetic_result

from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation import bench
from triggerscope.evaluation.bench import Cell, CellOutput, cell_file, grid, run_bench
from triggerscope.evaluation.selectivity import ConceptSelectivity
from triggerscope.reports.bench_report import write_bench_outputs

PNG = b"\x89PNG\r\n\x1a\n"


def fruit() -> ConceptSelectivity:
    scores = torch.full((40,), 0.5)
    scores[7] = 0.95
    return ConceptSelectivity("fruit", scores, 10, 10)


class FakeRunner:
    """Method 'good' ranks the fruit latent first; 'bad' never finds it."""

    def __init__(self, fail_at: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at

    def __call__(self, cell: Cell) -> CellOutput:
        if cell.key == self.fail_at:
            raise KeyboardInterrupt  # killed mid-run
        self.calls.append(cell.key)
        ranking = [7, 1, 2] if cell.method == "good" else [1, 2, 3]
        result = synthetic_result(ranking, [[7, 1, 2]], method=cell.method, rates=[0.25])
        result.wall_seconds = 2.0 + cell.seed
        return CellOutput(result, [fruit()], {"fruit": ["fruit"]}, {"sae": None})


CELLS = grid(["good", "bad"], ["fruit-refusal"], [0, 1])
SETTINGS = {"sae": "/x", "model": None}


def test_grid_checks() -> None:
    assert [c.key for c in CELLS][:2] == ["fruit-refusal/good/seed0", "fruit-refusal/good/seed1"]
    with pytest.raises(TriggerscopeError, match="listed twice"):
        grid(["a", "a"], ["o"], [0])
    with pytest.raises(TriggerscopeError, match="at least one of seeds"):
        grid(["a"], ["o"], [])


def test_aggregate_and_files(tmp_path: Path) -> None:
    results = run_bench(
        CELLS,
        tmp_path,
        FakeRunner(),
        SETTINGS,
        log=lambda _: None,
        write_outputs=write_bench_outputs,
    )
    assert results["complete"] is True and len(results["cells"]) == 4
    rows = {r["method"]: r for r in results["rows"]}
    assert rows["good"]["hits"] == {"hit@1": 1.0, "hit@3": 1.0, "hit@10": 1.0}
    assert rows["bad"]["hits"]["hit@10"] == 0.0
    assert rows["good"]["concepts"]["fruit"]["first_ranks"] == [1, 1]
    assert rows["bad"]["concepts"]["fruit"]["first_ranks"] == [None, None]
    assert rows["good"]["wall_seconds"] == 2.5 and rows["good"]["action_rate"] == 0.25
    assert rows["good"]["concepts"]["fruit"]["all_vectors_top3"] is True
    assert results["selective_latents"]["fruit"]["0.9"] == 1
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["rows"] == results["rows"]
    table = (tmp_path / "results.md").read_text()
    assert "| good | fruit-refusal | fruit: 1,1 | 1.00 | 1.00 | 1.00 |" in table
    assert "| bad | fruit-refusal | fruit: -,- | 0.00 | 0.00 | 0.00 |" in table
    for name in ("hit_at_k", "action_rate", "time_per_method", "threshold"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes().startswith(PNG)
    run = tmp_path / "runs" / "fruit-refusal" / "good" / "seed0"
    assert {p.name for p in run.iterdir()} >= {"result.json", "config.json", "evaluation.json"}


def test_killed_run_resumes_with_only_missing_cells(tmp_path: Path) -> None:
    first = FakeRunner(fail_at="fruit-refusal/bad/seed0")
    with pytest.raises(KeyboardInterrupt):
        run_bench(CELLS, tmp_path, first, SETTINGS, log=lambda _: None)
    assert first.calls == ["fruit-refusal/good/seed0", "fruit-refusal/good/seed1"]
    partial = json.loads((tmp_path / "results.json").read_text())
    assert partial["complete"] is False and len(partial["cells"]) == 2
    again = FakeRunner()
    results = run_bench(CELLS, tmp_path, again, SETTINGS, log=lambda _: None)
    assert again.calls == ["fruit-refusal/bad/seed0", "fruit-refusal/bad/seed1"]
    assert results["complete"] is True and len(results["cells"]) == 4
    third = FakeRunner()
    run_bench(CELLS, tmp_path, third, SETTINGS, log=lambda _: None)
    assert third.calls == []  # nothing left to do


def test_interrupted_mid_write_keeps_earlier_results(tmp_path: Path, monkeypatch) -> None:
    run_bench(CELLS[:2], tmp_path, FakeRunner(), SETTINGS, log=lambda _: None)
    before = (tmp_path / "results.json").read_text()
    real_replace = os.replace

    def killed(src, dst):  # the process dies while renaming the third cell into place
        if str(dst).endswith("seed0.json") and "/bad/" in str(dst):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run_bench(CELLS, tmp_path, FakeRunner(), SETTINGS, log=lambda _: None)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (tmp_path / "results.json").read_text() == before
    assert not cell_file(tmp_path, CELLS[2]).exists()
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no half-written file left behind
    assert json.loads(cell_file(tmp_path, CELLS[0]).read_text())["cell"] == CELLS[0].key


def test_unusable_cell_file_is_rerun(tmp_path: Path) -> None:
    run_bench(CELLS[:1], tmp_path, FakeRunner(), SETTINGS, log=lambda _: None)
    cell_file(tmp_path, CELLS[0]).write_text("{not json")
    again = FakeRunner()
    run_bench(CELLS[:1], tmp_path, again, SETTINGS, log=lambda _: None)
    assert again.calls == [CELLS[0].key]


def test_other_settings_or_version_are_refused(tmp_path: Path) -> None:
    run_bench(CELLS[:1], tmp_path, FakeRunner(), SETTINGS, log=lambda _: None)
    with pytest.raises(TriggerscopeError, match=r"other settings \(sae: '/x' -> '/y'\)"):
        run_bench(CELLS, tmp_path, FakeRunner(), {**SETTINGS, "sae": "/y"}, log=lambda _: None)
    with pytest.raises(TriggerscopeError, match="threshold"):
        run_bench(CELLS, tmp_path, FakeRunner(), SETTINGS, threshold=0.8, log=lambda _: None)
    (tmp_path / bench.BENCH_FILE).write_text(json.dumps({"version": 0, "settings": SETTINGS}))
    with pytest.raises(TriggerscopeError, match="another triggerscope version"):
        run_bench(CELLS, tmp_path, FakeRunner(), SETTINGS, log=lambda _: None)
