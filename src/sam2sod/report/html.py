"""``report.html``: one self-contained page (inline CSS, figures as base64 data URIs, no external link).

It holds the results table (best bold, second underlined), the bootstrap-CI table, the paired-test
table (one row per dataset and metric), the curve plots (three to a row, one row per dataset) and one
captioned qualitative grid per dataset, so it reads offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sam2sod.atomic import atomic_write_text
from sam2sod.errors import SodError
from sam2sod.report.stats import BenchmarkStats
from sam2sod.report.tables import SHORT_NAMES, Row, arrow, format_value, pvalue_cells, pvalue_layout, table_model

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { padding: 0.3em 0.6em; text-align: center; border-bottom: 1px solid #e5e5e5; }
th { background: #f3f3f3; } td.method, th.method { text-align: left; }
thead tr:first-child th { border-bottom: 1px solid #999; }
.caption, .note { color: #555; font-style: italic; }
table.tests td { white-space: nowrap; }
.curves { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 0.8em; }
figure { margin: 0.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
.scroll { overflow-x: auto; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _mark(text: str, rank: int | None) -> str:
    return f"<b>{text}</b>" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text


def results_table_html(rows: Sequence[Row], method_info: Mapping[str, Mapping[str, Any]] | None = None,
                       with_ci: bool = False) -> str:
    """The paper-layout table as HTML: dataset column groups, metric sub-columns with arrows."""
    model = table_model(rows, method_info)
    groups = [(d, model.columns(d)) for d in model.datasets]
    lead = ['<th class="method" rowspan="2">Method</th>']
    lead += [f'<th rowspan="2">{_e(t)}</th>' for t in model.info_titles]
    top = lead + [f'<th colspan="{len(cols)}">{_e(d)}</th>' for d, cols in groups]
    sub = [f"<th>{_e(SHORT_NAMES.get(m, m))} {arrow(m)}</th>" for _, cols in groups for m in cols]
    body = []
    for meth in model.methods:
        cells = [f'<td class="method">{_e(meth)}</td>', *(f"<td>{_e(x)}</td>" for x in model.info[meth])]
        for d, cols in groups:
            for m in cols:
                row = model.cells.get((meth, d, m))
                if row is None:
                    cells.append("<td>–</td>")
                    continue
                text, ci = format_value(row, with_ci)
                cells.append(f"<td>{_mark(_e(text), model.ranks.get(row.key))}{_e(ci)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table>\n<thead>\n<tr>" + "".join(top) + "</tr>\n<tr>" + "".join(sub) + "</tr>\n</thead>\n<tbody>\n"
            + "\n".join(body) + "\n</tbody>\n</table>")


def pvalue_table_html(stats: BenchmarkStats, alpha: float = 0.05) -> str:
    """Paired tests against the reference: one row per dataset and metric, per method its difference and
    (bootstrap / Wilcoxon) p-values in two narrow columns."""
    tests = list(stats.tests.values())
    if not tests:
        return ""
    methods, keys, by_key = pvalue_layout(tests)
    top = '<th rowspan="2">Dataset</th><th rowspan="2">Metric</th>' + "".join(
        f'<th colspan="2">{_e(m)}</th>' for m in methods)
    sub = "".join("<th>Δ</th><th>p (boot / Wilc.)</th>" for _ in methods)
    body = []
    for d, m in keys:
        cells = [f'<td class="method">{_e(d)}</td>', f"<td>{_e(SHORT_NAMES.get(m, m))} {arrow(m)}</td>"]
        for meth in methods:
            diff, p, significant = pvalue_cells(by_key.get((meth, d, m)), alpha)
            cells += [f"<td>{f'<b>{_e(x)}</b>' if significant else _e(x)}</td>" for x in (diff, p)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table class="tests">\n<thead><tr>' + top + "</tr><tr>" + sub + "</tr></thead>\n<tbody>\n"
            + "\n".join(body) + "\n</tbody>\n</table>")


def data_uri(path: str | Path) -> str:
    """A figure file as a ``data:`` URI."""
    path = Path(path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise SodError(f"cannot embed {path}: only {', '.join(_MIME)} figures are supported")
    try:
        payload = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as err:
        raise SodError(f"cannot read figure {path}: {err.strerror or err}") from None
    return f"data:{mime};base64,{payload}"


def default_figures(out: str | Path) -> list[tuple[str, Path]]:
    """The figures a benchmark folder holds: ``curves/*_{pr,f,e}.png`` by dataset, then the qualitative grids
    (``qualitative_DATASET.png``, or ``qualitative.png``)."""
    out = Path(out)
    kinds = {"pr": "precision-recall", "f": "F-measure curve", "e": "E-measure curve"}
    found = []
    for path in sorted((out / "curves").glob("*.png")):
        m = re.fullmatch(r"(.+)_(pr|f|e)", path.stem)
        if m:
            found.append((m.group(1), list(kinds).index(m.group(2)), f"{m.group(1)}: {kinds[m.group(2)]}", path))
    figures = [(title, path) for _, _, title, path in sorted(found, key=lambda f: (f[0], f[1]))]
    for p in sorted(out.glob("qualitative*.png")):
        dataset = p.stem.partition("_")[2]
        figures.append((f"{dataset}: qualitative comparison" if dataset else "qualitative comparison", p))
    return figures


def _figures_html(figures: Sequence[tuple[str, str | Path]], captions: Mapping[str, str]) -> list[str]:
    """Curve plots three to a row (one row per dataset), then each qualitative grid on its own, captioned."""
    curves = [(t, p) for t, p in figures if "qualitative" not in Path(p).stem]
    grids = [(t, p) for t, p in figures if "qualitative" in Path(p).stem]
    parts = []
    if curves:
        parts += ["<h2>Curves</h2>", '<div class="curves">']
        parts += [f'<figure><img alt="{_e(t)}" src="{data_uri(p)}"><figcaption>{_e(t)}</figcaption></figure>'
                  for t, p in curves]
        parts.append("</div>")
    for t, p in grids:
        note = captions.get(Path(p).name, "")
        parts += [f"<h2>{_e(t)}</h2>", f'<figure class="scroll"><img alt="{_e(t)}" '
                  f'src="{data_uri(p)}"><figcaption>{_e(note or t)}</figcaption></figure>']
    return parts


def render_html(rows: Sequence[Row], stats: BenchmarkStats | None = None, *,
                figures: Sequence[tuple[str, str | Path]] = (),
                method_info: Mapping[str, Mapping[str, Any]] | None = None, caption: str | None = None,
                title: str = "sam2sod benchmark", figure_captions: Mapping[str, str] | None = None) -> str:
    """The whole page as a string (see :func:`write_html_report`)."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{_e(title)}</h1>"]
    if caption:
        parts.append(f'<p class="caption">{_e(caption)}</p>')
    parts += ["<h2>Results</h2>", '<p class="note">Best value per column in bold, second underlined; '
              "↑ higher is better, ↓ lower is better.</p>",
              f'<div class="scroll">{results_table_html(rows, method_info)}</div>']
    if stats is not None and stats.intervals:
        level = f"{stats.confidence * 100:g}%"
        parts += [f"<h2>{level} bootstrap confidence intervals</h2>",
                  f'<p class="note">Percentile bootstrap over images: {stats.n_resamples} resamples, '
                  f"seed {stats.seed}.</p>",
                  f'<div class="scroll">{results_table_html(rows, method_info, with_ci=True)}</div>']
    if stats is not None and stats.tests:
        parts += [f"<h2>Paired tests against {_e(stats.reference)}</h2>",
                  f'<p class="note">Difference (method − {_e(stats.reference)}) and two-sided p-values '
                  "(paired bootstrap / Wilcoxon signed-rank, per-image metrics only); bold: p &lt; 0.05.</p>",
                  pvalue_table_html(stats)]
    parts += _figures_html(figures, figure_captions or {})
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_html_report(path: str | Path, rows: Sequence[Row], stats: BenchmarkStats | None = None, *,
                      figures: Sequence[tuple[str, str | Path]] = (),
                      method_info: Mapping[str, Mapping[str, Any]] | None = None, caption: str | None = None,
                      title: str = "sam2sod benchmark", figure_captions: Mapping[str, str] | None = None) -> Path:
    """Write ``report.html`` atomically: tables (+ CI / p-value tables with `stats`) and embedded figures.

    `figures`: (title, file) pairs in display order, e.g. :func:`default_figures` of the output folder;
    `figure_captions`: {file name: caption} for the qualitative grids.
    """
    path = Path(path)
    atomic_write_text(path, render_html(rows, stats, figures=figures, method_info=method_info, caption=caption,
                                        title=title, figure_captions=figure_captions))
    return path
