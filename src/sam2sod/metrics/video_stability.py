"""Flicker: how much a video's saliency maps change from frame to frame beyond what the ground truth changes.

Definition (lower is better; 0 = the maps change no more than the annotation does). For one sequence, take
its scored annotated frames (after the skip rule) ``a_1 < ... < a_m`` (frame positions) as anchors, the
prediction ``P_t = pred_t / 255`` (no min-max normalisation) of every frame, and the binarised ground truth
``G_a`` (``> 128``) of the anchors. For each pair of consecutive anchors ``(a, b)``::

    V_P(a, b) = sum over consecutive predicted frames s < t of [a, b] of  mean_pixels |P_t - P_s|
    V_G(a, b) = mean_pixels |G_b - G_a|
    excess(a, b) = max(0, V_P(a, b) - V_G(a, b))

    flicker(sequence) = sum over anchor pairs of excess(a, b)  /  sum over anchor pairs of (b - a)

i.e. the total variation of the predicted maps along the frames between two annotations, beyond the net
change of the annotation, per frame step. With every frame annotated (DAVIS) this is the mean over
consecutive frame pairs of ``max(0, mean|P_t - P_{t-1}| - mean|G_t - G_{t-1}|)``. With sparse annotations
the ground truth's own path between anchors is unknown and only its net change is subtracted, so a
correct map of an object that moves back and forth between two annotations is counted as some flicker.
A frame between anchors without a prediction is left out of the path (the path jumps over it; the
number of such frames is reported). A sequence with fewer than two anchors has no flicker value (NaN);
the dataset value is the mean over the sequences that have one.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sam2sod.errors import SodError

__all__ = ["FLICKER_DEFINITION", "mean_abs_change", "sequence_flicker"]

FLICKER_DEFINITION = ("flicker = sum over consecutive scored annotated frames (a, b) of "
                      "max(0, sum_{consecutive predicted frames s<t in [a, b]} mean|P_t - P_s| - mean|G_b - G_a|) "
                      "/ sum (b - a); P = pred/255, G = mask > 128; per sequence, then the mean over sequences; "
                      "lower is better")


def mean_abs_change(a: np.ndarray, b: np.ndarray) -> float:
    """``mean |a - b| / 255`` of two uint8 HxW maps."""
    return _abs_diff(a, b) / (255.0 * a.size)


def _abs_diff(a: np.ndarray, b: np.ndarray) -> int:
    """``sum |a - b|`` of two uint8 maps of one shape, exactly (int16 differences, int64 sum)."""
    if a.shape != b.shape:
        raise SodError(f"flicker needs the frames of a sequence to have one size, got {a.shape} and {b.shape}")
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(dtype=np.int64))


def sequence_flicker(frames: Iterable[tuple[int, np.ndarray, np.ndarray | None]]) -> tuple[float, int]:
    """(flicker, frame steps) of one sequence (see the module docstring).

    Args:
        frames: ``(frame position, pred uint8 HxW, gt bool HxW or None)`` in frame order; `gt` is given for
            the anchors (scored annotated frames) only. Frames before the first anchor add nothing. All
            maps have one shape.

    Returns:
        (NaN, 0) when fewer than two anchors were seen. Sums are kept in integers (``255 * pixels`` units),
        so a prediction equal to the ground truth gives exactly 0.
    """
    prev: np.ndarray | None = None
    anchor_gt: np.ndarray | None = None
    anchor_at = 0
    path = 0  # sum |pred_t - pred_s| along the path since the last anchor, uint8 units
    excess = 0.0
    steps = 0
    for position, pred, gt in frames:
        if prev is not None:
            path += _abs_diff(prev, pred)
        prev = pred
        if gt is None:
            continue
        if anchor_gt is not None:
            gt_change = 255 * _abs_diff(anchor_gt.view(np.uint8), gt.view(np.uint8))
            excess += max(0, path - gt_change) / (255.0 * gt.size)
            steps += position - anchor_at
        anchor_gt, anchor_at, path = gt, position, 0
    return (excess / steps if steps else float("nan")), steps
