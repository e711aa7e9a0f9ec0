"""The parts of worldforge's HTML reports: a page folder written atomically, tables, charts.

``curation report`` and ``training eval`` build their pages from these: a folder of
``index.html`` plus the PNG charts (matplotlib Agg) and videos it links by relative paths,
built under a temporary name and renamed into place, so a reader never sees half a report.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

INDEX_FILE = "index.html"
ACCENT = "#2f6db5"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f4f6f9;
color:#1d2733}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin:32px 0 10px;border-bottom:2px solid #dde3ea;padding-bottom:4px}
.sub{color:#5b6878}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:18px 0}
.card{background:#fff;border-radius:8px;padding:12px 18px;box-shadow:0 1px 3px #0002;
min-width:140px}.card b{display:block;font-size:24px;color:#2f6db5}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 3px #0002;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e6eaef;text-align:left;vertical-align:top}
th{background:#eef2f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;background:#f7f9fb}
img,video{max-width:100%;background:#fff;border-radius:6px;box-shadow:0 1px 3px #0002;
margin:6px 0}
.warn{background:#fff4d6;border-left:4px solid #e0a100;padding:8px 12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:12px}
details{margin:8px 0}code{font-size:12px}
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def table(header: list[str], rows: list[list[object]], numeric: set[int] = frozenset(),
          total_rows: set[int] = frozenset()) -> str:
    """An HTML table; columns in ``numeric`` are right-aligned, rows in ``total_rows`` bold."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="n">{esc(v)}</td>' if j in numeric else f"<td>{esc(v)}</td>"
                        for j, v in enumerate(row))
        body.append(f'<tr class="total">{cells}</tr>' if i in total_rows else f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def img(name: str, alt: str) -> str:
    return f'<img src="{esc(name)}" alt="{esc(alt)}">'


def figure(width: float, height: float) -> tuple[Figure, object]:
    """A matplotlib figure (no display needed) and its one axes, without top and right spines."""
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def save_png(fig: Figure, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name)
    return name


def page(title: str, parts: list[str], data: object) -> str:
    """A whole page: ``parts`` (HTML) in order, then ``data`` as JSON in
    ``<script id="report-data">`` so tools and tests can read every number behind the page."""
    text = json.dumps(data).replace("</", "<\\/")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(parts)}"
            f'<script type="application/json" id="report-data">{text}</script>'
            "</main></body></html>\n")


def read_data(index: Path) -> object:
    """The JSON a :func:`page` embedded."""
    text = Path(index).read_text(encoding="utf-8")
    start = text.index('id="report-data">') + len('id="report-data">')
    return json.loads(text[start:text.index("</script>", start)].replace("<\\/", "</"))


def replace_dir(new: Path, dest: Path) -> None:
    """Move the finished folder ``new`` to ``dest``, replacing what was there."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
        os.rename(new, dest)
        shutil.rmtree(old)
    else:
        os.rename(new, dest)


def write_page_folder(out: Path, render: Callable[[Path], str]) -> Path:
    """Build a report folder: ``render(tmp)`` draws its files into a temporary folder beside
    ``out`` and returns the page, written as ``index.html``; the folder then replaces ``out``
    (on an error nothing of it is left). Returns the path of ``index.html``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / INDEX_FILE).write_text(render(tmp), encoding="utf-8")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / INDEX_FILE
