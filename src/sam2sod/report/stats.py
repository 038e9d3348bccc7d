"""Bootstrap confidence intervals and paired significance tests over the images of a dataset.

Everything is resampled at the image level (the unit a benchmark samples). Per-image measures (S, MAE,
wF, adaptive E / F, and any per-image extra measure) are dataset means, so their resampled values are
``counts @ values / n``; curve measures (max / mean F and E) re-aggregate the resampled images' curves
(``counts @ curves / n``, then max / mean over thresholds), exactly as :func:`sam2sod.metrics.aggregate`
does on the full set. One seeded ``numpy.random.Generator`` draws the resamples, so a seed fixes every
interval and p-value; the paired tests draw the same images for both methods.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sam2sod.errors import SodError, format_names

if TYPE_CHECKING:
    from sam2sod.metrics import PairScores

#: per_image.csv column -> metric name of metrics.json.
PER_IMAGE_COLUMNS = {"S": "Smeasure", "MAE": "MAE", "wF": "wFmeasure", "adpF": "adpFm", "E": "adpEm"}
#: Curve metrics of metrics.json: name -> (curve key, reduction over thresholds).
CURVE_METRICS = {"maxFm": ("fm", "max"), "meanFm": ("fm", "mean"), "maxEm": ("em", "max"), "meanEm": ("em", "mean")}
#: Resamples drawn per chunk (bounds memory at ``_CHUNK * n_images`` counts).
_CHUNK = 256


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


def read_per_image_csv(path: str | Path) -> dict[str, ImageScores]:
    """`per_image.csv` of `sam2sod score` -> {method: ImageScores} (per-image metrics only, no curves).

    Columns other than method / name that hold numbers are kept under their own names, except the known
    ones, renamed as in metrics.json (``S`` -> ``Smeasure``, ``E`` -> ``adpEm``, ...).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise SodError(f"cannot read {path}: {err.strerror or err}") from None
    if not rows or not {"method", "name"} <= set(rows[0]):
        raise SodError(f"{path} is not a per_image.csv (needs 'method' and 'name' columns and rows)")
    columns = [c for c in rows[0] if c not in ("method", "name")]
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(row["method"], []).append(row)
    out = {}
    for method, group in grouped.items():
        try:
            values = {PER_IMAGE_COLUMNS.get(c, c): [float(r[c]) for r in group] for c in columns}
        except (TypeError, ValueError):
            raise SodError(f"{path}: a value of method {method!r} is not a number") from None
        out[method] = ImageScores([r["name"] for r in group], values)
    return out


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def __contains__(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of `method` against `reference` on one metric (difference = method - reference).

    `p_bootstrap`: two-sided paired-bootstrap p-value of the difference of the dataset values.
    `p_wilcoxon`: Wilcoxon signed-rank p-value on the per-image differences (None for curve metrics,
    which have no per-image value).
    """

    reference: str
    method: str
    metric: str
    n: int
    difference: float
    p_bootstrap: float
    p_wilcoxon: float | None
    dataset: str = ""


def _resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Chunks of (k, n) float64 counts: how often each image is drawn in each resample."""
    done = 0
    while done < n_resamples:
        k = min(_CHUNK, n_resamples - done)
        idx = rng.integers(0, n, size=(k, n))
        flat = (idx + (np.arange(k) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)
        done += k


def _statistics(scores: ImageScores, metrics: Sequence[str], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Resampled dataset values of each metric, one per row of `counts` (each curve averaged once)."""
    n = len(scores.names)
    mean_curves: dict[str, np.ndarray] = {}
    out = {}
    for m in metrics:
        if m in scores.values:
            out[m] = counts @ scores.values[m] / n
            continue
        key, how = scores._curve(m)
        if key not in mean_curves:
            mean_curves[key] = counts @ scores.curves[key] / n
        out[m] = mean_curves[key].max(axis=1) if how == "max" else mean_curves[key].mean(axis=1)
    return out


def _check_resampling(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise SodError(f"the number of bootstrap resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise SodError(f"the confidence level must lie strictly between 0 and 1, got {confidence}")


def bootstrap_cis(scores: ImageScores, metrics: Sequence[str] | None = None, *, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    """Percentile bootstrap intervals of each metric's dataset value, resampling images with replacement.

    All metrics share the same resamples. Returns {metric: Interval(value on all images, low, high)}.
    """
    _check_resampling(n_resamples, confidence)
    metrics = list(scores.metrics if metrics is None else metrics)
    for m in metrics:
        if m not in scores.values:
            scores._curve(m)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for counts in _resample_counts(len(scores.names), n_resamples, rng):
        for m, values in _statistics(scores, metrics, counts).items():
            draws[m].append(values)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for m in metrics:
        low, high = np.percentile(np.concatenate(draws[m]), [tail, 100 - tail])
        out[m] = Interval(scores.point(m), float(low), float(high))
    return out


def _wilcoxon(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when every difference is zero."""
    from scipy.stats import wilcoxon

    if not np.any(diff != 0):
        return 1.0
    p = float(wilcoxon(diff).pvalue)
    return 1.0 if math.isnan(p) else p


def paired_tests(reference: ImageScores, other: ImageScores, metrics: Sequence[str] | None = None, *,
                 names: tuple[str, str] = ("reference", "method"), n_resamples: int = 1000,
                 seed: int = 0) -> dict[str, PairedTest]:
    """Paired tests of `other` against `reference` on the same images (aligned by name).

    Bootstrap: the images are resampled jointly; the null distribution of the difference T of the dataset
    values is the resampled T* - T, and p = (1 + #{|T* - T| >= |T|}) / (1 + n_resamples) (so identical
    methods give p = 1). Wilcoxon: scipy's signed-rank test on per-image differences (per-image metrics).
    """
    _check_resampling(n_resamples, 0.5)
    other = other.reorder(reference.names)
    if metrics is None:
        metrics = [m for m in reference.metrics if m in other.metrics]
    n = len(reference.names)
    observed = {m: other.point(m) - reference.point(m) for m in metrics}
    extreme = dict.fromkeys(metrics, 0)
    rng = np.random.default_rng(seed)
    for counts in _resample_counts(n, n_resamples, rng):
        ours, theirs = _statistics(other, metrics, counts), _statistics(reference, metrics, counts)
        for m in metrics:
            t = ours[m] - theirs[m]
            d = observed[m]
            extreme[m] += int(np.count_nonzero(np.abs(t - d) >= abs(d) - 1e-12 * max(1.0, abs(d))))
    out = {}
    for m in metrics:
        p_w = _wilcoxon(other.values[m] - reference.values[m]) if m in reference.values else None
        p_b = min(1.0, (1 + extreme[m]) / (1 + n_resamples))
        out[m] = PairedTest(names[0], names[1], m, n, observed[m], p_b, p_w)
    return out


@dataclass
class BenchmarkStats:
    """Intervals and tests of a benchmark: keys are (method, dataset, metric)."""

    reference: str
    n_resamples: int
    confidence: float
    seed: int
    intervals: dict[tuple[str, str, str], Interval] = field(default_factory=dict)
    tests: dict[tuple[str, str, str], PairedTest] = field(default_factory=dict)


def benchmark_statistics(scores: Mapping[str, Mapping[str, ImageScores]], metrics: Sequence[str] | None = None,
                         *, reference: str | None = None, n_resamples: int = 1000, confidence: float = 0.95,
                         seed: int = 0) -> BenchmarkStats:
    """CIs for every (method, dataset, metric) and paired tests of `reference` (default: the first method).

    Args:
        scores: {method: {dataset: ImageScores}}.
        metrics: metric names (default: all each ImageScores has); names a method lacks are skipped.
        reference: the method the others are tested against.
        n_resamples, confidence, seed: bootstrap settings (one seed for the whole benchmark).
    """
    if not scores:
        raise SodError("no methods to compute statistics for")
    methods = list(scores)
    reference = methods[0] if reference is None else reference
    if reference not in scores:
        raise SodError(f"reference method {reference!r} is not among the methods: {', '.join(methods)}")
    _check_resampling(n_resamples, confidence)
    out = BenchmarkStats(reference, n_resamples, confidence, seed)
    for method in methods:
        for dataset, s in scores[method].items():
            wanted = [m for m in (metrics or s.metrics) if m in s.metrics]
            for m, iv in bootstrap_cis(s, wanted, n_resamples=n_resamples, confidence=confidence,
                                       seed=seed).items():
                out.intervals[(method, dataset, m)] = iv
            ref = scores[reference].get(dataset)
            if method == reference or ref is None:
                continue
            shared = [m for m in wanted if m in ref.metrics]
            for m, t in paired_tests(ref, s, shared, names=(reference, method), n_resamples=n_resamples,
                                     seed=seed).items():
                out.tests[(method, dataset, m)] = replace(t, dataset=dataset)
    return out
