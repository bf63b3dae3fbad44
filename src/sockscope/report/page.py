"""Pure: the report as one self-contained HTML page (no script, no network), and CSV.

The page carries its own style; a Content-Security-Policy forbids every load, so a
page that would reach out shows it as an error instead of silently doing so. Light and
dark follow the reader's ``prefers-color-scheme``; plots take their colours from the
same CSS variables. Printed (and as PDF), each section starts a page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from datetime import tzinfo
from html import escape

from sockscope.report.model import Kind, Report, Section, Table
from sockscope.report.units import format_bytes, format_count, format_seconds, format_time

CSS = """
:root { color-scheme: light dark;
  --bg: #ffffff; --fg: #1b1f24; --muted: #57606a; --grid: #d0d7de; --rule: #d8dee4;
  --alert-bg: #fff4e5; --alert-fg: #7a3e00;
  --c0: #0a66c2; --c1: #b35c00; --c2: #1a7f37; --c3: #cf222e; --c4: #8250df; }
@media (prefers-color-scheme: dark) { :root {
  --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --grid: #3d444d; --rule: #30363d;
  --alert-bg: #3d2300; --alert-fg: #ffcf8a;
  --c0: #58a6ff; --c1: #f0a050; --c2: #56d364; --c3: #ff7b72; --c4: #d2a8ff; } }
html { background: var(--bg); color: var(--fg); }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  max-width: 62rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
h2 { font-size: 1.2rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.3rem;
  border-bottom: 1px solid var(--rule); }
h3 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
p, .note { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1.2rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.alert { background: var(--alert-bg); color: var(--alert-fg); padding: 0.6rem 0.9rem;
  border-radius: 6px; margin: 0.8rem 0; font-weight: 600; }
.empty { font-style: italic; }
svg.plot { display: block; width: 100%; height: auto; margin: 0.8rem 0; }
table { border-collapse: collapse; margin: 0.4rem 0 0.2rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2rem 0.7rem; border-bottom: 1px solid var(--rule); text-align: left;
  white-space: nowrap; }
th { font-weight: 600; }
td.num, th.num { text-align: right; }
.scroll { overflow-x: auto; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  section { break-before: page; }
  svg.plot, table { break-inside: avoid; }
  .scroll { overflow: visible; }
}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

NUMERIC = (Kind.COUNT, Kind.BYTES, Kind.SECONDS)


def render_page(report: Report, svgs: Mapping[str, str], tz: tzinfo) -> str:
    """The whole page; ``svgs`` maps each plot's name to its inline SVG."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="sockscope report">',
        f"<title>{escape(report.title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<header><h1>{escape(report.title)}</h1>",
        '<dl class="facts">',
        *(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in report.facts),
        "</dl>",
        *(f'<div class="alert" role="alert">{escape(a)}</div>' for a in report.alerts),
        *(_table(t, tz) for t in report.tables),
        "</header>",
        *(_section(s, svgs, tz) for s in report.sections),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _section(section: Section, svgs: Mapping[str, str], tz: tzinfo) -> str:
    parts = [f'<section id="section-{section.name}">', f"<h2>{escape(section.title)}</h2>"]
    if section.intro:
        parts.append(f"<p>{escape(section.intro)}</p>")
    if section.empty:
        parts.append(f'<p class="empty">{escape(section.empty)}</p>')
    parts += [svgs[p.name] for p in section.plots if p.name in svgs]
    parts += [_table(t, tz) for t in section.tables if t.on_page and t.rows]
    parts.append("</section>")
    return "\n".join(parts)


def _table(table: Table, tz: tzinfo) -> str:
    rows = table.rows if table.limit is None else table.rows[: table.limit]
    head = "".join(
        f'<th{" class=num" if c.kind in NUMERIC else ""} scope="col">{escape(c.name)}</th>'
        for c in table.columns
    )
    body = [
        "<tr>"
        + "".join(
            f"<td{' class=num' if c.kind in NUMERIC else ''}>{escape(_cell(v, c.kind, tz))}</td>"
            for v, c in zip(row, table.columns, strict=True)
        )
        + "</tr>"
        for row in rows
    ]
    note = table.note
    if len(rows) < len(table.rows):
        note = f"{note} The first {len(rows)} of {len(table.rows)} rows; all of them are in the CSV.".strip()
    return "\n".join(
        [
            f'<h3 id="table-{table.name}">{escape(table.title)}</h3>',
            '<div class="scroll"><table>',
            f"<thead><tr>{head}</tr></thead>",
            "<tbody>",
            *body,
            "</tbody></table></div>",
            *([f'<p class="note">{escape(note)}</p>'] if note else []),
        ]
    )


def _cell(value: object, kind: Kind, tz: tzinfo) -> str:
    if value is None or value == "":
        return "-"
    shown: dict[Kind, Callable[[float], str]] = {
        Kind.COUNT: format_count,
        Kind.BYTES: format_bytes,
        Kind.SECONDS: format_seconds,
        Kind.TIME: lambda t: format_time(t, tz),
    }
    if kind in shown and isinstance(value, int | float):
        return shown[kind](value)
    return str(value)


def render_csv(table: Table) -> str:
    """The table as CSV: a header row, then raw values (seconds, bytes, epoch times)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return out.getvalue()
