"""Speed: pair_scores must beat the equivalent set of py_sod_metrics classes per image (slow marker)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from scipy import ndimage

from sam2sod.metrics import pair_scores

psm = pytest.importorskip("py_sod_metrics")


def best_time(fn, repeats: int = 7, number: int = 5) -> float:
    """Best mean seconds per call over ``repeats`` rounds (robust to other load on the machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


@pytest.mark.slow
def test_pair_scores_is_faster_than_reference_classes():
    yy, xx = np.mgrid[:300, :400]
    gt = np.where(((yy - 150) / 80) ** 2 + ((xx - 200) / 120) ** 2 < 1, 255, 0).astype(np.uint8)
    noisy = ndimage.gaussian_filter(gt.astype(float), 8) + np.random.default_rng(0).normal(0, 20, gt.shape)
    pred = np.clip(noisy, 0, 255).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = [psm.Fmeasure(), psm.Emeasure(), psm.Smeasure(), psm.WeightedFmeasure(), psm.MAE()]

    def run_reference() -> None:
        for metric in reference:
            metric.step(pred, gt)

    ours, theirs = best_time(lambda: pair_scores(pred, gt)), best_time(run_reference)
    print(f"pair_scores {ours * 1e3:.2f} ms, py_sod_metrics {theirs * 1e3:.2f} ms, {theirs / ours:.2f}x")
    assert theirs / ours > 1.5
