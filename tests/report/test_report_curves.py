"""Overlaid PR / F / E curve plots."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2sod.errors import SodError
from sam2sod.report.curves import line_style, safe_name, save_curve_plot, write_dataset_curves


def fake_curves(shift: float) -> dict[str, np.ndarray]:
    t = np.linspace(1, 0, 256)
    return {"precision": np.clip(0.9 - 0.4 * (1 - t) + shift, 0, 1), "recall": 1 - t ** 2,
            "fm_curve": np.clip(0.5 + 0.3 * np.sin(np.pi * t) + shift, 0, 1),
            "em_curve": np.clip(0.6 + 0.3 * np.sin(np.pi * t) + shift, 0, 1)}


def test_dataset_curves_are_written_at_print_resolution(tmp_path):
    curves = {"ours": fake_curves(0.05), "baseline": fake_curves(0.0), "prior": fake_curves(-0.1)}
    paths = write_dataset_curves(curves, "DUTS-TE/test", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "curves/DUTS-TE_test_pr.png", "curves/DUTS-TE_test_f.png", "curves/DUTS-TE_test_e.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.size[0] >= 1000 and im.size[1] >= 900  # 3.5 x 3.2 in at 300 dpi
            assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 10  # something was drawn
    assert not list((tmp_path / "curves").glob(".*.tmp"))


def test_styles_are_distinct_for_many_methods():
    combos = {(s["color"], s["linestyle"], s["marker"]) for s in map(line_style, range(20))}
    assert len(combos) == 20 and len({line_style(i)["linestyle"] for i in range(4)}) == 4


def test_errors_and_names(tmp_path):
    assert safe_name("a b/c") == "a_b_c" and safe_name("ECSSD") == "ECSSD"
    with pytest.raises(SodError, match="no em_curve"):
        save_curve_plot("e", {"m": {"fm_curve": np.zeros(256)}}, tmp_path / "x.png")
    with pytest.raises(SodError, match="unknown curve kind"):
        save_curve_plot("roc", {"m": fake_curves(0)}, tmp_path / "x.png")
    with pytest.raises(SodError, match="no methods"):
        save_curve_plot("pr", {}, tmp_path / "x.png")


def test_legend_sits_under_the_axes_and_a_redraw_is_skipped(tmp_path, monkeypatch):
    """The legend is outside the plot area (below it); the same curves are not drawn twice."""
    import numpy as np
    from matplotlib.figure import Figure

    from sam2sod.report.curves import save_curve_plot

    c = {"precision": np.linspace(1, 0.5, 256), "recall": np.linspace(0, 1, 256),
         "fm_curve": np.linspace(0.2, 0.8, 256), "em_curve": np.linspace(0.3, 0.9, 256)}
    seen = {}
    real_savefig = Figure.savefig

    def spy(fig, *a, **k):
        fig.canvas.draw()
        ax, leg = fig.axes[0], fig.legends[0]
        seen["axes"], seen["legend"] = ax.get_window_extent(), leg.get_window_extent()
        return real_savefig(fig, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    path = save_curve_plot("f", {f"m{i}": c for i in range(4)}, tmp_path / "f.png", dpi=60)
    assert seen["legend"].y1 <= seen["axes"].y0 + 1, "legend overlaps the axes"
    mtime = path.stat().st_mtime_ns
    seen.clear()
    save_curve_plot("f", {f"m{i}": c for i in range(4)}, path, dpi=60)
    assert seen == {} and path.stat().st_mtime_ns == mtime  # same curves: not drawn again
    save_curve_plot("f", {"m0": c}, path, dpi=60)
    assert seen  # other curves: drawn
