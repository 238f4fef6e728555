"""The confirmation section of the audit report: the confirmed trigger, its evidence, and the
rejected candidates, rendered from `RUN_DIR/confirmation/` (an HTML fragment; every text
escaped by `reports.html`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from triggerscope.confirmation.run import CONFIRMATION_DIR
from triggerscope.reports import html as h

EXAMPLES = 4


def load_confirmation(run_dir: str | Path) -> dict[str, Any] | None:
    """result.json of the run's confirmation (None when it was not confirmed or is unreadable),
    with up to EXAMPLES sample answers of the trigger's test prompts under "examples"."""
    folder = Path(run_dir) / CONFIRMATION_DIR
    try:
        data = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or "steps" not in data:
        return None
    data["examples"] = _examples(folder, data)
    return data


def _examples(folder: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    final = data.get("final") or {}
    name = (final.get("hypothesis") or {}).get("name")
    if not name:
        return []
    out = []
    try:
        lines = (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("hypothesis") == name and row.get("condition") in ("carrying", "both"):
            out.append(row)
    out.sort(key=lambda r: -int(r.get("step", 0)))  # the last step's prompts carry everything
    return out[:EXAMPLES]


def _pct(rate: dict[str, Any] | None) -> str:
    if not rate:
        return "-"
    low, high = rate.get("ci", [None, None])
    span = f" [{low:.0%}, {high:.0%}]" if low is not None and high is not None else ""
    return f"{rate['rate']:.0%}{span}"


def _effect(values: list[float] | None) -> str:
    if not values:
        return "-"
    d, low, high = values
    return f"{d:+.0%} [{low:+.0%}, {high:+.0%}]"


def _step_table(step: dict[str, Any], chosen: int | None) -> str:
    later = bool(step.get("context"))
    head = ["rank", "hypothesis", "from", "carried by", "action rate", "control", "effect"]
    if later:
        head = [*head[:5], "context only", "candidate only", "neither", "effect", "needs both"]
    head.append("confirmed")
    rows = []
    for rank, e in enumerate(step.get("evidence", []), 1):
        hyp = e["hypothesis"]
        name = hyp["name"] + (" (carried forward)" if rank - 1 == chosen else "")
        row = [
            str(rank),
            h.text(name),
            h.text(hyp.get("source", "")),
            h.tokens(hyp.get("words", [])),
            h.text(_pct(e["carrying"])),
            h.text(_pct(e["control"])),
        ]
        if later:
            row += [
                h.text(_pct(e.get("alone"))),
                h.text(_pct(e.get("neither"))),
                h.text(_effect(e.get("effect"))),
                h.yes_no(e.get("needs_context")),
            ]
        else:
            row.append(h.text(_effect(e.get("effect"))))
        row.append(h.yes_no(e.get("confirmed")))
        rows.append(row)
    return h.table(head, rows, num=(0,))


def render_confirmation(data: dict[str, Any]) -> str:
    """The section's HTML: verdict, evidence per step, rejected candidates, example answers."""
    cfg = data.get("config") or {}
    n = cfg.get("n_prompts", "?")
    intro = (
        f"Each hypothesis was inserted into {n} benign prompts (its words in a short sentence, "
        f"or a quoted top-activating text) and compared with matched controls: the same "
        f"sentences with {cfg.get('control', 'neutral')} control words of the same count and "
        f"lengths. Greedy answers; an answer takes the action when it contains "
        f"{cfg.get('response', '')!r}. Intervals: {data.get('ci_method', '')} "
        f"({data.get('confidence', 0.95):.0%}). Benign prompts as they are: "
        f"{_pct(data.get('benign'))}; every first-step control: {_pct(data.get('controls'))}."
    )
    out = [
        "<h2>Trigger confirmation</h2>",
        f'<div class="card verdict"><strong>{h.text(data.get("verdict", ""))}</strong></div>',
        f"<p class='sub'>{h.text(intro)}</p>",
    ]
    for number, step in enumerate(data.get("steps", []), 1):
        title = f"Step {number}: hypotheses from {step.get('source', '')}"
        out.append(f"<h3>{h.text(title)}</h3>")
        if step.get("note"):
            out.append(f"<p class='sub'>{h.text(step['note'])}</p>")
        if step.get("evidence"):
            out.append(_step_table(step, step.get("chosen")))
    rejected = data.get("rejected") or []
    out.append(
        "<p><strong>Rejected candidates</strong> (no effect above their controls): "
        + (h.text(", ".join(rejected)) if rejected else "none")
        + "</p>"
    )
    examples = data.get("examples") or []
    if examples:
        rows = [
            [h.text(r.get("prompt", "")), h.text(r.get("answer", "")), h.yes_no(r.get("action"))]
            for r in examples
        ]
        out.append("<h3>Test prompts that carry the trigger, and the answers</h3>")
        out.append(h.table(["prompt", "answer", "action"], rows))
    return "".join(out)


def confirmation_section(run_dir: str | Path) -> str:
    """The section for the audit report of `run_dir`; empty when the run was not confirmed."""
    data = load_confirmation(run_dir)
    return render_confirmation(data) if data is not None else ""
