"""The benchmark's table and plots, including methods a column does not apply to."""

import io

import torch
from evaluation_fixtures import synthetic_result
from PIL import Image

from triggerscope.evaluation.bench import aggregate
from triggerscope.evaluation.scoring import evaluate_result
from triggerscope.evaluation.selectivity import ConceptSelectivity
from triggerscope.reports.markdown import bench_markdown
from triggerscope.reports.plots import BENCH_PLOTS, latent_bars


def results():
    scores = torch.full((40,), 0.5)
    scores[7], scores[9] = 0.93, 0.85
    sel = [ConceptSelectivity("fruit", scores, 10, 10)]
    words = {"fruit": ["banana"]}
    evs = [
        evaluate_result(synthetic_result([9, 7]), sel, organism="fruit-refusal", words=words),
        evaluate_result(
            synthetic_result([], tokens=[" banana"], method="token"),
            sel,
            organism="fruit-refusal",
            words=words,
        ),
    ]
    out = aggregate(evs, {"sae": "/x"}, 0.9)
    out["cells_total"] = 3
    return out


def test_markdown_table_marks_na_and_incomplete_runs():
    md = bench_markdown(results(), command="triggerscope bench --seeds 0")
    assert "```bash\ntriggerscope bench --seeds 0\n```" in md
    assert "**Incomplete: 2 of 3 cells done.**" in md
    assert "| sae-attribution | fruit-refusal | fruit: 2 | 0.00 | 1.00 | 1.00 | 1.00 |" in md
    assert "| token | fruit-refusal | fruit: - | n/a | n/a | n/a | n/a | n/a | n/a | 1.00 |" in md
    assert "| fruit | 2 | 2 | 2 | 1 | 0 |" in md  # selective latents at 0.6 .. 0.95
    assert "| sae-attribution | fruit-refusal | 1.00 | 1.00 | 1.00 | 1.00 | 0.00 |" in md


def test_plots_are_pngs():
    res = results()
    for name, plot in BENCH_PLOTS.items():
        image = Image.open(io.BytesIO(plot(res)))
        assert image.format == "PNG" and image.size[0] > 200, name
    png = latent_bars([("#7 $x$ banana", 2.0), ("#1 the", 1.0)], "t")  # '$' is not mathtext
    assert Image.open(io.BytesIO(png)).format == "PNG"
