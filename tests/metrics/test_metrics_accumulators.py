"""Accumulators, aggregation, PairScores and input errors."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy import ndimage

from sam2sod.errors import SodError
from sam2sod.metrics import (
    CURVE_KEYS,
    DATASET_KEYS,
    MAE,
    PER_IMAGE_KEYS,
    Emeasure,
    Fmeasure,
    PairScores,
    Smeasure,
    SODMetrics,
    WeightedFmeasure,
    aggregate,
    pair_scores,
)

psm = pytest.importorskip("py_sod_metrics")


def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Five varied pairs: blurred masks of several shapes, an empty and a full mask."""
    rng = np.random.default_rng(7)
    out = []
    for h, w in [(60, 80), (45, 31), (70, 70), (20, 90), (33, 33)]:
        field = ndimage.gaussian_filter(rng.random((h, w)), 4)
        gt = np.where(field > np.quantile(field, 0.7), 255, 0).astype(np.uint8)
        pred = np.clip(ndimage.gaussian_filter(gt.astype(float), 3) + rng.normal(0, 25, (h, w)), 0, 255)
        out.append((pred.astype(np.uint8), gt))
    out[3] = (out[3][0], np.zeros_like(out[3][1]))
    out[4] = (out[4][0], np.full_like(out[4][1], 255))
    return out


def flatten(results: dict, prefix: str = "") -> dict[str, object]:
    """{"fm": {"adp": x}} -> {"fm.adp": x}."""
    flat: dict[str, object] = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (Smeasure, "Smeasure"),
        (Emeasure, "Emeasure"),
        (Fmeasure, "Fmeasure"),
        (WeightedFmeasure, "WeightedFmeasure"),
        (MAE, "MAE"),
    ],
)
def test_single_measure_classes_equal_reference(ours, theirs):
    mine = ours()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(psm, theirs)()
    for pred, gt in pairs():
        mine.step(pred, gt)
        reference.step(pred, gt)
    assert len(mine) == 5
    got, expected = flatten(mine.get_results()), flatten(reference.get_results())
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert np.shape(got[key]) == np.shape(value), key
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-10, err_msg=key)


def test_sodmetrics_results_match_reference_classes():
    metrics = SODMetrics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = {name: getattr(psm, name)() for name in ("Smeasure", "Emeasure", "Fmeasure", "WeightedFmeasure", "MAE")}
    for pred, gt in pairs():
        metrics.step(pred, gt)
        for metric in ref.values():
            metric.step(pred, gt)
    got = metrics.get_results()
    fm, em = ref["Fmeasure"].get_results(), ref["Emeasure"].get_results()
    expected = {
        "Smeasure": ref["Smeasure"].get_results()["sm"],
        "wFmeasure": ref["WeightedFmeasure"].get_results()["wfm"],
        "MAE": ref["MAE"].get_results()["mae"],
        "adpEm": em["em"]["adp"],
        "meanEm": em["em"]["curve"].mean(),
        "maxEm": em["em"]["curve"].max(),
        "adpFm": fm["fm"]["adp"],
        "meanFm": fm["fm"]["curve"].mean(),
        "maxFm": fm["fm"]["curve"].max(),
        "precision": fm["pr"]["p"],
        "recall": fm["pr"]["r"],
        "fm_curve": fm["fm"]["curve"],
        "em_curve": em["em"]["curve"],
    }
    assert set(got) == set(DATASET_KEYS) | set(CURVE_KEYS) == set(expected)
    for key in DATASET_KEYS:
        assert type(got[key]) is float, key
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-10, err_msg=key)


def test_add_of_pair_scores_equals_step():
    stepped, added = SODMetrics(), SODMetrics()
    for pred, gt in pairs():
        returned = stepped.step(pred, gt)
        assert isinstance(returned, PairScores)
        added.add(pickle.loads(pickle.dumps(pair_scores(pred, gt))))  # as if sent back by a worker
    a, b = stepped.get_results(), added.get_results()
    assert len(stepped) == len(added) == 5
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    direct = aggregate(stepped.scores)
    for key in a:
        np.testing.assert_array_equal(a[key], direct[key], err_msg=key)


def test_aggregate_is_order_independent_and_averages():
    scores = [pair_scores(pred, gt) for pred, gt in pairs()]
    forward, backward = aggregate(scores), aggregate(scores[::-1])
    for key in forward:
        np.testing.assert_allclose(forward[key], backward[key], rtol=0, atol=1e-14)
    assert forward["Smeasure"] == pytest.approx(np.mean([s.sm for s in scores]))
    assert forward["meanEm"] == pytest.approx(np.mean([s.mean_em for s in scores]))
    single = aggregate(scores[:1])
    assert single["adpFm"] == scores[0].adp_fm and single["maxFm"] == scores[0].fm_curve.max()


def test_pair_scores_fields_and_per_image_row():
    pred, gt = pairs()[0]
    scores = pair_scores(pred, gt)
    row = scores.per_image_row()
    assert tuple(row) == PER_IMAGE_KEYS
    assert row == {"S": scores.sm, "MAE": scores.mae, "wF": scores.wfm, "adpF": scores.adp_fm, "E": scores.adp_em}
    assert all(type(value) is float for value in row.values())
    assert 0.5 < scores.sm < 1 and 0 < scores.mae < 0.2 and scores.adp_em > 0.7
    assert scores.mean_em == pytest.approx(scores.em_curve.mean())
    for key in CURVE_KEYS:
        curve = getattr(scores, key)
        assert curve.shape == (256,) and curve.dtype == np.float64
    assert scores.recall[-1] == 1.0  # threshold 0 (last) selects everything
    assert np.all(np.diff(scores.recall) >= 0)  # thresholds decrease along the curve


def test_perfect_prediction_scores_perfectly():
    gt = np.zeros((40, 50), np.uint8)
    gt[10:30, 15:35] = 255
    scores = pair_scores(gt.copy(), gt)
    assert scores.sm == pytest.approx(1.0) and scores.mae == 0.0
    assert scores.wfm == pytest.approx(1.0) and scores.adp_fm == pytest.approx(1.0)
    assert scores.adp_em == pytest.approx(1.0, abs=1e-3)


def test_bool_masks_are_used_as_is():
    pred, gt = pairs()[0]
    a, b = pair_scores(pred, gt), pair_scores(pred, gt > 128)
    assert a.sm == b.sm and a.wfm == b.wfm
    np.testing.assert_array_equal(a.em_curve, b.em_curve)


def test_shape_mismatch_raises_sod_error():
    pred = np.zeros((10, 12), np.uint8)
    gt = np.zeros((12, 10), np.uint8)
    with pytest.raises(SodError, match=r"\(10, 12\).*\(12, 10\)"):
        pair_scores(pred, gt)
    for cls in (Smeasure, Emeasure, Fmeasure, WeightedFmeasure, MAE, SODMetrics):
        with pytest.raises(SodError, match="shape"):
            cls().step(pred, gt)


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), "2-D"),
        (np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8), "empty"),
        (np.full((4, 4), 1.5), np.zeros((4, 4), np.uint8), r"\[0, 1\]"),
        (np.full((4, 4), np.nan), np.zeros((4, 4), np.uint8), r"\[0, 1\]"),
        (np.full((4, 4), 300, np.int32), np.zeros((4, 4), np.uint8), "0..255"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32), "ground truth"),
        (np.zeros((4, 4), np.complex64), np.zeros((4, 4), np.uint8), "dtype"),
    ],
)
def test_bad_inputs_raise_sod_error(pred, gt, message):
    with pytest.raises(SodError, match=message):
        pair_scores(pred, gt)


def test_empty_aggregates_raise_sod_error():
    with pytest.raises(SodError, match="zero images"):
        aggregate([])
    for cls in (Smeasure, Emeasure, Fmeasure, WeightedFmeasure, MAE, SODMetrics):
        with pytest.raises(SodError, match="no image"):
            cls().get_results()


def test_add_rejects_other_objects():
    with pytest.raises(TypeError, match="PairScores"):
        SODMetrics().add({"S": 1.0})
