"""`ImageScores`: per-image values and curves of one method on one dataset (what bootstrap intervals and
paired tests resample, see `sam2sod.report.stats`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sam2sod.errors import SodError, format_names

if TYPE_CHECKING:
    from sam2sod.metrics.scores import PairScores

__all__ = ["CURVE_METRICS", "ImageScores"]

#: Curve metrics of metrics.json: name -> (curve key, reduction over thresholds).
CURVE_METRICS = {"maxFm": ("fm", "max"), "meanFm": ("fm", "mean"), "maxEm": ("em", "max"), "meanEm": ("em", "mean")}


@dataclass
class ImageScores:
    """Per-image scores of one method on one dataset.

    Attributes:
        names: image names (the file stems), one per row.
        values: metric name -> float64 (n,) per-image values; the dataset value is their mean.
        curves: curve key -> float64 (n, T) per-image curves (``fm``, ``em``, extra keys such as ``dice``).
        curve_metrics: metric name -> (curve key, "max" | "mean"): value = reduction of the mean curve.
    """

    names: list[str]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    curve_metrics: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise SodError("per-image scores need at least one image")
        if len(set(self.names)) != n:
            raise SodError("per-image scores list an image name twice")
        self.values = {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}
        self.curves = {k: np.asarray(v, dtype=np.float64) for k, v in self.curves.items()}
        for key, arr in [*self.values.items(), *self.curves.items()]:
            if arr.shape[0] != n:
                raise SodError(f"per-image scores: {key} has {arr.shape[0]} rows for {n} images")
        for name, (key, how) in self.curve_metrics.items():
            if key not in self.curves or how not in ("max", "mean"):
                raise SodError(f"curve metric {name}: no curve {key!r} or unknown reduction {how!r}")

    @property
    def metrics(self) -> list[str]:
        """Every metric these scores can give (per-image ones first)."""
        return [*self.values, *self.curve_metrics]

    def point(self, metric: str) -> float:
        """The dataset value of `metric` on all images (the value metrics.json reports)."""
        if metric in self.values:
            return float(np.mean(self.values[metric]))
        key, how = self._curve(metric)
        curve = np.mean(self.curves[key], axis=0)
        return float(curve.max() if how == "max" else curve.mean())

    def value_map(self, metric: str) -> dict[str, float]:
        """{image name: per-image value} of a per-image metric."""
        if metric not in self.values:
            raise SodError(f"{metric} is not a per-image metric here; per-image metrics: {', '.join(self.values)}")
        return dict(zip(self.names, self.values[metric].tolist(), strict=True))

    def reorder(self, names: Sequence[str]) -> ImageScores:
        """The same scores in the order of `names` (which must be exactly this image set)."""
        if list(names) == self.names:
            return self
        index = {n: i for i, n in enumerate(self.names)}
        missing = sorted(set(names) - set(index))
        extra = sorted(set(index) - set(names))
        if missing or extra or len(names) != len(self.names):
            raise SodError(f"paired comparison needs the same images: missing {format_names(missing)}; "
                           f"extra {format_names(extra)}")
        order = np.array([index[n] for n in names])
        return ImageScores(list(names), {k: v[order] for k, v in self.values.items()},
                           {k: v[order] for k, v in self.curves.items()}, dict(self.curve_metrics))

    def _curve(self, metric: str) -> tuple[str, str]:
        if metric not in self.curve_metrics:
            raise SodError(f"unknown metric {metric!r} for these scores; available: {', '.join(self.metrics)}")
        return self.curve_metrics[metric]

    @classmethod
    def from_pair_scores(cls, names: Sequence[str], scores: Sequence[PairScores],
                         extra: ImageScores | None = None) -> ImageScores:
        """From :class:`~sam2sod.metrics.PairScores` (one per image, in `names` order), plus optional extras.

        The core per-image measures get their metrics.json names; the F / E curves become (n, 256) arrays.
        `extra` (e.g. :meth:`sam2sod.metrics.extra.ExtraMetrics.image_scores`) is merged in.
        """
        values = {"Smeasure": [s.sm for s in scores], "wFmeasure": [s.wfm for s in scores],
                  "MAE": [s.mae for s in scores], "adpEm": [s.adp_em for s in scores],
                  "adpFm": [s.adp_fm for s in scores]}
        curves = {"fm": np.stack([s.fm_curve for s in scores]), "em": np.stack([s.em_curve for s in scores])}
        out = cls(list(names), values, curves, dict(CURVE_METRICS))
        return out.merged(extra) if extra is not None else out

    def merged(self, other: ImageScores) -> ImageScores:
        """These scores plus `other`'s metrics (same images, aligned by name)."""
        other = other.reorder(self.names)
        return ImageScores(self.names, {**self.values, **other.values}, {**self.curves, **other.curves},
                           {**self.curve_metrics, **other.curve_metrics})
