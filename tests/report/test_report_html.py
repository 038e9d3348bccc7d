"""report.html is self-contained and lists every method and dataset."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sam2sod.errors import SodError
from sam2sod.report.curves import write_dataset_curves
from sam2sod.report.html import default_figures, results_table_html, write_html_report
from sam2sod.report.stats import BenchmarkStats, Interval, PairedTest
from sam2sod.report.tables import build_rows

METRICS = {"ECSSD": {"ours": {"Smeasure": 0.9, "MAE": 0.05}, "u2net": {"Smeasure": 0.8, "MAE": 0.04}},
           "DUT-OMRON": {"ours": {"Smeasure": 0.7, "MAE": 0.1}, "u2net": {"Smeasure": 0.75, "MAE": 0.2}}}


def curves(shift: float) -> dict[str, np.ndarray]:
    t = np.linspace(1, 0, 256)
    return {"precision": 0.9 - 0.3 * (1 - t) + shift, "recall": 1 - t, "fm_curve": 0.6 + 0.2 * t + shift,
            "em_curve": 0.7 + 0.2 * t + shift}


def test_report_is_self_contained(tmp_path):
    for ds in METRICS:
        write_dataset_curves({"ours": curves(0.05), "u2net": curves(0)}, ds, tmp_path, dpi=40)
    (tmp_path / "qualitative.png").write_bytes((tmp_path / "curves" / "ECSSD_pr.png").read_bytes())
    stats = BenchmarkStats("ours", 200, 0.95, 0)
    stats.intervals[("ours", "ECSSD", "Smeasure")] = Interval(0.9, 0.88, 0.92)
    stats.tests[("u2net", "ECSSD", "Smeasure")] = PairedTest("ours", "u2net", "Smeasure", 9, -0.1, 0.01, 0.02,
                                                            "ECSSD")
    figures = default_figures(tmp_path)
    assert [t for t, _ in figures][:3] == ["DUT-OMRON: precision-recall", "DUT-OMRON: F-measure curve",
                                           "DUT-OMRON: E-measure curve"]
    assert len(figures) == 7 and figures[-1][0] == "qualitative comparison"
    path = write_html_report(tmp_path / "report.html", build_rows(METRICS, stats), stats, figures=figures,
                             caption="test split <RANDOM INIT>", method_info={"ours": {"params": 1_500_000}})
    page = path.read_text(encoding="utf-8")
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page).lower()  # base64 may hold it
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 7 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in page and "url(" not in page and "<script" not in page
    for name in ("ours", "u2net", "ECSSD", "DUT-OMRON"):
        assert name in page
    assert "&lt;RANDOM INIT&gt;" in page and "1.50M" in page
    assert "<b>0.900</b> [0.88, 0.92]" in page  # the CI table
    assert "<td><b>-0.100</b></td><td><b>0.010 / 0.020</b></td>" in page and "<th>Δ</th>" in page  # the p-value table


def test_table_marks_and_groups():
    table = results_table_html(build_rows(METRICS))
    assert '<th colspan="2">ECSSD</th>' in table and "MAE ↓" in table
    assert "<td><b>0.040</b></td>" in table and "<td><u>0.050</u></td>" in table  # ECSSD MAE: lower wins
    assert "<td><b>0.750</b></td>" in table


def test_missing_or_unknown_figures_are_user_errors(tmp_path):
    rows = build_rows(METRICS)
    with pytest.raises(SodError, match="cannot read figure"):
        write_html_report(tmp_path / "r.html", rows, figures=[("x", tmp_path / "nope.png")])
    (tmp_path / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(SodError, match="only"):
        write_html_report(tmp_path / "r.html", rows, figures=[("x", tmp_path / "a.gif")])


def test_curves_sit_in_a_grid_and_each_grid_has_its_caption(tmp_path):
    """Curves three to a row (a CSS grid, not one 1050 px figure per row); qualitative grids per dataset."""
    import numpy as np

    from sam2sod.report.curves import write_dataset_curves

    c = {"precision": np.linspace(1, 0.5, 256), "recall": np.linspace(0, 1, 256),
         "fm_curve": np.linspace(0.2, 0.8, 256), "em_curve": np.linspace(0.3, 0.9, 256)}
    for ds in ("A", "B"):
        write_dataset_curves({"ours": c, "other": c}, ds, tmp_path, dpi=40)
        (tmp_path / f"qualitative_{ds}.png").write_bytes((tmp_path / "curves" / f"{ds}_pr.png").read_bytes())
    figures = default_figures(tmp_path)
    assert [t for t, _ in figures][-2:] == ["A: qualitative comparison", "B: qualitative comparison"]
    page = write_html_report(tmp_path / "report.html", build_rows(METRICS), figures=figures,
                             figure_captions={"qualitative_A.png": "A (3 images): rows ..."}).read_text()
    grid = page.split('<div class="curves">')[1].split("</div>")[0]
    assert grid.count("<figure>") == 6 and "grid-template-columns: repeat(3" in page
    assert "<h2>A: qualitative comparison</h2>" in page and "<figcaption>A (3 images): rows ...</figcaption>" in page
    assert "<h2>B: qualitative comparison</h2>" in page
