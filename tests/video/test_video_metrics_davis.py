"""DAVIS J and F against hand-computed values, and the flicker measure on crafted sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam2sod.errors import SodError
from sam2sod.metrics.davis import binarize_prediction, boundary_f, boundary_map, boundary_radius, jf_scores, region_j
from sam2sod.metrics.video_stability import mean_abs_change, sequence_flicker


def row(*on: int, n: int = 12) -> np.ndarray:
    """A 1 x n uint8 map, 255 at the given columns."""
    m = np.zeros((1, n), np.uint8)
    m[0, list(on)] = 255
    return m


def test_region_j_by_hand():
    gt, pred = row(3, 4, 5), row(5, 6, 7)
    assert region_j(gt > 128, pred > 128) == pytest.approx(1 / 5)
    assert region_j(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
    assert region_j(np.zeros((3, 3), bool), np.eye(3, dtype=bool)) == 0.0


def test_boundary_map_of_a_square_by_hand():
    m = np.zeros((5, 5), bool)
    m[1:4, 1:4] = True
    expected = np.array([[1, 1, 1, 1, 0],
                         [1, 0, 0, 1, 0],
                         [1, 0, 0, 1, 0],
                         [1, 1, 1, 1, 0],
                         [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(boundary_map(m), expected)


def test_boundary_radius_is_davis_tolerance():
    assert boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert boundary_radius((1, 12)) == 1
    assert boundary_radius((10, 10), bound_th=3) == 3


def test_boundary_f_by_hand_on_rows():
    # gt boundary {2, 5}; radius 1
    gt = row(3, 4, 5)
    assert jf_scores(row(4, 5, 6), gt) == (pytest.approx(2 / 4), 1.0)  # boundary {3, 6}: all within 1
    j, f = jf_scores(row(5, 6, 7), gt)  # boundary {4, 7}: P = 1/2 (4 near 5), R = 1/2 (5 near 4)
    assert (j, f) == (pytest.approx(1 / 5), pytest.approx(0.5))
    j, f = jf_scores(row(8, 9, 10), gt)  # boundary {7, 10}: nothing within 1
    assert (j, f) == (0.0, 0.0)


def test_boundary_f_empty_cases():
    empty, gt = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    gt[2:4, 2:4] = True
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(empty, gt) == 0.0 and boundary_f(gt, empty) == 0.0


def _brute_force_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    pb, gb = np.argwhere(boundary_map(pred)), np.argwhere(boundary_map(gt))
    if len(pb) == 0 or len(gb) == 0:
        return 1.0 if len(pb) == len(gb) else 0.0
    d = np.sqrt(((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1))
    precision, recall = float(np.mean(d.min(1) <= radius)), float(np.mean(d.min(0) <= radius))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_boundary_f_matches_a_brute_force_disk_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pred = rng.random((20, 30)) > 0.7
        gt = rng.random((20, 30)) > 0.6
        for th in (0.008, 2, 4):
            r = boundary_radius(pred.shape, th)
            assert boundary_f(pred, gt, th) == pytest.approx(_brute_force_f(pred, gt, r), abs=1e-12)


def test_threshold_is_one_half_without_normalisation():
    np.testing.assert_array_equal(binarize_prediction(np.array([[127, 128, 255]], np.uint8)), [[False, True, True]])
    np.testing.assert_array_equal(binarize_prediction(np.array([[0.5, 0.51]])), [[False, True]])
    dim = np.full((4, 4), 100, np.uint8)  # a faint map stays background (SOD metrics would min-max it)
    assert jf_scores(dim, np.full((4, 4), 255, np.uint8))[0] == 0.0


def test_jf_input_errors_are_one_line():
    with pytest.raises(SodError, match="does not match") as info:
        jf_scores(np.zeros((3, 3), np.uint8), np.zeros((3, 4), np.uint8))
    assert "\n" not in str(info.value)


def test_flicker_static_truth_and_one_flickering_frame():
    gt = np.zeros((10, 10), np.uint8)
    gt[3:6, 3:6] = 255
    flick = gt.copy()
    flick[0, :] = 255  # 10 pixels flip on
    g = gt > 128
    # dense: anchors 0, 1, 2 -> (10/100 + 10/100) / 2 steps
    value, steps = sequence_flicker([(0, gt, g), (1, flick, g), (2, gt, g)])
    assert (value, steps) == (pytest.approx(0.1), 2)
    # sparse: anchors 0 and 2, the flicker in between -> path 20/100 over 2 steps
    value, steps = sequence_flicker([(0, gt, g), (1, flick, None), (2, gt, g)])
    assert (value, steps) == (pytest.approx(0.1), 2)
    assert math.isnan(sequence_flicker([(0, gt, g), (1, flick, None)])[0])


def test_flicker_is_zero_when_the_maps_follow_a_moving_truth():
    seq = []
    for t in range(5):
        m = np.zeros((12, 12), np.uint8)
        m[4:8, t:t + 4] = 255
        seq.append((t, m, m > 128))
    assert sequence_flicker(seq) == (0.0, 4)


def test_flicker_counts_only_change_beyond_the_truth():
    a, b = np.zeros((4, 5), np.uint8), np.zeros((4, 5), np.uint8)
    b[0, :] = 255  # truth changes by 5 of 20 pixels
    half = np.where(b > 0, 128, 0).astype(np.uint8)
    noisy_b = b.copy()
    noisy_b[3, :2] = 255  # prediction changes by 7 pixels
    assert sequence_flicker([(0, a, a > 128), (1, noisy_b, b > 128)])[0] == pytest.approx(2 / 20)
    assert sequence_flicker([(0, a, a > 128), (1, half, b > 128)])[0] == 0.0  # a smaller change is not flicker
    assert mean_abs_change(a, b) == pytest.approx(5 / 20)
