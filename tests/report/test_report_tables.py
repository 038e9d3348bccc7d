"""table.csv / table.md / table.tex and the p-value tables."""

from __future__ import annotations

import csv
import re

import pytest

from sam2sod.report.stats import BenchmarkStats, Interval, PairedTest
from sam2sod.report.tables import (
    CSV_COLUMNS,
    build_rows,
    read_table_csv,
    render_latex,
    render_markdown,
    render_pvalues_markdown,
    write_tables,
)

METRICS = {
    "ECSSD": {"A": {"Smeasure": 0.912, "MAE": 0.041, "maxFm": 0.90, "note": "RANDOM INIT"},
              "B_net": {"Smeasure": 0.850, "MAE": 0.030, "maxFm": 0.93},
              "C": {"Smeasure": 0.880, "MAE": 0.060, "maxFm": 0.91}},
    "DUTS": {"A": {"Smeasure": 0.700, "MAE": 0.090, "maxFm": 0.80},
             "B_net": {"Smeasure": 0.800, "MAE": 0.070, "maxFm": 0.82},
             "C": {"Smeasure": 0.750, "MAE": 0.050, "maxFm": 0.70}},
}
INFO = {"A": {"params": 4_270_000, "inference_ms": 12.34}, "B_net": {"params": "25M"}}


def stats() -> BenchmarkStats:
    s = BenchmarkStats("A", 100, 0.95, 0)
    s.intervals[("A", "ECSSD", "Smeasure")] = Interval(0.912, 0.89, 0.93)
    for meth in ("B_net", "C"):
        s.tests[(meth, "ECSSD", "Smeasure")] = PairedTest("A", meth, "Smeasure", 10, -0.05, 0.0004, 0.02, "ECSSD")
        s.tests[(meth, "ECSSD", "maxFm")] = PairedTest("A", meth, "maxFm", 10, 0.01, 0.4, None, "ECSSD")
    return s


def md_cells(md: str, method: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {method} "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_csv_round_trips(tmp_path):
    rows = build_rows(METRICS, stats())
    paths = write_tables(tmp_path, rows, stats())
    assert {p.name for p in paths} == {"table.csv", "table.md", "table.tex", "pvalues.csv", "pvalues.md"}
    with (tmp_path / "table.csv").open(newline="") as f:
        read = list(csv.DictReader(f))
    assert tuple(read[0]) == CSV_COLUMNS and len(read) == 18  # the note is not a metric
    first = read[0]
    assert (first["method"], first["dataset"], first["metric"]) == ("A", "ECSSD", "Smeasure")
    assert (float(first["ci_low"]), float(first["ci_high"]), first["p_value"]) == (0.89, 0.93, "")
    b = next(r for r in read if r["method"] == "B_net" and r["metric"] == "Smeasure" and r["dataset"] == "ECSSD")
    assert float(b["p_value"]) == 0.0004 and b["ci_low"] == ""
    assert read_table_csv(tmp_path / "table.csv") == rows
    with (tmp_path / "pvalues.csv").open(newline="") as f:
        pv = list(csv.DictReader(f))
    assert len(pv) == 4 and pv[1]["p_wilcoxon"] == "" and pv[0]["dataset"] == "ECSSD"


def test_markdown_bold_and_underline_land_right():
    md = render_markdown(build_rows(METRICS), INFO, caption="test split; RANDOM INIT")
    assert md.startswith("*test split; RANDOM INIT*")
    header = next(ln for ln in md.splitlines() if ln.startswith("| Method"))
    assert "ECSSD S ↑" in header and "ECSSD MAE ↓" in header and "Params" in header
    # columns: Method, Params, Inference ms, ECSSD S, MAE, maxF, DUTS S, MAE, maxF
    a, b, c = md_cells(md, "A"), md_cells(md, "B_net"), md_cells(md, "C")
    assert a[1:3] == ["4.27M", "12"] and b[1:3] == ["25M", ""]  # ms: the digits a timing supports
    assert a[3] == "**0.912**" and c[3] == "<u>0.880</u>" and b[3] == "0.850"  # S: higher is better
    assert b[4] == "**0.030**" and a[4] == "<u>0.041</u>" and c[4] == "0.060"  # MAE: lower is better
    assert b[6] == "**0.800**" and c[6] == "<u>0.750</u>"
    assert c[7] == "**0.050**" and b[7] == "<u>0.070</u>" and a[7] == "0.090"


def test_markdown_ci_format_and_ties():
    md = render_markdown(build_rows(METRICS, stats()), with_ci=True)
    assert md_cells(md, "A")[1] == "**0.912** [0.89, 0.93]"
    tied = {"D": {"X": {"Smeasure": 0.5001}, "Y": {"Smeasure": 0.4999}, "Z": {"Smeasure": 0.1}}}
    md = render_markdown(build_rows(tied))
    assert md_cells(md, "X")[1] == "**0.500**" == md_cells(md, "Y")[1] and md_cells(md, "Z")[1] == "<u>0.100</u>"


def _braces_balanced(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "{}" and i and text[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_latex_structure():
    tex = render_latex(build_rows(METRICS), INFO, caption="50% budget & random_init")
    assert _braces_balanced(tex)
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{table*}"):
        assert tex.count(cmd) == 1, cmd
    spec = re.search(r"\\begin\{tabular\}\{([a-z]+)\}", tex).group(1)
    assert spec == "lrr" + "ccc" * 2
    body = tex.split(r"\toprule")[1].split(r"\bottomrule")[0]
    rows = [ln for ln in body.splitlines() if ln.endswith(r"\\")]
    assert len(rows) == 2 + 3
    for ln in rows[1:]:
        assert ln.count(" & ") == len(spec) - 1, ln
    spans = [int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", rows[0])]
    plain_cells = rows[0].count(" & ") + 1 - len(spans)
    assert spans == [3, 3] and plain_cells + sum(spans) == len(spec)
    assert r"\cmidrule(lr){4-6} \cmidrule(lr){7-9}" in tex
    assert r"\caption{50\% budget \& random\_init}" in tex and r"B\_net" in tex
    assert r"\textbf{0.912}" in tex and r"\underline{0.041}" in tex and r"\textbf{0.030}" in tex
    assert r"MAE $\downarrow$" in tex and r"$S_\alpha$ $\uparrow$" in tex


def test_latex_without_info_columns():
    tex = render_latex(build_rows({"D": {"A": {"MAE": 0.1}, "B": {"MAE": 0.2}}}))
    assert re.search(r"\\begin\{tabular\}\{lc\}", tex) and r"\cmidrule(lr){2-2}" in tex
    assert r"\begin{table}[t]" in tex and r"\end{table}" in tex and r"\resizebox" not in tex  # fits a column


def test_pvalue_markdown_one_row_per_dataset_and_metric():
    md = render_pvalues_markdown(list(stats().tests.values()))
    assert "against **A**" in md
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert lines[0] == "| Dataset | Metric | B_net Δ | B_net p | C Δ | C p |"
    assert md_cells(md, "ECSSD") == ["ECSSD", "S ↑", "**-0.050**", "**<0.001 / 0.020**", "**-0.050**",
                                     "**<0.001 / 0.020**"]
    assert lines[3].split(" | ")[2:4] == ["+0.010", "0.400 / –"] and len(lines) == 4
    assert max(len(c) for ln in lines[2:] for c in ln.split(" | ")) <= 20  # narrow cells: no wrapping


def test_empty_rows_are_a_user_error():
    from sam2sod.errors import SodError

    with pytest.raises(SodError, match="no results"):
        render_markdown([])


def _wide_rows():
    metrics = ("Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm")
    values = {d: {m: {k: 0.5 + 0.01 * i for k in metrics} for i, m in enumerate(("ours", "u2net", "f3net"))}
              for d in ("ECSSD", "DUTS-TE")}
    return build_rows(values)


def test_latex_wide_table_spans_both_columns_and_fits():
    """A 21-column table (2 info + 2 x 9 metrics) is a table* scaled to the text width."""
    info = {m: {"params": 4e6, "inference_ms": 31.0, "inference_ms_spread": 1.5} for m in ("ours", "u2net", "f3net")}
    tex = render_latex(_wide_rows(), info, caption="wide")
    spec = re.search(r"\\begin\{tabular\}\{([a-z]+)\}", tex).group(1)
    assert len(spec) == 21 and _braces_balanced(tex)
    assert tex.count(r"\begin{table*}[t]") == 1 and tex.count(r"\end{table*}") == 1
    assert r"\resizebox{\textwidth}{!}{%" in tex and r"\end{tabular}}" in tex and "31 ± 1.5" in tex


def test_latex_wide_table_compiles_in_a_two_column_paper(tmp_path):
    """With a TeX engine installed (texlive-latex-base + -recommended): the table compiles, and the
    log reports no overfull box."""
    import shutil
    import subprocess

    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    tex = render_latex(_wide_rows(), {"ours": {"params": 4e6, "inference_ms": 31.0}}, caption="Results & more")
    doc = ("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
           "\\begin{document}\n" + tex + "\n\\end{document}\n")
    (tmp_path / "paper.tex").write_text(doc)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 1000
    assert "Overfull \\hbox" not in (tmp_path / "paper.log").read_text(errors="replace")


def test_terminal_summary_is_aligned():
    from sam2sod.report.tables import render_summary

    text = render_summary(_wide_rows(), {"ours": {"params": 4e6, "inference_ms": 986.4, "inference_ms_spread": 12}})
    blocks = text.split("\n\n")
    assert blocks[0].splitlines()[0] == "ECSSD:" and blocks[1].splitlines()[0] == "DUTS-TE:"
    lines = blocks[0].splitlines()[1:]
    assert len({len(ln.rstrip()) for ln in lines[:2]}) == 1  # header and rule line up
    assert lines[0].split()[:4] == ["method", "Params", "Inference", "ms"] and "|" not in text
    assert "986 ± 12" in lines[2] and "0.520*" in lines[4]  # f3net: best S
