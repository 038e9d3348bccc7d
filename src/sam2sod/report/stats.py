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

import numpy as np

from sam2sod.errors import SodError
from sam2sod.metrics.image_scores import CURVE_METRICS, ImageScores  # noqa: F401 - re-exported

#: per_image.csv column -> metric name of metrics.json.
PER_IMAGE_COLUMNS = {"S": "Smeasure", "MAE": "MAE", "wF": "wFmeasure", "adpF": "adpFm", "E": "adpEm"}
#: Resamples drawn per chunk (bounds memory at ``_CHUNK * n_images`` counts).
_CHUNK = 256



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
