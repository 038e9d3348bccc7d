"""Memory of scoring a pair: bounded per pixel, blocked passes equal to one-block passes, worker cap."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy import ndimage

from sam2sod.metrics import measures, pair, pair_scores, prepare_pair
from sam2sod.metrics.memory import (
    PAIR_BYTES_PER_PIXEL,
    WORKER_BASE_BYTES,
    available_memory_bytes,
    cap_workers,
    pair_memory_bytes,
)

MIB, GIB = 2**20, 2**30
FIELDS = ("sm", "mae", "wfm", "adp_fm", "adp_em", "mean_em", "precision", "recall", "fm_curve", "em_curve")


def soft_ellipse(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 prediction, uint8 mask): an off-centre ellipse and a blurred, noisy copy of it."""
    yy, xx = np.mgrid[:h, :w]
    gt = np.where(((yy - 0.45 * h) / (0.3 * h)) ** 2 + ((xx - 0.55 * w) / (0.25 * w)) ** 2 < 1, 255, 0)
    noisy = ndimage.gaussian_filter(gt.astype(float), 3) + np.random.default_rng(seed).normal(0, 20, gt.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), gt.astype(np.uint8)


def test_cap_workers_values():
    mp24 = 24_000_000
    assert pair_memory_bytes(mp24) == WORKER_BASE_BYTES + PAIR_BYTES_PER_PIXEL * mp24 == 256 * MIB + 384_000_000
    assert cap_workers(mp24, 4 * GIB, 8) == 3  # 2 GiB planned / 622 MiB per worker
    assert cap_workers(mp24, 2 * GIB, 8) == 1
    assert cap_workers(mp24, 64 * GIB, 8) == 8  # room for all
    assert cap_workers(mp24, 64 * GIB, 200) == 52
    assert cap_workers(mp24, 300 * MIB, 4) == 1  # never below one worker
    assert cap_workers(100_000, 2 * GIB, 16) == 3  # small images: mostly the per-process base counts
    assert cap_workers(100_000, 16 * GIB, 16) == 16
    assert cap_workers(mp24, None, 8) == 8  # unknown memory: as requested
    assert cap_workers(mp24, GIB, 0) == 1


def test_available_memory_is_plausible():
    available = available_memory_bytes()
    assert available is None or 16 * MIB < available < 2**50


def test_pair_scores_peak_allocation_is_bounded_per_pixel():
    """Traced numpy peak of one 2000x1500 pair: ~11.8 B/px, mostly the EDT indices (8 B/px) and scipy's
    transient int64 copy of the mask; full-image float64 temporaries (the previous code) gave ~47 B/px."""
    pred, gt = soft_ellipse(1500, 2000)
    pair_scores(pred[:64, :64], gt[:64, :64])  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        pair_scores(pred, gt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / gt.size < 14.0, f"{peak / gt.size:.1f} bytes per pixel"


def _scores(pred: np.ndarray, gt: np.ndarray):
    s = pair_scores(pred, gt)
    return {k: getattr(s, k) for k in FIELDS}


@pytest.mark.parametrize("block", [1, 7, 64, 513])
def test_blocked_passes_equal_one_block(monkeypatch, block):
    """Row bands (with the 3-row halo of the Gaussian) give the values of one pass over the image."""
    cases = [soft_ellipse(61, 47, 1), soft_ellipse(9, 130, 2), soft_ellipse(90, 3, 3)]
    whole = [_scores(*c) for c in cases]
    monkeypatch.setattr(pair, "BLOCK_PIXELS", block)
    for case, expected in zip(cases, whole, strict=True):
        got = _scores(*case)
        for key in FIELDS:
            np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-13, err_msg=key)
        p = prepare_pair(*case)
        assert p.hist.sum() == p.size


def _reference(pred: np.ndarray, gt: np.ndarray, *measures) -> list[dict]:
    """`get_results()` of fresh py_sod_metrics `measures` (classes) after one step on (pred, gt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms = [m() for m in measures]
        for m in ms:
            m.step(pred, gt)
    return [m.get_results() for m in ms]


def test_blocked_passes_match_reference(monkeypatch):
    psm = pytest.importorskip("py_sod_metrics")
    monkeypatch.setattr(pair, "BLOCK_PIXELS", 40)
    pred, gt = soft_ellipse(70, 55, 4)
    wfm, sm = _reference(pred, gt, psm.WeightedFmeasure, psm.Smeasure)
    s = pair_scores(pred, gt)
    assert s.wfm == pytest.approx(wfm["wfm"], abs=1e-12, rel=0)
    assert s.sm == pytest.approx(sm["sm"], abs=1e-12, rel=0)


def _tie_preds() -> list[np.ndarray]:
    """Predictions whose adaptive threshold min(2 mean, 1) lands on (or rounds next to) a present level."""
    half = np.zeros((6, 10), np.uint8)
    half[:3] = 255  # mean 0.5: threshold 1, the top level
    # values 0 / 64 / 255 with 64 n1 + 255 n2 = 32 n: 2 * mean is the level 64/255
    three = np.array([0] * 243 + [64] * 20 + [255] * 32, np.uint8).reshape(5, 59)
    rng = np.random.default_rng(5)
    return [half, three, rng.permutation(three.ravel()).reshape(5, 59), np.full((4, 4), 0, np.uint8),
            np.full((3, 7), 90, np.uint8)]


def test_adaptive_threshold_selects_the_levels_of_the_exact_mean():
    rng = np.random.default_rng(0)
    preds = _tie_preds() + [rng.integers(0, 256, (20, 30), dtype=np.uint8) for _ in range(20)]
    for pred in preds:
        p = prepare_pair(pred, np.zeros(pred.shape, np.uint8))
        exact = min(2 * float(np.mean(p.levels.take(p.codes))), 1.0)
        present = p.gt_hist.sum(axis=0) > 0
        np.testing.assert_array_equal((p.levels >= p.adaptive_threshold)[present], (p.levels >= exact)[present])
        assert "pred" not in p.__dict__  # the full float map was not kept


def test_adaptive_ties_match_reference():
    psm = pytest.importorskip("py_sod_metrics")
    for pred in _tie_preds():
        gt = np.zeros(pred.shape, np.uint8)
        gt[:, : pred.shape[1] // 2] = 255
        fm, em = _reference(pred, gt, psm.Fmeasure, psm.Emeasure)
        s = pair_scores(pred, gt)
        assert s.adp_fm == pytest.approx(fm["fm"]["adp"], abs=1e-12, rel=0)
        assert s.adp_em == pytest.approx(em["em"]["adp"], abs=1e-12, rel=0)


def test_flat_quadrant_mean_uses_the_reference_layout():
    """The rebuilt constant quadrant has the float mean of the same slice of the full prediction."""
    for h, w, value in [(20, 21, 37), (27, 38, 100), (41, 62, 1), (55, 29, 254), (9, 300, 77), (300, 9, 201)]:
        for cy, cx in [(h // 3, w // 4), (h - 1, w // 2), (2, w - 1), (h // 2, w)]:
            gt = np.zeros((h, w), np.uint8)
            gt[cy - 1, cx - 1] = 255  # a one-pixel object puts the centroid split at (cy, cx)
            p = prepare_pair(np.full((h, w), value, np.uint8), gt)
            assert p.centroid == (cy, cx)
            for q in range(4):
                counts = p.hist[q].sum(axis=0)
                if counts.sum() == 0:
                    continue
                expected = bool(np.mean(p.pred[p.quadrant_slices(q)]) == p.levels[value])
                assert measures._quadrant_is_flat(p, q, counts) == expected, (h, w, cy, cx, q)
