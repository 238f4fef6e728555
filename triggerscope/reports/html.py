"""HTML building blocks for a self-contained page: every text escaped, images inlined.

Only these helpers put strings into markup, and each escapes with `html.escape`, so text from a
model, a prompt file or a latent label can never inject markup. The page's Content-Security-
Policy forbids loading anything from outside it (images come as data: URIs).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from html import escape

from triggerscope.sae.labels import MARK

_MARKED = re.compile(re.escape(MARK[0]) + r"(.*?)" + re.escape(MARK[1]), re.DOTALL)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  background: #f4f5f7; color: #1d2430; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 28px 0 10px; border-bottom: 2px solid #d5dae3;
  padding-bottom: 4px; }
h3 { font-size: 1rem; margin: 16px 0 6px; }
.sub { color: #5b6575; font-size: .9rem; }
.card { background: white; border: 1px solid #d5dae3; border-radius: 8px; padding: 14px 18px;
  margin: 10px 0; }
.verdict { border-left: 6px solid #2f6fde; font-size: 1.1rem; }
.verdict strong { color: #173f8a; }
.warn { border-left: 6px solid #d08a00; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; background: white; }
th, td { border: 1px solid #d5dae3; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.kv dt { color: #5b6575; } dl.kv dd { margin: 0; word-break: break-word; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: .85rem; }
.ctx { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .8rem; margin: 2px 0;
  white-space: pre-wrap; word-break: break-word; }
.ctx .act { color: #5b6575; display: inline-block; min-width: 5.5em; }
mark { background: #ffd54a; padding: 0 2px; border-radius: 3px; font-weight: 600; }
.tok { display: inline-block; background: #eef1f6; border-radius: 4px; padding: 0 5px;
  margin: 1px 2px; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .8rem; }
.yes { color: #0a7a32; font-weight: 600; } .no { color: #b3261e; font-weight: 600; }
.resp { white-space: pre-wrap; word-break: break-word; }
img.plot { max-width: 100%; height: auto; display: block; margin: 8px 0; }
ol.prompts { margin: 4px 0; padding-left: 1.6em; font-size: .88rem; }
details summary { cursor: pointer; color: #2f6fde; }
.narrow { max-width: 560px; }
footer { margin-top: 40px; color: #5b6575; font-size: .8rem; }
"""


def text(value: object) -> str:
    return escape(str(value), quote=True)


def marked(context: str) -> str:
    """A context with the activating token wrapped in <mark> (the label module marks it «so»)."""
    out, last = [], 0
    for match in _MARKED.finditer(context):
        out.append(escape(context[last : match.start()]))
        token = match.group(1)
        lead = token[: len(token) - len(token.lstrip())]  # a token's leading space stays plain
        out.append(f"{escape(lead)}<mark>{escape(token[len(lead) :])}</mark>")
        last = match.end()
    out.append(escape(context[last:]))
    return "".join(out)


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{text(alt)}" src="data:image/png;base64,{data}">'


def tokens(items: Iterable[str]) -> str:
    return "".join(f'<span class="tok">{text(repr(t)[1:-1])}</span>' for t in items)


def yes_no(value: bool | None) -> str:
    if value is None:
        return "n/a"
    return '<span class="yes">yes</span>' if value else '<span class="no">no</span>'


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are markup already (escape them with `text`)."""
    rows = "".join(f"<dt>{text(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="kv">{rows}</dl>'


def table(head: Sequence[str], rows: Sequence[Sequence[str]], num: Sequence[int] = ()) -> str:
    """Rows hold markup already; columns listed in `num` are right-aligned numbers."""
    th = "".join(f"<th>{text(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, body: str) -> str:
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
