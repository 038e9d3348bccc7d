"""``report.html``: one self-contained page (inline CSS, figures as base64 data URIs, no external link).

It holds the results table (best bold, second underlined), the bootstrap-CI table, the paired-test
table, the curve plots and the qualitative grid, so it reads offline and can be mailed as one file.
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
from sam2sod.report.tables import SHORT_NAMES, Row, arrow, format_p, format_value, table_model

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
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure.wide { display: block; } figcaption { font-size: 0.85em; color: #555; text-align: center; }
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
    """Paired tests against the reference: difference and (bootstrap / Wilcoxon) p-values."""
    tests = list(stats.tests.values())
    if not tests:
        return ""
    methods = list(dict.fromkeys(t.method for t in tests))
    cols = list(dict.fromkeys((t.dataset, t.metric) for t in tests))
    by_key = {(t.method, t.dataset, t.metric): t for t in tests}
    head = '<th class="method">Method</th>' + "".join(
        f"<th>{_e(d)} {_e(SHORT_NAMES.get(m, m))}</th>" for d, m in cols)
    body = []
    for meth in methods:
        cells = [f'<td class="method">{_e(meth)}</td>']
        for d, m in cols:
            t = by_key.get((meth, d, m))
            if t is None:
                cells.append("<td>–</td>")
                continue
            text = _e(f"{t.difference:+.3f} ({format_p(t.p_bootstrap)} / {format_p(t.p_wilcoxon) or '–'})")
            significant = t.p_bootstrap < alpha and (t.p_wilcoxon is None or t.p_wilcoxon < alpha)
            cells.append(f"<td>{f'<b>{text}</b>' if significant else text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table>\n<thead><tr>" + head + "</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody>\n</table>")


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
    """The figures a benchmark folder holds: ``curves/*_{pr,f,e}.png`` by dataset, then ``qualitative*.png``."""
    out = Path(out)
    kinds = {"pr": "precision-recall", "f": "F-measure curve", "e": "E-measure curve"}
    found = []
    for path in sorted((out / "curves").glob("*.png")):
        m = re.fullmatch(r"(.+)_(pr|f|e)", path.stem)
        if m:
            found.append((m.group(1), list(kinds).index(m.group(2)), f"{m.group(1)}: {kinds[m.group(2)]}", path))
    figures = [(title, path) for _, _, title, path in sorted(found, key=lambda f: (f[0], f[1]))]
    figures += [(p.stem.replace("_", " "), p) for p in sorted(out.glob("qualitative*.png"))]
    return figures


def render_html(rows: Sequence[Row], stats: BenchmarkStats | None = None, *,
                figures: Sequence[tuple[str, str | Path]] = (),
                method_info: Mapping[str, Mapping[str, Any]] | None = None, caption: str | None = None,
                title: str = "sam2sod benchmark") -> str:
    """The whole page as a string (see :func:`write_html_report`)."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{_e(title)}</h1>"]
    if caption:
        parts.append(f'<p class="caption">{_e(caption)}</p>')
    parts += ["<h2>Results</h2>", '<p class="note">Best value per column in bold, second underlined; '
              "↑ higher is better, ↓ lower is better.</p>", results_table_html(rows, method_info)]
    if stats is not None and stats.intervals:
        level = f"{stats.confidence * 100:g}%"
        parts += [f"<h2>{level} bootstrap confidence intervals</h2>",
                  f'<p class="note">Percentile bootstrap over images: {stats.n_resamples} resamples, '
                  f"seed {stats.seed}.</p>", results_table_html(rows, method_info, with_ci=True)]
    if stats is not None and stats.tests:
        parts += [f"<h2>Paired tests against {_e(stats.reference)}</h2>",
                  f'<p class="note">Difference (method − {_e(stats.reference)}) and two-sided p-values '
                  "(paired bootstrap / Wilcoxon signed-rank, per-image metrics only); bold: p &lt; 0.05.</p>",
                  pvalue_table_html(stats)]
    if figures:
        parts.append("<h2>Figures</h2>")
        for fig_title, path in figures:
            wide = ' class="wide"' if "qualitative" in Path(path).stem else ""
            parts.append(f'<figure{wide}><img alt="{_e(fig_title)}" src="{data_uri(path)}">'
                         f"<figcaption>{_e(fig_title)}</figcaption></figure>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_html_report(path: str | Path, rows: Sequence[Row], stats: BenchmarkStats | None = None, *,
                      figures: Sequence[tuple[str, str | Path]] = (),
                      method_info: Mapping[str, Mapping[str, Any]] | None = None, caption: str | None = None,
                      title: str = "sam2sod benchmark") -> Path:
    """Write ``report.html`` atomically: tables (+ CI / p-value tables with `stats`) and embedded figures.

    `figures`: (title, file) pairs in display order, e.g. :func:`default_figures` of the output folder.
    """
    path = Path(path)
    atomic_write_text(path, render_html(rows, stats, figures=figures, method_info=method_info, caption=caption,
                                        title=title))
    return path
