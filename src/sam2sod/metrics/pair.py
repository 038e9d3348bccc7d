"""Input checks and the per-image preparation that all measures share.

A prediction is reduced to *levels*: the distinct normalised values it can take, plus an integer
*code* per pixel (``pred == levels[codes]`` exactly). For uint8 input the codes are the pixel values
themselves (256 levels); float input goes through ``np.unique``. Every measure except the weighted
F-measure is then computed from one histogram of (quadrant, gt, level) counts instead of full-image
passes.

Memory: nothing of the image's size is kept beyond the inputs and the boolean mask; full-image work
runs in blocks of about ``BLOCK_PIXELS`` pixels (row bands), so a pair's temporaries stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property

import numpy as np

from sam2sod.errors import SodError

#: MATLAB's ``eps``, the epsilon PySODMetrics uses in every denominator.
EPS = float(np.spacing(1))
#: Number of binarisation thresholds of the F / E curves (0..255).
N_THRESHOLDS = 256
#: Pixels per block (row band) of the blocked full-image passes; read at call time (tests shrink it).
BLOCK_PIXELS = 1 << 18
#: A level this close to the adaptive threshold computed from the histogram is decided on the exact
#: full-image mean instead (the two means differ by rounding only, far below this).
_THRESHOLD_TIE = 1e-9


def row_blocks(h: int, w: int) -> Iterator[tuple[int, int]]:
    """``(r0, r1)`` row bands covering ``h`` rows of width ``w``, about ``BLOCK_PIXELS`` pixels each."""
    step = max(1, BLOCK_PIXELS // max(w, 1))
    for r0 in range(0, h, step):
        yield r0, min(r0 + step, h)


def uint8_levels(pred: np.ndarray) -> np.ndarray:
    """Normalised value of each uint8 code: ``u / 255`` then min-max normalised (MATLAB ``mapminmax``).

    ``uint8_levels(pred)[pred]`` equals the full-image normalisation pixel for pixel.
    """
    raw = np.arange(256) / 255
    lo, hi = raw[pred.min()], raw[pred.max()]
    if hi == lo:
        return raw
    return (raw - lo) / (hi - lo)


def adaptive_threshold_of(levels: np.ndarray, counts: np.ndarray, size: int,
                          exact_mean: Callable[[], float]) -> float:
    """``min(2 * mean, 1)`` from a histogram (`counts` pixels at each of `levels`, `size` pixels in all).

    Only which levels reach the threshold matters, so the histogram's mean is used; `exact_mean()` (the
    full-image ``np.mean``, as PySODMetrics takes it) is called only when a present level lies within
    rounding distance of the threshold, and then it gives the threshold.
    """
    threshold = min(2 * float(counts @ levels) / size, 1.0)
    if np.any(np.abs(levels[counts > 0] - threshold) <= _THRESHOLD_TIE):
        threshold = min(2 * float(exact_mean()), 1.0)
    return threshold


def _as_codes(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(levels, codes) of a prediction map; raises SodError for unusable dtypes / ranges."""
    if pred.dtype == np.bool_:
        pred = pred.astype(np.uint8) * np.uint8(255)
    elif np.issubdtype(pred.dtype, np.integer) and pred.dtype != np.uint8:
        if pred.min() < 0 or pred.max() > 255:
            raise SodError(f"prediction values must lie in 0..255, got {pred.min()}..{pred.max()} ({pred.dtype})")
        pred = pred.astype(np.uint8)
    if pred.dtype == np.uint8:
        return uint8_levels(pred), pred
    if not np.issubdtype(pred.dtype, np.floating):
        raise SodError(f"prediction must be uint8 (0..255) or float in [0, 1], got dtype {pred.dtype}")
    values, inverse = np.unique(pred.astype(np.float64), return_inverse=True)
    if not (np.isfinite(values[[0, -1]]).all() and values[0] >= 0 and values[-1] <= 1):
        raise SodError(f"float prediction values must lie in [0, 1], got {values[0]}..{values[-1]}")
    if values[-1] != values[0]:
        values = (values - values[0]) / (values[-1] - values[0])
    return values, inverse.reshape(pred.shape)


def _binarise_gt(gt: np.ndarray) -> np.ndarray:
    """Boolean mask: bool as is, integer masks at ``> 128`` (PySODMetrics' convention)."""
    if gt.dtype == np.bool_:
        return gt
    if np.issubdtype(gt.dtype, np.integer):
        return gt > 128
    raise SodError(f"ground truth must be a uint8 (0..255, binarised at >128) or bool mask, got dtype {gt.dtype}")


class PreparedPair:
    """A validated (prediction, ground truth) pair with lazily computed shared statistics.

    Attributes:
        levels: float64 (K,), the normalised prediction values; ``pred == levels[codes]``.
        codes: integer HxW codes into ``levels``.
        gt: bool HxW mask.
    """

    def __init__(self, levels: np.ndarray, codes: np.ndarray, gt: np.ndarray) -> None:
        self.levels = levels
        self.codes = codes
        self.gt = gt
        self.shape: tuple[int, int] = gt.shape
        self.size = int(gt.size)

    @cached_property
    def pred(self) -> np.ndarray:
        """The normalised float64 prediction in [0, 1] (bit-identical to PySODMetrics' ``prepare_data``).

        8 bytes per pixel: the measures never build it (they use ``levels`` / ``codes`` by blocks).
        """
        return self.levels.take(self.codes)

    def pred_rows(self, r0: int, r1: int) -> np.ndarray:
        """``pred[r0:r1]`` as a new float64 array (without building ``pred``)."""
        return self.levels.take(self.codes[r0:r1])

    @cached_property
    def _gt_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """Foreground pixel counts per row and per column."""
        return np.count_nonzero(self.gt, axis=1), np.count_nonzero(self.gt, axis=0)

    @cached_property
    def n_fg(self) -> int:
        """Number of foreground pixels."""
        return int(self._gt_profile[0].sum())

    @cached_property
    def centroid(self) -> tuple[int, int]:
        """(cy, cx): the rounded foreground centroid plus one (MATLAB's 1-based split), (0, 0) if empty."""
        rows, cols = self._gt_profile
        n = int(rows.sum())
        if n == 0:
            return 0, 0
        cy = int(rows @ np.arange(rows.size)) / n
        cx = int(cols @ np.arange(cols.size)) / n
        return round(cy) + 1, round(cx) + 1

    @cached_property
    def fg_box(self) -> tuple[slice, slice]:
        """Bounding box of the foreground, widened by ``margin=3`` (the wF Gaussian radius), clipped."""
        rows, cols = self._gt_profile
        r, c = np.flatnonzero(rows), np.flatnonzero(cols)
        h, w = self.shape
        return slice(max(r[0] - 3, 0), min(r[-1] + 4, h)), slice(max(c[0] - 3, 0), min(c[-1] + 4, w))

    @cached_property
    def hist(self) -> np.ndarray:
        """int64 counts of shape (4, 2, K): [quadrant (lt, rt, lb, rb), gt (bg, fg), level]."""
        k = self.levels.size
        h, w = self.shape
        cy, cx = self.centroid
        dtype = np.uint16 if self.codes.dtype == np.uint8 else np.intp  # 8 * 256 bins fit in uint16
        row_offset = np.where(np.arange(h) >= cy, 4 * k, 0).astype(dtype)[:, None]
        col_offset = np.where(np.arange(w) >= cx, 2 * k, 0).astype(dtype)
        counts = np.zeros(8 * k, dtype=np.intp)
        for r0, r1 in row_blocks(h, w):
            idx = self.gt[r0:r1].view(np.uint8) * dtype(k)
            idx += self.codes[r0:r1]
            idx += row_offset[r0:r1]
            idx += col_offset
            counts += np.bincount(idx.ravel(), minlength=8 * k)
        return counts.astype(np.int64, copy=False).reshape(4, 2, k)

    @cached_property
    def gt_hist(self) -> np.ndarray:
        """int64 counts of shape (2, K): [gt (bg, fg), level]."""
        return self.hist.sum(axis=0)

    @cached_property
    def threshold_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(tp, fp) float64 arrays of 256: pixels with ``uint8(255 * pred) >= t`` for t = 255, 254, ..., 0.

        The ordering (threshold 255 first) is PySODMetrics' curve ordering.
        """
        bins = (self.levels * 255).astype(np.uint8)
        bg = np.bincount(bins, weights=self.gt_hist[0], minlength=N_THRESHOLDS)
        fg = np.bincount(bins, weights=self.gt_hist[1], minlength=N_THRESHOLDS)
        return np.cumsum(fg[::-1]), np.cumsum(bg[::-1])

    @cached_property
    def adaptive_counts(self) -> tuple[int, int]:
        """(tp, fp) of the prediction binarised at ``min(2 * mean, 1)`` (``pred >= threshold``)."""
        selected = self.levels >= self.adaptive_threshold
        return int(self.gt_hist[1, selected].sum()), int(self.gt_hist[0, selected].sum())

    @cached_property
    def adaptive_threshold(self) -> float:
        """``min(2 * mean(pred), 1)``: the same levels reach it as with PySODMetrics' ``np.mean(pred)``.

        Only which levels reach the threshold matters, so the mean is taken from the histogram; the
        full-image ``np.mean`` (8 bytes per pixel, transient) is computed only when a present level lies
        within rounding distance of the threshold, and then it is the threshold.
        """

        def exact_mean() -> float:
            pred = self.__dict__.get("pred")
            return float(np.mean(pred) if pred is not None else np.mean(self.levels.take(self.codes)))

        return adaptive_threshold_of(self.levels, self.gt_hist.sum(axis=0), self.size, exact_mean)

    def quadrant_slices(self, q: int) -> tuple[slice, slice]:
        """Row / column slices of quadrant ``q`` (0 lt, 1 rt, 2 lb, 3 rb) of the centroid split."""
        cy, cx = self.centroid
        rows = slice(0, cy) if q < 2 else slice(cy, None)
        cols = slice(0, cx) if q % 2 == 0 else slice(cx, None)
        return rows, cols


def prepare_pair(pred: np.ndarray, gt: np.ndarray) -> PreparedPair:
    """Validate and normalise one (prediction, ground truth) pair.

    Args:
        pred: HxW uint8 (0..255) saliency map (the fast path), or float in [0, 1] on the scale of
            ``uint8 / 255``, used at full precision (slower: ``np.unique``, O(HxW) extra memory); other
            integer dtypes with values in 0..255 and bool are accepted too. It is min-max normalised
            per image when it is not constant, as PySODMetrics does.
        gt: HxW uint8 mask binarised at ``> 128`` (or a bool mask, used as is).

    Raises:
        SodError: shape mismatch, non-2-D or empty maps, unsupported dtypes or out-of-range values.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise SodError(
            f"prediction shape {pred.shape} does not match ground-truth shape {gt.shape}; "
            "resize the prediction to the mask's size first"
        )
    if pred.ndim != 2:
        raise SodError(f"expected 2-D grayscale maps (HxW), got shape {pred.shape}; convert images to 'L'")
    if pred.size == 0:
        raise SodError(f"cannot score an empty map of shape {pred.shape}")
    levels, codes = _as_codes(np.ascontiguousarray(pred))
    return PreparedPair(levels, codes, np.ascontiguousarray(_binarise_gt(gt)))
