"""The report renders in a real headless browser (skipped where Debian's chromium is absent)."""

import shutil
import subprocess
from pathlib import Path

import pytest
from evaluation_fixtures import FRUIT_LATENTS, synthetic_result, write_run

from triggerscope.reports.audit import write_report

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_report.sh"


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="chromium is not installed (apt-get install -y chromium)",
)
def test_report_renders_in_chromium(tmp_path):
    from PIL import Image

    result = synthetic_result([3, *FRUIT_LATENTS], [[7, 1, 2]], rates=[0.5])
    run = write_run(tmp_path / "run", result, tmp_path / "sae")
    page = write_report(run)
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        ["bash", str(SCRIPT), str(page), str(shot), "1400"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1400)
    # a rendered page, not a blank one: the verdict box's blue bar and the highlighted tokens
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50
    assert any(
        abs(r - 0x2F) < 12 and abs(g - 0x6F) < 12 and abs(b - 0xDE) < 12 for _, (r, g, b) in colours
    )
