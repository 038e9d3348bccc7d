"""Print-ready curve plots with every method overlaid: precision-recall, F-measure and E-measure.

Curves are those `sam2sod score` stores per method (``MethodResult.curves``): ``precision``, ``recall``,
``fm_curve``, ``em_curve``, arrays of 256 with threshold 255 first (PySODMetrics' ordering). Each
method gets its own colour *and* line style *and* marker, so lines stay apart in grey-scale print;
figures are single-column sized (3.5 in) at 300 dpi by default. Matplotlib's object API is used (no
pyplot state), so plots can be drawn from any thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sam2sod.atomic import atomic_open
from sam2sod.errors import SodError

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#7f7f7f", "#bcbd22")
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "x", "*", "P", "<", ">", "h")
#: kind -> (file suffix, curve key or None for PR, y label, title).
KINDS = {
    "pr": ("pr", None, "Precision", "Precision-recall"),
    "f": ("f", "fm_curve", "F-measure (β²=0.3)", "F-measure over thresholds"),
    "e": ("e", "em_curve", "E-measure", "E-measure over thresholds"),
}


def line_style(i: int) -> dict[str, Any]:
    """Colour, dash pattern and marker of the i-th method (distinct for the first 20)."""
    return {"color": _COLOURS[i % len(_COLOURS)], "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            "marker": _MARKERS[i % len(_MARKERS)], "markevery": 0.1, "markersize": 3.5, "linewidth": 1.3}


def safe_name(name: str) -> str:
    """A file-name-safe version of a dataset name ('DUTS-TE', 'my_set' stay; '/' and spaces become '_')."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "dataset"


def _curve(curves: Mapping[str, Any], key: str, method: str) -> np.ndarray:
    if key not in curves:
        raise SodError(f"method {method!r} has no {key} curve (expected keys precision, recall, fm_curve, em_curve)")
    return np.asarray(curves[key], dtype=np.float64)


def draw_curves(ax: Any, kind: str, curves: Mapping[str, Mapping[str, Any]], title: str | None = None) -> None:
    """Draw one kind of curve ("pr", "f", "e") for every method of ``{method: curves}`` on `ax`."""
    if kind not in KINDS:
        raise SodError(f"unknown curve kind {kind!r}; choices: {', '.join(KINDS)}")
    _, key, ylabel, default_title = KINDS[kind]
    for i, (method, c) in enumerate(curves.items()):
        style = line_style(i)
        if key is None:
            ax.plot(_curve(c, "recall", method), _curve(c, "precision", method), label=method, **style)
        else:
            y = _curve(c, key, method)
            x = np.linspace(255, 0, len(y))
            ax.plot(x, y, label=f"{method} (max {y.max():.3f})", **style)
    if key is None:
        ax.set(xlabel="Recall", xlim=(0, 1))
    else:
        ax.set(xlabel="Threshold", xlim=(0, 255))
    ax.set(ylabel=ylabel, ylim=(0, 1.02), title=title or default_title)
    ax.grid(alpha=0.3, linewidth=0.5)


def _legend_outside(fig: Any, ax: Any) -> None:
    """The methods' legend under the axes (never over a curve), up to three entries per line."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, max(1, len(labels))), fontsize=6.5,
               frameon=False)


def save_curve_plot(kind: str, curves: Mapping[str, Mapping[str, Any]], path: str | Path, *,
                    title: str | None = None, dpi: int = 300, size: tuple[float, float] = (3.5, 3.2),
                    reuse: str | Path | None = None) -> Path:
    """One curve figure of all methods (legend under the axes), written atomically as PNG to `path`.

    A PNG already at `path` drawn from the same curves, names and settings (its ``sam2sod-curves`` text
    chunk holds their hash) is kept as it is, and one at `reuse` (e.g. the same file of the previous output
    set) is copied: a rerun on cached predictions draws nothing again.
    """
    from matplotlib.figure import Figure

    if not curves:
        raise SodError("no methods to plot")
    path = Path(path)
    digest = _digest(kind, curves, title, dpi, size)
    if _drawn_from(path) == digest:
        return path
    if reuse is not None and _drawn_from(Path(reuse)) == digest:
        with atomic_open(path, "wb") as f:
            f.write(Path(reuse).read_bytes())
        return path
    n_lines = -(-len(curves) // 3)  # legend lines under the axes
    with _small_fonts():
        fig = Figure(figsize=(size[0], size[1] + 0.16 * n_lines), layout="constrained")
        ax = fig.add_subplot()
        draw_curves(ax, kind, curves, title)
        _legend_outside(fig, ax)
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi, metadata={"sam2sod-curves": digest})
    return path


def _digest(kind: str, curves: Mapping[str, Mapping[str, Any]], *settings: Any) -> str:
    import hashlib

    h = hashlib.sha256(repr((kind, settings)).encode())
    for method, c in curves.items():
        h.update(method.encode())
        for key in ("precision", "recall", "fm_curve", "em_curve"):
            if key in c:
                h.update(np.ascontiguousarray(np.asarray(c[key], dtype=np.float64)).tobytes())
    return h.hexdigest()


def _drawn_from(path: Path) -> str | None:
    """The ``sam2sod-curves`` hash of an existing PNG, or None."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.text.get("sam2sod-curves") if hasattr(im, "text") else None
    except (OSError, ValueError):
        return None


def _small_fonts() -> Any:
    import matplotlib

    return matplotlib.rc_context({"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8,
                                  "xtick.labelsize": 7, "ytick.labelsize": 7})


def write_dataset_curves(curves: Mapping[str, Mapping[str, Any]], dataset: str, out: str | Path, *,
                         dpi: int = 300) -> list[Path]:
    """``OUT/curves/DATASET_pr.png``, ``DATASET_f.png`` and ``DATASET_e.png``, all methods overlaid.

    `curves`: ``{method: {"precision", "recall", "fm_curve", "em_curve": array of 256}}``.
    """
    folder = Path(out) / "curves"
    stem = safe_name(dataset)
    return [save_curve_plot(kind, curves, folder / f"{stem}_{suffix}.png", title=f"{dataset}: {title}", dpi=dpi)
            for kind, (suffix, _, _, title) in KINDS.items()]
