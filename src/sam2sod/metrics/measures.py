"""Per-image SOD measures computed from a :class:`PreparedPair`, with PySODMetrics' exact conventions.

Each function scores one image; dataset values are plain means over images (see ``scores.aggregate``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d, distance_transform_edt

from sam2sod.metrics.pair import EPS, PreparedPair, row_blocks

#: F-measure beta^2 (Achanta et al. 2009).
FM_BETA2 = 0.3
#: Weighted F-measure beta^2 (Margolin et al. 2014).
WFM_BETA2 = 1.0
#: S-measure balance between the object and the region score (Fan et al. 2017).
SM_ALPHA = 0.5

# MATLAB fspecial('gaussian', 7, 5) is separable: outer(g, g) with g the normalised 1-D Gaussian.
_GAUSS_1D = np.exp(-(np.arange(-3.0, 4.0) ** 2) / (2 * 5.0**2))
_GAUSS_1D /= _GAUSS_1D.sum()
# Background importance B = 2 - exp(log(0.5) / 5 * distance-to-object).
_WFM_DECAY = math.log(0.5) / 5


# --------------------------------------------------------------------------- counts -> scores
def f_from_counts(
    tp: np.ndarray | float, pp: np.ndarray | float, n_fg: int, beta2: float = FM_BETA2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, F) of binary maps from true positives ``tp`` and predicted positives ``pp``.

    Zero denominators give 0 (no predicted or no true foreground), as in PySODMetrics.
    """
    precision = np.divide(tp, np.maximum(pp, 1))
    recall = np.divide(tp, max(n_fg, 1))
    numerator = (1 + beta2) * precision * recall
    denominator = np.where(numerator == 0, 1, beta2 * precision + recall)
    return precision, recall, numerator / denominator


def em_from_counts(tp: np.ndarray | float, fp: np.ndarray | float, n_fg: int, n: int) -> np.ndarray:
    """Enhanced-alignment measure of binary maps with ``tp`` / ``fp`` foreground pixels (Fan et al. 2018).

    The enhanced alignment matrix takes one value per confusion cell, so the sum over pixels is a
    4-term sum of cell counts. An empty (full) mask scores the fraction of predicted background
    (foreground). The normaliser is ``n - 1 + eps`` as in the reference code.
    """
    pp = np.add(tp, fp)
    if n_fg == 0:
        total = n - pp
    elif n_fg == n:
        total = pp
    else:
        fn = n_fg - np.asarray(tp)
        tn = (n - pp) - fn
        pred_mean, gt_mean = pp / n, n_fg / n
        cells = (
            (tp, 1 - pred_mean, 1 - gt_mean),
            (fp, 1 - pred_mean, -gt_mean),
            (fn, -pred_mean, 1 - gt_mean),
            (tn, -pred_mean, -gt_mean),
        )
        total = 0
        for count, a, b in cells:
            align = 2 * (a * b) / (a * a + b * b + EPS)
            total = total + (align + 1) ** 2 / 4 * count
    return np.asarray(total / (n - 1 + EPS), dtype=np.float64)


# --------------------------------------------------------------------------- F / E measures
def fmeasure_curves(pair: PreparedPair, beta2: float = FM_BETA2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, F) curves of 256 thresholds, threshold 255 first (PySODMetrics' order)."""
    tp, fp = pair.threshold_counts
    return f_from_counts(tp, tp + fp, pair.n_fg, beta2)


def adaptive_fmeasure(pair: PreparedPair, beta2: float = FM_BETA2) -> float:
    """F-measure of the prediction binarised at the adaptive threshold ``min(2 * mean, 1)``."""
    tp, fp = pair.adaptive_counts
    return float(f_from_counts(tp, tp + fp, pair.n_fg, beta2)[2])


def emeasure_curve(pair: PreparedPair) -> np.ndarray:
    """E-measure curve of 256 thresholds, threshold 255 first."""
    tp, fp = pair.threshold_counts
    return em_from_counts(tp, fp, pair.n_fg, pair.size)


def adaptive_emeasure(pair: PreparedPair) -> float:
    """E-measure of the prediction binarised at the adaptive threshold ``min(2 * mean, 1)``."""
    tp, fp = pair.adaptive_counts
    return float(em_from_counts(tp, fp, pair.n_fg, pair.size))


# --------------------------------------------------------------------------- MAE, S-measure
def _moments(counts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, sum of squared deviations) of ``values`` weighted by ``counts`` along the last axis."""
    n = counts.sum(axis=-1)
    mean = (counts @ values) / np.maximum(n, 1)
    m2 = (counts * (values - mean[..., None]) ** 2).sum(axis=-1)
    return n, mean, m2


def mae(pair: PreparedPair) -> float:
    """Mean absolute error between the normalised prediction and the binary mask."""
    bg, fg = pair.gt_hist
    return float((fg @ (1 - pair.levels) + bg @ pair.levels) / pair.size)


def _object_similarity(mean: float, m2: float, n: int) -> float:
    """Object-aware score ``2 m / (m^2 + 1 + std + eps)`` of one region (sample std, 0 for n <= 1)."""
    std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
    return 2 * mean / (mean * mean + 1 + std + EPS)


def _quadrant_is_flat(pair: PreparedPair, q: int, level_counts: np.ndarray) -> bool:
    """Whether the reference's variance of the prediction in quadrant ``q`` is exactly 0.

    That happens only for a constant quadrant whose float mean equals the constant bit for bit; the
    mean is recomputed on the same float slice (cheap, rare) because this decides a 0-or-1 score.
    """
    present = np.flatnonzero(level_counts)
    if present.size != 1:
        return False
    value = pair.levels[present[0]]
    if value in (0.0, 1.0):
        return True
    # The quadrant holds `value` everywhere, so only its shape and memory layout decide the mean:
    # rebuild it with the reference's layout (a row-strided view unless it spans whole rows).
    rows, cols = pair.quadrant_slices(q)
    h_q, w_q = len(range(*rows.indices(pair.shape[0]))), len(range(*cols.indices(pair.shape[1])))
    pad = 0 if w_q == pair.shape[1] else 1
    quadrant = np.full((h_q, w_q + pad), value)[:, :w_q]
    return bool(np.mean(quadrant) == value)


def _region_similarity(pair: PreparedPair) -> float:
    """Area-weighted SSIM of the four quadrants split at the foreground centroid."""
    h, w = pair.shape
    cy, cx = pair.centroid
    area = h * w
    w_lt, w_rt, w_lb = cx * cy / area, cy * (w - cx) / area, (h - cy) * cx / area
    weights = (w_lt, w_rt, w_lb, 1 - w_lt - w_rt - w_lb)
    n_q, x_q, m2_q = _moments(pair.hist.sum(axis=1), pair.levels)
    n_ql, mean_ql, _ = _moments(pair.hist, pair.levels)
    score = 0.0
    for q, weight in enumerate(weights):
        n = int(n_q[q])
        if n == 0:  # empty quadrant (object centroid on the last row/column): weight 0, the reference gives NaN
            continue
        n_bg, n_fg = int(n_ql[q, 0]), int(n_ql[q, 1])
        if n_fg == 0 or n_bg == 0:  # constant mask: SSIM is 1 iff the prediction is flat too
            ssim = 1.0 if _quadrant_is_flat(pair, q, pair.hist[q].sum(axis=0)) else 0.0
        else:
            x, y = float(x_q[q]), n_fg / n
            denominator = n - 1 + EPS
            var_x = float(m2_q[q]) / denominator
            var_y = (n_fg * (1 - y) ** 2 + n_bg * y * y) / denominator
            # sum((x_i - x)(y_i - y)) for a binary y reduces to n_fg n_bg / n (mean_fg - mean_bg)
            cov = n_fg * n_bg / n * float(mean_ql[q, 1] - mean_ql[q, 0]) / denominator
            alpha = 4 * x * y * cov
            beta = (x * x + y * y) * (var_x + var_y)
            ssim = alpha / (beta + EPS) if alpha != 0 else 0.0
        score += ssim * weight
    return score


def smeasure(pair: PreparedPair, alpha: float = SM_ALPHA) -> float:
    """Structure measure: ``alpha * object + (1 - alpha) * region``, clipped at 0.

    An empty mask scores ``1 - mean(pred)``, a full mask ``mean(pred)``.
    """
    n_g, mean_g, m2_g = _moments(pair.gt_hist, pair.levels)
    n_bg, n_fg = int(n_g[0]), int(n_g[1])
    if n_fg == 0:
        return float(1 - mean_g[0])
    if n_bg == 0:
        return float(mean_g[1])
    y = n_fg / pair.size
    obj = _object_similarity(float(mean_g[1]), float(m2_g[1]), n_fg) * y
    obj += _object_similarity(float(1 - mean_g[0]), float(m2_g[0]), n_bg) * (1 - y)
    return max(0.0, obj * alpha + _region_similarity(pair) * (1 - alpha))


# --------------------------------------------------------------------------- weighted F-measure
def _index_dtype(n: int) -> type:
    """int32 when values below ``n`` fit (the EDT's own index type), else int64."""
    return np.int32 if n < 2**31 else np.int64


def _decay_sum(pair: PreparedPair, nearest: np.ndarray) -> float:
    """Sum over all pixels of ``pred * exp(decay * distance to the object)``, by row bands."""
    h, w = pair.shape
    dtype = _index_dtype(h * h + w * w)
    col_index = np.arange(w, dtype=dtype)
    total = 0.0
    for r0, r1 in row_blocks(h, w):
        dist2 = nearest[0, r0:r1].astype(dtype)
        dist2 -= np.arange(r0, r1, dtype=dtype)[:, None]
        dist2 *= dist2
        d_col = nearest[1, r0:r1] - col_index
        d_col *= d_col
        dist2 += d_col
        decay = np.sqrt(dist2)
        decay *= _WFM_DECAY
        np.exp(decay, out=decay)  # 1 on the object, where the distance is 0
        total += float(np.einsum("i,i->", pair.pred_rows(r0, r1).ravel(), decay.ravel()))
    return total


def _object_error(pair: PreparedPair, nearest: np.ndarray) -> float:
    """Sum over the object of ``min(E, Gaussian(E at the nearest object pixel))``, E = 1 - pred.

    Only the object's box (widened by the kernel radius) is needed; it is processed in row bands with
    a 3-row halo, which gives the same values as filtering the whole box at once.
    """
    h, w = pair.shape
    rows, cols = pair.fg_box
    error_levels = 1 - pair.levels
    codes = pair.codes.ravel()
    dtype = _index_dtype(h * w)
    fg_err = 0.0
    for r0, r1 in row_blocks(rows.stop - rows.start, cols.stop - cols.start):
        r0, r1 = r0 + rows.start, r1 + rows.start
        h0, h1 = max(r0 - 3, rows.start), min(r1 + 3, rows.stop)
        flat = nearest[0, h0:h1, cols].astype(dtype)
        flat *= w
        flat += nearest[1, h0:h1, cols]
        smoothed = error_levels.take(codes.take(flat))
        smoothed = correlate1d(smoothed, _GAUSS_1D, axis=0, mode="constant")[r0 - h0 : r1 - h0]
        smoothed = correlate1d(smoothed, _GAUSS_1D, axis=1, mode="constant")
        np.minimum(smoothed, error_levels.take(pair.codes[r0:r1, cols]), out=smoothed)
        fg_err += float(smoothed[pair.gt[r0:r1, cols]].sum())
    return fg_err


def weighted_fmeasure(pair: PreparedPair, beta2: float = WFM_BETA2) -> float:
    """Weighted F-measure (Margolin et al. 2014); 0 for an empty mask.

    Background errors are replaced by the error of the nearest object pixel (dependency), object
    errors by their 7x7 Gaussian-smoothed value when smaller, and background errors are weighted by
    ``2 - exp(log(0.5) / 5 * distance)`` (importance). The nearest-pixel ties follow scipy's EDT,
    which is what PySODMetrics uses. Memory: the EDT's indices (8 bytes per pixel) plus row bands.
    """
    n_fg = pair.n_fg
    if n_fg == 0:
        return 0.0
    nearest = distance_transform_edt(~pair.gt, return_distances=False, return_indices=True)
    # Importance-weighted background error: sum over bg of pred * (2 - exp(decay * distance)).
    s_bg, s_fg = (pair.gt_hist @ pair.levels).tolist()
    fp_w = 2 * s_bg - (_decay_sum(pair, nearest) - s_fg)
    fg_err = _object_error(pair, nearest)
    tp_w = n_fg - fg_err
    recall = 1 - fg_err / n_fg
    precision = tp_w / (tp_w + fp_w + EPS)
    return (1 + beta2) * recall * precision / (recall + beta2 * precision + EPS)
