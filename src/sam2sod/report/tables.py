"""Benchmark tables: tidy ``table.csv``, paper-layout ``table.md`` / ``table.tex``, p-value tables.

Paper layout: one row per method, one column group per dataset, one sub-column per metric, an arrow
per metric (higher / lower is better), the best value of each column in bold and the second underlined
(ranked on the 3-decimal values shown, so ties share a mark), optional ``Params`` / ``Inference ms``
columns and a caption line.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sam2sod.atomic import atomic_write_text
from sam2sod.errors import SodError
from sam2sod.metrics.extra import lower_is_better
from sam2sod.report.stats import BenchmarkStats, PairedTest

CSV_COLUMNS = ("method", "dataset", "metric", "value", "ci_low", "ci_high", "p_value")
PVALUE_COLUMNS = ("reference", "method", "dataset", "metric", "n", "difference", "p_bootstrap", "p_wilcoxon")
#: Short column titles of the core metrics (as `sam2sod score` prints them).
SHORT_NAMES = {"Smeasure": "S", "wFmeasure": "wF", "MAE": "MAE", "adpEm": "adpE", "meanEm": "meanE",
               "maxEm": "maxE", "adpFm": "adpF", "meanFm": "meanF", "maxFm": "maxF"}
#: LaTeX column titles of the core metrics (the symbols SOD papers use).
LATEX_NAMES = {"Smeasure": r"$S_\alpha$", "wFmeasure": r"$F_\beta^w$", "MAE": "MAE",
               "adpEm": r"$E_\phi^{adp}$", "meanEm": r"$E_\phi^{mean}$", "maxEm": r"$E_\phi^{max}$",
               "adpFm": r"$F_\beta^{adp}$", "meanFm": r"$F_\beta^{mean}$", "maxFm": r"$F_\beta^{max}$"}
# method_info keys shown as columns; "training" is "zero-shot" / "fine-tuned" in benchmarks with a zero-shot SAM2
INFO_COLUMNS = {"training": "Training", "params": "Params", "inference_ms": "Inference ms"}
WIDE_COLUMNS = 8  # LaTeX tables with more columns span both columns of a paper and are scaled to fit
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


@dataclass
class Row:
    """One tidy result: a metric of a method on a dataset, with its CI and p-value when computed."""

    method: str
    dataset: str
    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.method, self.dataset, self.metric


def build_rows(metrics: Mapping[str, Mapping[str, Mapping[str, Any]]], stats: BenchmarkStats | None = None,
               metric_names: Sequence[str] | None = None) -> list[Row]:
    """Tidy rows from ``{dataset: {method: {metric: value}}}`` (each dataset's metrics.json content).

    Non-numeric entries (``note``) are skipped; `metric_names` selects and orders metrics. With `stats`,
    rows get the bootstrap CI and the paired-bootstrap p-value against the reference method.
    """
    rows = []
    for dataset, by_method in metrics.items():
        for method, values in by_method.items():
            names = [m for m in (metric_names or values) if m in values]
            for m in names:
                v = values[m]
                if isinstance(v, bool) or not isinstance(v, int | float):
                    continue
                row = Row(method, dataset, m, float(v))
                if stats is not None:
                    iv = stats.intervals.get(row.key)
                    if iv is not None:
                        row.ci_low, row.ci_high = iv.low, iv.high
                    test = stats.tests.get(row.key)
                    if test is not None:
                        row.p_value = test.p_bootstrap
                rows.append(row)
    return rows


def _num(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def rows_to_csv(rows: Sequence[Row]) -> str:
    """CSV text with `CSV_COLUMNS`; empty cells where a CI or p-value was not computed."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r.method, r.dataset, r.metric, _num(r.value), _num(r.ci_low), _num(r.ci_high), _num(r.p_value)])
    return buf.getvalue()


def read_table_csv(path: str | Path) -> list[Row]:
    """Rows back from a ``table.csv``."""
    opt = lambda s: float(s) if s else None  # noqa: E731
    try:
        with Path(path).open(newline="", encoding="utf-8") as f:
            return [Row(d["method"], d["dataset"], d["metric"], float(d["value"]), opt(d["ci_low"]),
                        opt(d["ci_high"]), opt(d["p_value"])) for d in csv.DictReader(f)]
    except (OSError, KeyError, ValueError) as err:
        raise SodError(f"cannot read table {path}: {err}") from None


def _ordered(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def format_params(value: Any) -> str:
    """4270000 -> '4.27M', 35000 -> '35.0K'; strings as they are."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    v = float(value)
    if abs(v) >= 1e9:
        return f"{v / 1e9:.2f}B"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    return f"{v / 1e3:.1f}K" if abs(v) >= 1e3 else f"{v:g}"


def format_ms(value: float) -> str:
    """Milliseconds with the digits a timing supports: '986', '31', '4.2'."""
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _format_info(key: str, value: Any, spread: Any = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key == "params":
        return format_params(value)
    if key == "inference_ms" and isinstance(value, int | float):
        return format_ms(float(value)) + (f" ± {format_ms(float(spread))}" if isinstance(spread, int | float) else "")
    return f"{float(value):.1f}" if isinstance(value, int | float) else str(value)


@dataclass
class TableModel:
    """What every renderer draws: methods x (dataset, metric) cells, ranks and info columns."""

    methods: list[str]
    datasets: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str, str], Row]
    ranks: dict[tuple[str, str, str], int] = field(default_factory=dict)
    info_titles: list[str] = field(default_factory=list)
    info: dict[str, list[str]] = field(default_factory=dict)

    def columns(self, dataset: str) -> list[str]:
        """The metrics with at least one value on `dataset`."""
        return [m for m in self.metrics if any((meth, dataset, m) in self.cells for meth in self.methods)]


def _ranks(cells: Mapping[tuple[str, str, str], Row], methods: Sequence[str], datasets: Sequence[str],
           metrics: Sequence[str]) -> dict[tuple[str, str, str], int]:
    """1 = best, 2 = second of each (dataset, metric) column on the displayed 3-decimal values."""
    ranks = {}
    for d in datasets:
        for m in metrics:
            present = [(meth, round(cells[(meth, d, m)].value, 3)) for meth in methods
                       if (meth, d, m) in cells and math.isfinite(cells[(meth, d, m)].value)]
            if len(present) < 2:
                continue
            distinct = sorted({v for _, v in present}, reverse=not lower_is_better(m))
            for meth, v in present:
                r = distinct.index(v) + 1
                if r <= 2:
                    ranks[(meth, d, m)] = r
    return ranks


def table_model(rows: Sequence[Row], method_info: Mapping[str, Mapping[str, Any]] | None = None) -> TableModel:
    """Arrange rows for rendering; `method_info`: {method: {"params": int|str, "inference_ms": float}}."""
    if not rows:
        raise SodError("no results to tabulate")
    methods = _ordered([r.method for r in rows])
    datasets = _ordered([r.dataset for r in rows])
    metrics = _ordered([r.metric for r in rows])
    cells = {r.key: r for r in rows}
    model = TableModel(methods, datasets, metrics, cells, _ranks(cells, methods, datasets, metrics))
    info = method_info or {}
    keys = [k for k in INFO_COLUMNS if any(info.get(m, {}).get(k) is not None for m in methods)]
    model.info_titles = [INFO_COLUMNS[k] for k in keys]
    model.info = {m: [_format_info(k, info.get(m, {}).get(k), info.get(m, {}).get(f"{k}_spread")) for k in keys]
                  for m in methods}
    return model


def format_value(row: Row, with_ci: bool = False, ci_decimals: int = 2) -> tuple[str, str]:
    """(value text, CI suffix): ``('0.812', ' [0.79, 0.83]')``; the suffix is empty without a CI."""
    text = f"{row.value:.3f}" if math.isfinite(row.value) else "–"
    if with_ci and row.ci_low is not None and row.ci_high is not None:
        return text, f" [{row.ci_low:.{ci_decimals}f}, {row.ci_high:.{ci_decimals}f}]"
    return text, ""


def arrow(metric: str, latex: bool = False) -> str:
    """'↑' / '↓' (LaTeX: $\\uparrow$ / $\\downarrow$): which direction of `metric` is better."""
    down = lower_is_better(metric)
    if latex:
        return r"$\downarrow$" if down else r"$\uparrow$"
    return "↓" if down else "↑"


def render_markdown(rows: Sequence[Row], method_info: Mapping[str, Mapping[str, Any]] | None = None,
                    caption: str | None = None, with_ci: bool = False) -> str:
    """A GitHub-markdown table: best **bold**, second <u>underlined</u>; CIs as ``0.812 [0.79, 0.83]``."""
    model = table_model(rows, method_info)
    head = ["Method", *model.info_titles]
    align = [":---", *["---:"] * len(model.info_titles)]
    for d in model.datasets:
        for m in model.columns(d):
            head.append(f"{d} {SHORT_NAMES.get(m, m)} {arrow(m)}")
            align.append(":---:")
    lines = [f"*{caption}*", ""] if caption else []
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for meth in model.methods:
        cells = [_md_escape(meth), *model.info[meth]]
        for d in model.datasets:
            for m in model.columns(d):
                row = model.cells.get((meth, d, m))
                if row is None:
                    cells.append("–")
                    continue
                text, ci = format_value(row, with_ci)
                rank = model.ranks.get(row.key)
                text = f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text
                cells.append(text + ci)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def render_latex(rows: Sequence[Row], method_info: Mapping[str, Mapping[str, Any]] | None = None,
                 caption: str | None = None, label: str = "tab:benchmark") -> str:
    """A booktabs table: multicolumn dataset headers with cmidrules, \\textbf best, \\underline second.

    Over `WIDE_COLUMNS` columns it is a two-column-spanning ``table*`` whose tabular is scaled to
    ``\\textwidth`` (``\\resizebox``, package graphicx), so a 21-column table fits a two-column paper.
    """
    model = table_model(rows, method_info)
    groups = [(d, model.columns(d)) for d in model.datasets]
    lead = 1 + len(model.info_titles)
    spec = "l" + "r" * len(model.info_titles) + "".join("c" * len(cols) for _, cols in groups)
    top, rules, start = ["" for _ in range(lead)], [], lead + 1
    for d, cols in groups:
        top.append(rf"\multicolumn{{{len(cols)}}}{{c}}{{{latex_escape(d)}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
        start += len(cols)
    head = ["Method", *(latex_escape(t) for t in model.info_titles)]
    for _, cols in groups:
        head += [f"{LATEX_NAMES.get(m, latex_escape(m))} {arrow(m, latex=True)}" for m in cols]
    wide = len(spec) > WIDE_COLUMNS
    env = "table*" if wide else "table"
    lines = [r"% needs \usepackage{booktabs}" + (r" and \usepackage{graphicx}" if wide else ""),
             rf"\begin{{{env}}}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines += [rf"\label{{{label}}}", *([r"\resizebox{\textwidth}{!}{%"] if wide else []),
              rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
              " & ".join(top) + r" \\", " ".join(rules), " & ".join(head) + r" \\", r"\midrule"]
    for meth in model.methods:
        cells = [latex_escape(meth), *(latex_escape(x) for x in model.info[meth])]
        for d, cols in groups:
            for m in cols:
                row = model.cells.get((meth, d, m))
                if row is None:
                    cells.append("--")
                    continue
                text = format_value(row)[0].replace("–", "--")
                rank = model.ranks.get(row.key)
                cells.append(rf"\textbf{{{text}}}" if rank == 1 else rf"\underline{{{text}}}" if rank == 2 else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}" + ("}" if wide else ""), rf"\end{{{env}}}"]
    return "\n".join(lines) + "\n"


def format_p(p: float | None) -> str:
    """'<0.001', '0.034', or '' when not computed."""
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def pvalue_rows(stats: BenchmarkStats) -> list[PairedTest]:
    """The paired tests of `stats` in benchmark order."""
    return list(stats.tests.values())


def pvalues_to_csv(tests: Sequence[PairedTest]) -> str:
    """CSV text with `PVALUE_COLUMNS` (p_wilcoxon empty for curve metrics)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PVALUE_COLUMNS)
    for t in tests:
        w.writerow([t.reference, t.method, t.dataset, t.metric, t.n,
                    _num(t.difference), _num(t.p_bootstrap), _num(t.p_wilcoxon)])
    return buf.getvalue()


def pvalue_layout(tests: Sequence[PairedTest]) -> tuple[list[str], list[tuple[str, str]], dict]:
    """(methods, (dataset, metric) rows, {(method, dataset, metric): test}): one row per dataset and metric,
    two narrow columns (difference, p-values) per compared method."""
    methods = _ordered([t.method for t in tests])
    keys = _ordered([(t.dataset, t.metric) for t in tests])
    return methods, keys, {(t.method, t.dataset, t.metric): t for t in tests}


def pvalue_cells(t: PairedTest | None, alpha: float = 0.05) -> tuple[str, str, bool]:
    """(difference '+0.012', p-values '0.034 / 0.041', significant) of one test; dashes when missing."""
    if t is None:
        return "–", "–", False
    significant = t.p_bootstrap < alpha and (t.p_wilcoxon is None or t.p_wilcoxon < alpha)
    return f"{t.difference:+.3f}", f"{format_p(t.p_bootstrap)} / {format_p(t.p_wilcoxon) or '–'}", significant


def render_pvalues_markdown(tests: Sequence[PairedTest], alpha: float = 0.05) -> str:
    """(dataset, metric) rows x per method: difference | p bootstrap / p Wilcoxon; significant ones in bold."""
    if not tests:
        return ""
    ref = tests[0].reference
    methods, keys, by_key = pvalue_layout(tests)
    head = ["Dataset", "Metric"]
    for meth in methods:
        head += [f"{_md_escape(meth)} Δ", f"{_md_escape(meth)} p"]
    lines = [f"Paired tests against **{_md_escape(ref)}**: Δ = method − {_md_escape(ref)}; p = two-sided "
             f"p-values (paired bootstrap / Wilcoxon signed-rank); bold: p < {alpha} in both (or in the bootstrap "
             "where Wilcoxon does not apply).", "",
             "| " + " | ".join(head) + " |", "|:---|:---|" + "|".join(["---:"] * (2 * len(methods))) + "|"]
    for d, m in keys:
        cells = [_md_escape(d), f"{SHORT_NAMES.get(m, m)} {arrow(m)}"]
        for meth in methods:
            diff, p, significant = pvalue_cells(by_key.get((meth, d, m)), alpha)
            cells += [f"**{diff}**", f"**{p}**"] if significant else [diff, p]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_summary(rows: Sequence[Row], method_info: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Aligned plain text for the terminal, one block per dataset (as `sam2sod score` prints): method, info
    columns, then each metric to 3 decimals; best of a column marked with '*'."""
    model = table_model(rows, method_info)
    blocks = []
    for d in model.datasets:
        cols = model.columns(d)
        head = ["method", *model.info_titles, *(f"{SHORT_NAMES.get(m, m)} {arrow(m)}" for m in cols)]
        body = []
        for meth in model.methods:
            cells = [meth, *model.info[meth]]
            for m in cols:
                row = model.cells.get((meth, d, m))
                text = "–" if row is None else format_value(row)[0]
                cells.append(text + ("*" if row is not None and model.ranks.get(row.key) == 1 else " "))
            body.append(cells)
        blocks.append("\n".join([f"{d}:", *_aligned(head, body)]))
    return "\n\n".join(blocks) + "\n(* best of its column; every digit in table.csv)\n"


def _aligned(head: list[str], body: list[list[str]]) -> list[str]:
    """Rows of cells as aligned lines: first column left-aligned, the others right-aligned, a rule under head."""
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    return [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body)]


def write_tables(out: str | Path, rows: Sequence[Row], stats: BenchmarkStats | None = None, *,
                 method_info: Mapping[str, Mapping[str, Any]] | None = None, caption: str | None = None,
                 ci_in_md: bool = False) -> list[Path]:
    """Write table.csv, table.md, table.tex and, with paired tests in `stats`, pvalues.csv / pvalues.md.

    Returns the paths written (atomically).
    """
    out = Path(out)
    files = {"table.csv": rows_to_csv(rows),
             "table.md": render_markdown(rows, method_info, caption, with_ci=ci_in_md),
             "table.tex": render_latex(rows, method_info, caption)}
    if stats is not None and stats.tests:
        tests = pvalue_rows(stats)
        files["pvalues.csv"] = pvalues_to_csv(tests)
        files["pvalues.md"] = render_pvalues_markdown(tests)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return [out / name for name in files]
