"""Paper-style curve plots (precision-recall, F- and E-measure over thresholds), written atomically."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

#: file name of each curve kind in a `sam2sod score` output folder
FILES = {"pr": "pr_curve.png", "f": "f_curve.png", "e": "e_curve.png"}
_PREVIOUS: ContextVar[Path | None] = ContextVar("sam2sod_previous_plots", default=None)


@contextmanager
def reuse_plots_from(folder: str | Path) -> Iterator[None]:
    """Inside the block, `plot_curves` copies a plot from `folder` (the previous output set) instead of
    drawing it again when that file was drawn from the same curves (see `save_curve_plot`)."""
    token = _PREVIOUS.set(Path(folder))
    try:
        yield
    finally:
        _PREVIOUS.reset(token)


def plot_curves(results: Sequence[Any], out: Path) -> None:
    """Overlay all methods: `pr_curve.png` (precision vs recall), `f_curve.png` and `e_curve.png` (F / E vs
    threshold), each with its legend under the axes (`sam2sod.report.curves.save_curve_plot`).

    `results` items need `.name` and `.curves` with `precision`, `recall`, `fm_curve`, `em_curve` arrays of 256,
    ordered as PySODMetrics orders them (index 0 = highest threshold).
    """
    from sam2sod.report.curves import save_curve_plot

    curves = {r.name: r.curves for r in results}
    previous = _PREVIOUS.get()
    for kind, name in FILES.items():
        save_curve_plot(kind, curves, Path(out) / name, dpi=150, size=(5, 4.5),
                        reuse=None if previous is None else previous / name)
