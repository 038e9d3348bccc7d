"""Paper-style curve plots (precision-recall, F- and E-measure over thresholds), written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: file name of each curve kind in a `sam2sod score` output folder
FILES = {"pr": "pr_curve.png", "f": "f_curve.png", "e": "e_curve.png"}


def plot_curves(results: Sequence[Any], out: Path) -> None:
    """Overlay all methods: `pr_curve.png` (precision vs recall), `f_curve.png` and `e_curve.png` (F / E vs
    threshold), each with its legend under the axes (`sam2sod.report.curves.save_curve_plot`).

    `results` items need `.name` and `.curves` with `precision`, `recall`, `fm_curve`, `em_curve` arrays of 256,
    ordered as PySODMetrics orders them (index 0 = highest threshold).
    """
    from sam2sod.report.curves import save_curve_plot

    curves = {r.name: r.curves for r in results}
    for kind, name in FILES.items():
        save_curve_plot(kind, curves, Path(out) / name, dpi=150, size=(5, 4.5))
