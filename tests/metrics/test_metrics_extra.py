"""Extra PySODMetrics measures: equal to calling py_sod_metrics directly; name validation."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from sam2sod.errors import SodError
from sam2sod.metrics import pair_scores
from sam2sod.metrics.extra import EXTRA_METRICS, ExtraMetrics, extra_pair, lower_is_better, parse_metric_names
from sam2sod.report.stats import ImageScores, bootstrap_cis

psm = pytest.importorskip("py_sod_metrics")


def make_pairs(n: int = 3, size: int = 40, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Masks with two square objects (so size-invariant measures see several targets), noisy predictions."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        gt = np.zeros((size, size), np.uint8)
        gt[4:14, 5:15 + i] = 255
        gt[22:34, 20:36] = 255
        noise = rng.normal(0, 60, gt.shape)
        pred = np.clip(gt * 0.7 + 40 + noise, 0, 255).astype(np.uint8)
        pairs.append((pred, gt))
    return pairs


def direct_values(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The same measures computed by py_sod_metrics' own accumulators, as its examples do."""
    gray = dict(with_adaptive=True, with_dynamic=True)
    s_bin = dict(with_adaptive=False, with_dynamic=False, with_binary=True, sample_based=True)
    o_bin = dict(with_adaptive=False, with_dynamic=False, with_binary=True, sample_based=False)
    fmv2 = psm.FmeasureV2(metric_handlers={
        "dice": psm.DICEHandler(**gray), "iou": psm.IOUHandler(**gray), "ber": psm.BERHandler(**gray),
        "sample_bispec": psm.SpecificityHandler(**s_bin), "overall_bidice": psm.DICEHandler(**o_bin),
        "overall_bif1": psm.FmeasureHandler(**o_bin, beta=1.0),
    })
    si = psm.SizeInvarianceFmeasureV2(metric_handlers={
        "dice": psm.DICEHandler(**gray), "iou": psm.IOUHandler(**gray),
        "bi_f1": psm.FmeasureHandler(**s_bin, beta=1.0),
        "o_dice": psm.DICEHandler(with_adaptive=False, with_dynamic=True, sample_based=False),
        "o_pre": psm.PrecisionHandler(**o_bin),
    })
    msiou = psm.MSIoU(with_dynamic=True, with_adaptive=True, with_binary=True)
    si_mae, hce, cm = psm.SizeInvarianceMAE(), psm.HumanCorrectionEffortMeasure(), psm.ContextMeasure()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for pred, gt in pairs:
            for m in (fmv2, si, msiou, si_mae, hce, cm):
                m.step(pred=pred, gt=gt)
    r, s, ms = fmv2.get_results(), si.get_results(), msiou.get_results()
    return {
        "adpdice": r["dice"]["adaptive"], "meaniou": r["iou"]["dynamic"].mean(),
        "maxber": r["ber"]["dynamic"].max(), "sample_bispec": r["sample_bispec"]["binary"],
        "overall_bidice": r["overall_bidice"]["binary"], "overall_bif1": r["overall_bif1"]["binary"],
        "adpmsiou": ms["adaptive"], "maxmsiou": ms["dynamic"].max(), "meanmsiou": ms["dynamic"].mean(),
        "sample_bimsiou": ms["binary"],
        "si_sample_adpdice": s["dice"]["adaptive"],
        "si_sample_maxiou": np.mean([t.max(axis=-1).mean() for t in s["iou"]["dynamic"]]),
        "si_sample_meandice": np.mean([t.mean(axis=-1).mean() for t in s["dice"]["dynamic"]]),
        "si_sample_bif1": s["bi_f1"]["binary"],
        "si_overall_meandice": s["o_dice"]["dynamic"].mean(), "si_overall_maxdice": s["o_dice"]["dynamic"].max(),
        "si_overall_bipre": s["o_pre"]["binary"],
        "si_mae": si_mae.get_results()["si_mae"], "HCE": hce.get_results()["hce"], "cm": cm.get_results()["cm"],
    }


def test_extra_values_equal_py_sod_metrics():
    pairs = make_pairs()
    expected = direct_values(pairs)
    acc = ExtraMetrics(list(expected))
    for pred, gt in pairs:
        acc.step(pred, gt)
    got = acc.get_results()
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(float(value), rel=1e-12, abs=1e-12), name


def test_pairs_from_workers_give_the_same_results():
    pairs = make_pairs(2)
    names = ["adpiou", "maxdice", "overall_biber", "si_overall_maxf1"]
    direct = ExtraMetrics(names)
    merged = ExtraMetrics(names)
    for pred, gt in pairs:
        direct.step(pred, gt)
        merged.add(pickle.loads(pickle.dumps(extra_pair(pred, gt, names))))
    assert direct.get_results() == merged.get_results()


def test_image_scores_expose_per_image_values_and_curves():
    pairs = make_pairs(3)
    acc = ExtraMetrics(["adpdice", "maxdice", "overall_bidice"])
    for pred, gt in pairs:
        acc.step(pred, gt)
    scores = acc.image_scores(["a", "b", "c"])
    assert set(scores.metrics) == {"adpdice", "maxdice"}  # pooled metrics have no per-image value
    res = acc.get_results()
    assert scores.point("adpdice") == pytest.approx(res["adpdice"])
    assert scores.point("maxdice") == pytest.approx(res["maxdice"])
    merged = ImageScores.from_pair_scores(["a", "b", "c"], [pair_scores(p, g) for p, g in pairs], extra=scores)
    cis = bootstrap_cis(merged, ["Smeasure", "adpdice", "maxdice"], n_resamples=50)
    assert all(iv.low <= iv.value <= iv.high for iv in cis.values())


def test_bool_mask_equals_uint8_mask():
    pred, gt = make_pairs(1)[0]
    a, b = extra_pair(pred, gt, ["adpiou"]), extra_pair(pred, gt > 128, ["adpiou"])
    assert a.values == b.values


def test_parse_metric_names_splits_core_and_extra():
    assert parse_metric_names("Smeasure, adpdice,MAE,adpdice") == (["Smeasure", "MAE"], ["adpdice"])
    core, extra = parse_metric_names(["core", "maxiou"])
    assert len(core) == 9 and extra == ["maxiou"]
    assert "adpfm" not in EXTRA_METRICS  # the core adpFm keeps its fast path


@pytest.mark.parametrize("bad", ["adpdise", "", "S"])
def test_unknown_names_error_with_choices(bad):
    with pytest.raises(SodError) as err:
        parse_metric_names(bad)
    msg = str(err.value)
    assert "\n" not in msg and "choices" in msg and "Smeasure" in msg and "adpdice" in msg
    if bad == "adpdise":
        assert "did you mean adpdice" in msg


def test_extra_metrics_rejects_core_names_and_bad_inputs():
    with pytest.raises(SodError, match="core"):
        ExtraMetrics(["MAE"])
    acc = ExtraMetrics(["adpdice"])
    with pytest.raises(SodError, match="uint8"):
        acc.step(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.uint8))
    with pytest.raises(SodError, match="shape"):
        acc.step(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(SodError, match="zero images"):
        acc.get_results()


def test_lower_is_better():
    assert lower_is_better("MAE") and lower_is_better("adpber") and lower_is_better("si_overall_bifpr")
    assert lower_is_better("HCE") and lower_is_better("si_mae")
    assert not lower_is_better("Smeasure") and not lower_is_better("maxdice")
