"""The report page: one self-contained HTML file (inline CSS and JS, PNGs embedded as base64 data URIs).

One file that works offline and can be mailed or attached to an issue; the PNGs also stay beside it.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from lightdl.report.collect import Job

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; white-space: nowrap; }
th { background: #eee; cursor: pointer; user-select: none; }
th[data-order="asc"]::after { content: " \\25B2"; } th[data-order="desc"]::after { content: " \\25BC"; }
tr.failed td, tr.diverged td { background: #fde2e2; } tr.pruned td { background: #eee; color: #777; }
.scroll { overflow-x: auto; } figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.8em; color: #555; } img { max-width: 100%; }
"""

# Click a header to sort by that column (again to reverse); numbers sort as numbers, blanks last.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const asc = th.dataset.order !== "asc";
  th.parentNode.querySelectorAll("th").forEach(h => delete h.dataset.order);
  th.dataset.order = asc ? "asc" : "desc";
  const key = row => {
    const cell = row.cells[col], text = (cell.dataset.sort ?? cell.textContent).trim();
    return text === "" ? null : (isNaN(Number(text)) ? text : Number(text));
  };
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);
    if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
    return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
  });
  rows.forEach(row => body.appendChild(row));
}));
"""


def table(jobs: list[Job], columns: list[str]) -> str:
    """The sweep table as a sortable HTML table: shown values rounded, exact values kept for sorting."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for job in jobs:
        cells = "".join(_cell(job.row.get(c)) for c in columns)
        body.append(f'<tr class="{escape(job.status)}">{cells}</tr>')
    return (
        '<div class="scroll"><table class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td data-sort="{value!r}">{value:.4g}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def figure(out: Path, name: str, caption: str) -> str:
    """An <img> with the PNG embedded, captioned with a link to the file beside the page."""
    data = base64.b64encode((out / name).read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
        f'<figcaption>{escape(caption)} (<a href="{escape(name)}">{escape(name)}</a>)</figcaption>'
        "</figure>"
    )


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """The whole document: a title and (heading, inner HTML) sections."""
    parts = [f"<h2>{escape(h)}</h2>\n{body}" for h, body in sections]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(parts) + f"\n<script>{SORT_SCRIPT}</script>"
        "\n</body></html>\n"
    )


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"
