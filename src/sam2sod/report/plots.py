"""Paper-style curve plots (precision-recall, F- and E-measure over thresholds), written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sam2sod.atomic import atomic_open


def _save(fig: Any, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=150, bbox_inches="tight")


def plot_curves(results: Sequence[Any], out: Path) -> None:
    """Overlay all methods: `pr_curve.png` (precision vs recall), `f_curve.png` and `e_curve.png` (F / E vs threshold).

    `results` items need `.name` and `.curves` with `precision`, `recall`, `fm_curve`, `em_curve` arrays of 256,
    ordered as PySODMetrics orders them (index 0 = highest threshold).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for r in results:
        ax.plot(r.curves["recall"], r.curves["precision"], label=r.name, linewidth=1.5)
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    _save(fig, Path(out) / "pr_curve.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for r in results:
        fm = np.asarray(r.curves["fm_curve"])
        thresholds = np.linspace(1, 0, len(fm)) * 255
        ax.plot(thresholds, fm, label=f"{r.name} (max {fm.max():.3f})", linewidth=1.5)
    ax.set(xlabel="Threshold (0-255)", ylabel="F-measure (β²=0.3)", xlim=(0, 255), ylim=(0, 1.02),
           title="F-measure over thresholds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", fontsize=8)
    _save(fig, Path(out) / "f_curve.png")
    plt.close(fig)

    from sam2sod.report.curves import save_curve_plot

    save_curve_plot("e", {r.name: r.curves for r in results}, Path(out) / "e_curve.png", dpi=150, size=(5, 4.5))
