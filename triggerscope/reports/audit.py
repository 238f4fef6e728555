"""`triggerscope report RUN_DIR`: one self-contained HTML page a person can read an audit from.

The page answers, in order: what did the auditor ask (model, action, prompts); what is the
verdict; which latents the method ranked first, with their labels and the contexts they fire
on (activating token highlighted); what steering along the learned vectors does to held-out
prompts, next to the unsteered answers; and, when the run was scored against a planted trigger,
the scores. Every text is escaped (see `reports.html`), every image inlined.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from triggerscope.atomic import write_text
from triggerscope.confirmation.report import confirmation_section
from triggerscope.errors import TriggerscopeError
from triggerscope.methods.result import MethodResult, RankedLatent
from triggerscope.reports import html as h
from triggerscope.reports.plots import latent_bars
from triggerscope.reports.run_folder import RunFolder, load_run
from triggerscope.reports.verdict import verdict
from triggerscope.sae.labels import LatentDictionary, latents_path, load_latents

REPORT_FILE = "report.html"
TOP_LATENTS = 10
CONTEXT_LATENTS = 5
CONTEXTS = 4
VECTORS = 6
SAMPLES = 6
PROMPTS_SHOWN = 8


def find_dictionary(run: RunFolder, latents: str | Path | None = None) -> LatentDictionary | None:
    """The latent dictionary next to the run's SAE (or the one given); None when there is none."""
    if latents is not None:
        return load_latents(latents)
    sae = run.setting("sae_path", "sae", "sae_dir", kind=str)
    if not sae:
        return None
    folder = Path(str(sae)).expanduser()
    if folder.is_file():
        folder = folder.parent
    file = latents_path(folder)
    return load_latents(file) if file.is_file() else None


def _label(book: LatentDictionary | None, ranked: RankedLatent) -> str:
    if book is not None and 0 <= ranked.index < len(book.latents):
        return book.latents[ranked.index].label
    return ranked.label


def _prompts(prompts: list[str]) -> str:
    if not prompts:
        return "(not recorded)"
    head = "".join(f"<li>{h.text(p)}</li>" for p in prompts[:PROMPTS_SHOWN])
    out = f'<ol class="prompts">{head}</ol>'
    if len(prompts) > PROMPTS_SHOWN:
        rest = "".join(f"<li>{h.text(p)}</li>" for p in prompts[PROMPTS_SHOWN:])
        out += (
            f"<details><summary>{len(prompts) - PROMPTS_SHOWN} more</summary>"
            f'<ol class="prompts" start="{PROMPTS_SHOWN + 1}">{rest}</ol></details>'
        )
    return out


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        return [value]
    return []


def _question(run: RunFolder, book: LatentDictionary | None) -> str:
    r = run.result
    model = run.setting("model", "model_name") or "(not recorded)"
    pairs = [
        ("model", h.text(model)),
        ("method", h.text(r.method)),
        ("layer", h.text(r.layer)),
        ("action (response)", f"<code>{h.text(r.response)}</code>"),
    ]
    for label, names in (
        ("organism", ("organism",)),
        ("adapter", ("adapter", "adapter_dir")),
        ("SAE", ("sae_path", "sae", "sae_dir")),
    ):
        value = run.setting(*names)
        if isinstance(value, dict):  # an SAE config: say what it is
            value = ", ".join(
                f"{k} {value[k]}" for k in ("model_name", "hook_name", "d_sae") if value.get(k)
            )
        if value:
            pairs.append((label, h.text(value)))
    if book is not None:
        labelled = f"{len(book.latents)} latents, from {book.meta.get('n_texts')} texts"
        pairs.append(("latent dictionary", h.text(labelled)))
    prompts = _as_list(run.setting("prompts"))
    files = _as_list(run.setting("prompts_file", "prompt_file", "prompt_files"))
    if files:
        pairs.append(("prompt files", h.text(", ".join(files))))
    if prompts or not run.setting("n_prompts"):
        pairs.append(("benign prompts it optimised on", _prompts(prompts)))
    else:
        pairs.append(("benign prompts it optimised on", h.text(f"{run.setting('n_prompts')}")))
    n_heldout = len(_as_list(run.setting("heldout_prompts"))) or run.setting("n_heldout")
    if n_heldout:
        pairs.append(("held-out prompts (read-out only)", h.text(f"{n_heldout}")))
    return h.key_values(pairs)


def _latent_section(r: MethodResult, book: LatentDictionary | None) -> str:
    if not r.latent_ranking:
        return "<p>This method ranks no SAE latents.</p>"
    top = r.latent_ranking[:TOP_LATENTS]
    bars = [(f"#{x.index} {_label(book, x)[:60]}", x.score) for x in top]
    out = [h.image(latent_bars(bars, f"{r.method}: top {len(top)} latents"), "top latent scores")]
    rows = []
    for rank, x in enumerate(top, 1):
        latent = book.latents[x.index] if book and 0 <= x.index < len(book.latents) else None
        rows.append(
            [
                str(rank),
                h.text(x.index),
                h.text(f"{x.score:.4g}"),
                h.text(_label(book, x) or "(no label)"),
                h.tokens(latent.top_tokens[:6]) if latent else "",
                h.tokens(latent.promoted[:6]) if latent else "",
            ]
        )
    out.append(
        h.table(["rank", "latent", "score", "label", "fires on", "promotes"], rows, num=(0, 1, 2))
    )
    if book is None:
        out.append(
            '<div class="card warn">No latent dictionary found next to the SAE, so there are no '
            "labels or contexts; build one with <code>triggerscope sae label</code>.</div>"
        )
        return "".join(out)
    out.append("<h3>Where the top latents fire (activating token highlighted)</h3>")
    for x in top[:CONTEXT_LATENTS]:
        if not 0 <= x.index < len(book.latents):
            continue
        latent = book.latents[x.index]
        contexts = latent.contexts[:CONTEXTS]
        lines = (
            "".join(
                f'<div class="ctx"><span class="act">{float(c["activation"]):.2f}</span>'
                f"{h.marked(str(c['text']))}</div>"
                for c in contexts
            )
            or "<p class='sub'>never active on the dictionary's texts</p>"
        )
        out.append(
            f'<div class="card"><strong>latent {h.text(x.index)}</strong> '
            f'<span class="sub">{h.text(latent.label)}</span>{lines}</div>'
        )
    return "".join(out)


def _response(answer: str) -> str:
    if not answer.strip():
        return "<span class='sub'>(empty answer)</span>"
    return f'<div class="resp">{h.text(answer)}</div>'


def _samples_table(samples: list[dict[str, Any]], first: str) -> str:
    rows = [
        [
            h.text(s.get("prompt", "")),
            _response(s.get("unsteered", "")),
            _response(s.get("steered", "")),
            h.yes_no(s.get("action")),
        ]
        for s in samples[:SAMPLES]
    ]
    return h.table([first, "unsteered", "steered", "action"], rows)


def _baseline(r: MethodResult) -> str:
    parts = []
    if r.baseline_action_rate is not None:
        parts.append(f"action rate {r.baseline_action_rate:.0%} on the same held-out prompts")
    if r.baseline_loss is not None:
        parts.append(f"response cross-entropy {r.baseline_loss:.4g} on the training prompts")
    return f"<p class='sub'>Unsteered: {h.text('; '.join(parts))}.</p>" if parts else ""


def _steering_section(r: MethodResult, book: LatentDictionary | None) -> str:
    token_samples = r.extras.get("samples") if isinstance(r.extras.get("samples"), list) else None
    if not r.vectors and token_samples:
        best = r.extras.get("best_token", "")
        rate = r.extras.get("best_token_action_rate")
        shown = "n/a" if rate is None else f"{rate:.0%}"
        return (
            _baseline(r)
            + f'<div class="card"><h3>best token {h.text(repr(best))} inserted: action rate '
            f"{h.text(shown)}</h3>"
            + _samples_table(token_samples, "held-out prompt with the token")
            + "</div>"
        )
    if not r.vectors:
        return "<p>This method learns no steering vectors.</p>"
    order = sorted(
        range(len(r.vectors)),
        key=lambda i: -(r.vectors[i].action_rate or 0.0),
    )
    out = []
    if len(order) > VECTORS:
        out.append(
            f"<p class='sub'>{len(order)} vectors; the {VECTORS} with the highest action rate "
            f"are shown.</p>"
        )
    for i in order[:VECTORS]:
        v = r.vectors[i]
        rate = "n/a" if v.action_rate is None else f"{v.action_rate:.0%}"
        norm = f"{float(v.vector.norm()):.3g}" if v.vector.numel() else "n/a"
        head = (
            f"<h3>vector {i}: action rate {h.text(rate)} "
            f"<span class='sub'>(loss {v.final_loss:.4g}, norm {h.text(norm)}, "
            f"{v.steps} steps)</span></h3>"
        )
        tops = ", ".join(f"#{t.index} {_label(book, t)[:50]}" for t in v.top_latents[:3])
        body = f"<p class='sub'>its top latents: {h.text(tops)}</p>" if tops else ""
        if v.samples:
            body += _samples_table([asdict(s) for s in v.samples], "held-out prompt")
        out.append(f'<div class="card">{head}{body}</div>')
    return _baseline(r) + "".join(out)


def _tokens_section(r: MethodResult) -> str:
    rows = [
        [str(i), h.text(repr(t)[1:-1]), h.text(f"{s:.4g}")]
        for i, (t, s) in enumerate(r.token_ranking[:20], 1)
    ]
    return f'<div class="narrow">{h.table(["rank", "token", "score"], rows, num=(0, 2))}</div>'


def _evaluation_section(evaluation: dict[str, Any]) -> str:
    rows = []
    for c in evaluation.get("concepts", []):
        hits = c.get("hits") or {}
        rows.append(
            [
                h.text(c["concept"]),
                h.text(c.get("n_selective")),
                h.text(c.get("first_rank") if c.get("first_rank") is not None else "-"),
                *[h.yes_no(hits.get(f"hit@{k}")) if hits else "n/a" for k in (1, 3, 10)],
                h.yes_no(c.get("token_hit")),
            ]
        )
    intro = (
        f"<p class='sub'>Against the planted trigger of "
        f"<strong>{h.text(evaluation.get('organism', '?'))}</strong>: a latent counts when it "
        f"separates the concept's probe texts with AUROC >= "
        f"{h.text(evaluation.get('threshold'))}.</p>"
    )
    table = h.table(
        ["concept", "selective latents", "first rank", "hit@1", "hit@3", "hit@10", "token@10"],
        rows,
        num=(1, 2),
    )
    return intro + table


def _cost(run: RunFolder) -> str:
    r = run.result
    parts = [
        f"wall time {r.wall_seconds:.1f} s",
        f"{r.forward_passes} forward / {r.backward_passes} backward passes",
    ]
    versions = run.meta.get("versions") or {}
    if versions:
        parts.append(", ".join(f"{k} {v}" for k, v in versions.items()))
    if run.meta.get("seed") is not None:
        parts.append(f"seed {run.meta['seed']}")
    return h.text(" · ".join(parts))


def render_report(run: RunFolder, book: LatentDictionary | None) -> str:
    r = run.result
    v = verdict(r, book)
    note = f"<p class='sub'>{h.text(v.note)}</p>" if v.note else ""
    source = (
        f"<p class='sub'>read from latents {h.text(', '.join(map(str, v.latents)))}: the tokens "
        f"they fire on and promote, weighted by rank.</p>"
        if v.latents
        else ""
    )
    body = [
        f"<h1>triggerscope audit: {h.text(r.method)}</h1>",
        f"<p class='sub'>run {h.text(run.path.name)} · report made "
        f"{h.text(time.strftime('%Y-%m-%d %H:%M'))}</p>",
        f'<div class="card verdict"><strong>Verdict:</strong> {h.text(v.sentence())}'
        f"{source}{note}</div>",
        "<h2>The question asked</h2>",
        f'<div class="card">{_question(run, book)}</div>',
        "<h2>Top latents</h2>",
        _latent_section(r, book),
        "<h2>Steering: steered next to unsteered</h2>",
        _steering_section(r, book),
    ]
    if r.token_ranking:
        body += ["<h2>Top tokens</h2>", _tokens_section(r)]
    if run.evaluation:
        body += ["<h2>Scores against the planted trigger</h2>", _evaluation_section(run.evaluation)]
    body.append(confirmation_section(run.path))
    body.append(f"<footer>{_cost(run)}</footer>")
    return h.page(f"triggerscope audit: {r.method}", "".join(body))


def write_report(
    run_dir: str | Path, out: str | Path | None = None, latents: str | Path | None = None
) -> Path:
    run = load_run(run_dir)
    try:
        book = find_dictionary(run, latents)
    except TriggerscopeError:
        if latents is not None:
            raise
        book = None  # an unreadable dictionary next to the SAE: report without labels
    target = Path(out) if out is not None else run.path / REPORT_FILE
    write_text(target, render_report(run, book))
    return target
