"""DAVIS's unsupervised video-object-segmentation measures of one frame: region J and boundary F.

Both compare binary masks. The prediction is binarised at 0.5 (``pred / 255 > 0.5``: uint8 values >= 128;
float maps in [0, 1] at ``> 0.5``; no min-max normalisation), the ground truth at ``> 128`` as for the SOD
measures (bool masks are used as they are).

* **J** (region similarity, Jaccard): ``|P & G| / |P | G|``; 1 when both masks are empty.
* **F** (boundary accuracy): boundaries are the pixels whose right, lower or lower-right neighbour has the
  other label (pixels outside the image do not count). Each boundary is dilated by a disk of radius
  ``r = ceil(0.008 * image diagonal)`` pixels (a pixel at distance ``d <= r``; ``bound_th >= 1`` is taken as
  ``r`` itself). Precision = share of predicted boundary pixels within the dilated ground-truth boundary,
  recall = share of ground-truth boundary pixels within the dilated predicted boundary,
  ``F = 2 P R / (P + R)`` (0 when P + R = 0). With no predicted boundary P = 1, with no ground-truth
  boundary R = 1, so F = 1 when both are empty and 0 when only one is.
* **J&F** is the mean of the two.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import distance_transform_edt

from sam2sod.errors import SodError

__all__ = ["BOUND_TH", "THRESHOLD", "binarize_prediction", "boundary_f", "boundary_map", "boundary_radius",
           "jf_scores", "region_j"]

#: Boundary tolerance as a share of the image diagonal (DAVIS's ``bound_th``).
BOUND_TH = 0.008
#: Binarisation threshold of the prediction, on the 0..1 scale.
THRESHOLD = 0.5


def binarize_prediction(pred: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Bool HxW mask ``pred / 255 > threshold`` (uint8 / integer 0..255), ``pred > threshold`` (float), bool as is."""
    pred = np.asarray(pred)
    if pred.dtype == np.bool_:
        return pred
    if np.issubdtype(pred.dtype, np.integer):
        return pred.astype(np.float64) / 255.0 > threshold if pred.dtype != np.uint8 else pred > threshold * 255
    if np.issubdtype(pred.dtype, np.floating):
        return pred > threshold
    raise SodError(f"prediction must be uint8 (0..255), float in [0, 1] or bool, got dtype {pred.dtype}")


def _binarize_gt(gt: np.ndarray) -> np.ndarray:
    gt = np.asarray(gt)
    if gt.dtype == np.bool_:
        return gt
    if np.issubdtype(gt.dtype, np.integer):
        return gt > 128
    raise SodError(f"ground truth must be a uint8 (0..255, binarised at >128) or bool mask, got dtype {gt.dtype}")


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise SodError(f"prediction shape {pred.shape} does not match ground-truth shape {gt.shape}; "
                       "resize the prediction to the mask's size first")
    if pred.ndim != 2 or pred.size == 0:
        raise SodError(f"expected non-empty 2-D maps (HxW), got shape {pred.shape}")


def region_j(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard index of two bool HxW masks; 1.0 when both are empty."""
    union = int(np.count_nonzero(pred | gt))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & gt)) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """Bool HxW: pixels whose right, lower or lower-right neighbour (inside the image) has the other label."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros_like(mask)
    out[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    out[:-1, :] |= mask[:-1, :] != mask[1:, :]
    out[:-1, :-1] |= mask[:-1, :-1] != mask[1:, 1:]
    return out


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Dilation radius in pixels: `bound_th` itself when >= 1, else ``ceil(bound_th * diagonal)``."""
    if bound_th >= 1:
        return int(round(bound_th))
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def _within(boundary: np.ndarray, radius: int) -> np.ndarray:
    """Bool HxW: pixels at Euclidean distance <= `radius` from a pixel of a non-empty `boundary`."""
    return distance_transform_edt(~boundary) <= radius


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """DAVIS boundary F-measure of two bool HxW masks (see the module docstring for the edge cases)."""
    pb, gb = boundary_map(pred), boundary_map(gt)
    n_p, n_g = int(np.count_nonzero(pb)), int(np.count_nonzero(gb))
    if n_p == 0 or n_g == 0:
        return 1.0 if n_p == n_g else 0.0
    radius = boundary_radius(pred.shape, bound_th)
    precision = int(np.count_nonzero(pb & _within(gb, radius))) / n_p
    recall = int(np.count_nonzero(gb & _within(pb, radius))) / n_g
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def jf_scores(pred: np.ndarray, gt: np.ndarray, threshold: float = THRESHOLD,
              bound_th: float = BOUND_TH) -> tuple[float, float]:
    """(J, F) of one frame: `pred` HxW saliency map (uint8 / float / bool), `gt` HxW mask (uint8 / bool)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    _check_pair(pred, gt)
    p, g = binarize_prediction(pred, threshold), _binarize_gt(gt)
    return region_j(p, g), boundary_f(p, g, bound_th)
