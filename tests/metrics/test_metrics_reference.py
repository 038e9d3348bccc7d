"""Property tests: pair_scores equals py_sod_metrics on random maps of many kinds, to 1e-10."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from sam2sod.metrics import pair_scores

psm = pytest.importorskip("py_sod_metrics")

TOL = 1e-10
GT_KINDS = ("blob", "blob", "empty", "full", "noisy-uint8", "last-column-free")
PRED_KINDS = ("blurred", "blurred", "constant", "binary", "uniform", "narrow", "two-level")


def reference(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | np.ndarray]:
    """All per-image values computed by py_sod_metrics' own classes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure's deprecation warning, NaN S-measure warnings
        fm, em, sm, wfm, mae = psm.Fmeasure(), psm.Emeasure(), psm.Smeasure(), psm.WeightedFmeasure(), psm.MAE()
        for metric in (fm, em, sm, wfm, mae):
            metric.step(pred, gt)
        f, e = fm.get_results(), em.get_results()
        return {
            "sm": sm.get_results()["sm"],
            "mae": mae.get_results()["mae"],
            "wfm": wfm.get_results()["wfm"],
            "adp_fm": f["fm"]["adp"],
            "adp_em": e["em"]["adp"],
            "mean_em": e["em"]["curve"].mean(),
            "precision": f["pr"]["p"],
            "recall": f["pr"]["r"],
            "fm_curve": f["fm"]["curve"],
            "em_curve": e["em"]["curve"],
        }


def make_pair(seed: int, h: int, w: int, gt_kind: str, pred_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A (uint8 prediction, uint8 mask) pair of the given kinds."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((h, w)), rng.uniform(0.5, 6))
    gt = np.where(field > np.quantile(field, rng.uniform(0.3, 0.95)), 255, 0).astype(np.uint8)
    if gt_kind == "empty":
        gt[:] = 0
    elif gt_kind == "full":
        gt[:] = 255
    elif gt_kind == "noisy-uint8":  # arbitrary grey values: exercises the > 128 binarisation
        gt = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif gt_kind == "last-column-free":  # object away from the border, quadrants of all-background
        gt[:, -max(1, w // 3) :] = 0
        gt[: max(1, h // 4)] = 0
    if pred_kind == "blurred":
        noisy = ndimage.gaussian_filter(gt.astype(float), rng.uniform(0.5, 5))
        noisy += rng.normal(0, rng.uniform(0, 40), (h, w))
        pred = np.clip(noisy, 0, 255).astype(np.uint8)
    elif pred_kind == "constant":
        pred = np.full((h, w), rng.integers(0, 256), np.uint8)
    elif pred_kind == "binary":
        pred = np.where(rng.random((h, w)) < rng.uniform(0.1, 0.9), 255, 0).astype(np.uint8)
    elif pred_kind == "uniform":
        pred = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif pred_kind == "narrow":  # few grey levels: many ties at the thresholds
        pred = rng.integers(100, 104, (h, w), dtype=np.uint8)
    else:  # two-level, aligned with the mask: quadrants with a constant prediction
        values = rng.integers(0, 256, 2)
        pred = np.where(gt > 128, values[0], values[1]).astype(np.uint8)
    return pred, gt


def assert_matches_reference(pred: np.ndarray, gt: np.ndarray) -> None:
    expected = reference(pred, gt)
    got = pair_scores(pred, gt)
    for key, value in expected.items():
        ours = getattr(got, key)
        if key == "sm" and np.isnan(value):
            # Deliberate deviation: an empty S-measure quadrant has weight 0 here, NaN in the reference.
            assert 0.0 <= ours <= 1.0
            continue
        if np.ndim(value):
            assert ours.shape == (256,) and ours.dtype == np.float64
        np.testing.assert_allclose(ours, value, rtol=0, atol=TOL, err_msg=f"{key} for {pred.shape}")


SEEDED_CASES = [
    (seed, h, w, gt_kind, pred_kind)
    for seed, (h, w) in enumerate([(48, 64), (64, 48), (33, 71), (7, 90), (90, 5), (1, 40), (40, 1), (2, 2)])
    for gt_kind in GT_KINDS
    for pred_kind in PRED_KINDS
]


@pytest.mark.parametrize(("seed", "h", "w", "gt_kind", "pred_kind"), SEEDED_CASES)
def test_seeded_pairs_match_reference(seed, h, w, gt_kind, pred_kind):
    assert_matches_reference(*make_pair(seed, h, w, gt_kind, pred_kind))


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    gt_kind=st.sampled_from(GT_KINDS),
    pred_kind=st.sampled_from(PRED_KINDS),
)
def test_random_pairs_match_reference(seed, h, w, gt_kind, pred_kind):
    assert_matches_reference(*make_pair(seed, h, w, gt_kind, pred_kind))


def test_realistic_size_matches_reference():
    pred, gt = make_pair(1, 300, 400, "blob", "blurred")
    assert_matches_reference(pred, gt)


def test_constant_quadrants_follow_reference_rounding():
    """Constant predictions over all-background quadrants: the reference's SSIM is 1 or 0 depending on
    whether the float mean of the quadrant equals the constant bit for bit; both outcomes occur."""
    for h, w in [(20, 21), (27, 38), (41, 62), (55, 29)]:
        for value in (1, 37, 100, 200, 254):
            gt = np.zeros((h, w), np.uint8)
            gt[: h // 3, : w // 3] = 255
            gt[-(h // 3) :, -(w // 3) :] = 255
            assert_matches_reference(np.full((h, w), value, np.uint8), gt)


def test_nan_reference_case_stays_finite():
    """One-row image: the reference returns a NaN S-measure (an empty quadrant), here a finite value."""
    pred = np.array([[0, 50, 200, 255, 10]], np.uint8)
    gt = np.array([[0, 0, 255, 255, 0]], np.uint8)
    assert np.isnan(reference(pred, gt)["sm"])
    sm = pair_scores(pred, gt).sm
    assert np.isfinite(sm) and 0.0 <= sm <= 1.0


@pytest.mark.parametrize("pred_kind", PRED_KINDS)
def test_float_prediction_equals_uint8_prediction(pred_kind):
    pred, gt = make_pair(3, 37, 53, "blob", pred_kind)
    a, b = pair_scores(pred, gt), pair_scores(pred / 255.0, gt)
    for key in ("sm", "mae", "wfm", "adp_fm", "adp_em", "mean_em", "precision", "recall", "fm_curve", "em_curve"):
        np.testing.assert_allclose(getattr(b, key), getattr(a, key), rtol=0, atol=1e-12, err_msg=key)
    c = pair_scores(pred.astype(np.float32) / np.float32(255), gt)
    np.testing.assert_allclose(c.sm, a.sm, atol=1e-6)
