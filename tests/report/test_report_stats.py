"""Bootstrap CIs and paired tests on planted data."""

from __future__ import annotations

import numpy as np
import pytest

from sam2sod.errors import SodError
from sam2sod.metrics import DATASET_KEYS, aggregate, pair_scores
from sam2sod.report.stats import (
    ImageScores,
    benchmark_statistics,
    bootstrap_cis,
    paired_tests,
    read_per_image_csv,
)


def synthetic_pairs(n: int = 10, size: int = 32, seed: int = 0, noise: float = 50.0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = np.zeros((size, size), np.uint8)
        r0, c0 = rng.integers(2, size // 2, 2)
        gt[r0:r0 + 12, c0:c0 + 10] = 255
        pred = np.clip(gt * 0.8 + 30 + rng.normal(0, noise, gt.shape), 0, 255).astype(np.uint8)
        out.append((f"img{i:02d}", pred, gt))
    return out


def scores_of(pairs) -> tuple[ImageScores, list]:
    ps = [pair_scores(p, g) for _, p, g in pairs]
    return ImageScores.from_pair_scores([n for n, _, _ in pairs], ps), ps


def planted(n: int, seed: int, shift: float = 0.0) -> ImageScores:
    """Per-image values and curves drawn from one fixed distribution (optionally shifted)."""
    rng = np.random.default_rng(seed)
    base = rng.beta(8, 3, n)
    curves = np.clip(base[:, None] * np.linspace(0.6, 1.0, 256)[None] + rng.normal(0, 0.02, (n, 256)), 0, 1)
    return ImageScores([f"i{k}" for k in range(n)], {"Smeasure": base + shift},
                       {"fm": curves + shift}, {"maxFm": ("fm", "max"), "meanFm": ("fm", "mean")})


def test_points_equal_aggregate_and_cis_contain_them():
    scores, ps = scores_of(synthetic_pairs())
    agg = aggregate(ps)
    cis = bootstrap_cis(scores, n_resamples=300, seed=1)
    assert set(cis) == set(DATASET_KEYS)
    for key, iv in cis.items():
        assert iv.value == pytest.approx(agg[key], abs=1e-12), key
        assert iv.low <= iv.value <= iv.high, key
        assert iv.low < iv.high, key


def test_cis_are_deterministic_for_a_seed():
    s = planted(50, 0)
    a = bootstrap_cis(s, n_resamples=200, seed=7)
    assert a == bootstrap_cis(s, n_resamples=200, seed=7)
    assert a != bootstrap_cis(s, n_resamples=200, seed=8)


def test_cis_narrow_with_more_images():
    small = bootstrap_cis(planted(20, 1), n_resamples=500, seed=0)
    large = bootstrap_cis(planted(400, 2), n_resamples=500, seed=0)
    for m in ("Smeasure", "maxFm", "meanFm"):
        w_small, w_large = small[m].high - small[m].low, large[m].high - large[m].low
        assert w_large < 0.5 * w_small, m


def test_identical_methods_give_p_one():
    s = planted(40, 3)
    tests = paired_tests(s, s, n_resamples=300, seed=0)
    for t in tests.values():
        assert t.difference == 0 and t.p_bootstrap >= 0.9
    assert tests["Smeasure"].p_wilcoxon == 1.0 and tests["maxFm"].p_wilcoxon is None


def test_clearly_better_method_is_significant():
    a, b = planted(40, 4), planted(40, 4, shift=0.03)
    rng = np.random.default_rng(9)
    b.values["Smeasure"] = b.values["Smeasure"] + rng.normal(0, 0.01, 40)
    tests = paired_tests(a, b, n_resamples=500, seed=0)
    for m in ("Smeasure", "maxFm", "meanFm"):
        assert tests[m].difference > 0.02 and tests[m].p_bootstrap < 0.05, m
    assert tests["Smeasure"].p_wilcoxon < 0.05


def test_paired_tests_align_by_name_and_reject_other_images():
    a = planted(10, 5)
    rev = a.reorder(a.names[::-1])
    assert paired_tests(a, rev, n_resamples=50)["Smeasure"].p_bootstrap == 1.0
    other = ImageScores([f"x{k}" for k in range(10)], {"Smeasure": np.ones(10)})
    with pytest.raises(SodError, match="same images"):
        paired_tests(a, other, ["Smeasure"], n_resamples=10)


def test_benchmark_statistics_keys_and_reference():
    sa, _ = scores_of(synthetic_pairs(8, seed=0))
    sb, _ = scores_of(synthetic_pairs(8, seed=0, noise=90))
    stats = benchmark_statistics({"A": {"D": sa}, "B": {"D": sb}}, ["Smeasure", "MAE", "maxFm"],
                                 n_resamples=100, seed=0)
    assert stats.reference == "A"
    assert set(stats.intervals) == {(m, "D", k) for m in "AB" for k in ("Smeasure", "MAE", "maxFm")}
    assert set(stats.tests) == {("B", "D", k) for k in ("Smeasure", "MAE", "maxFm")}
    assert stats.tests[("B", "D", "MAE")].difference > 0  # noisier maps: larger MAE
    with pytest.raises(SodError, match="reference"):
        benchmark_statistics({"A": {"D": sa}}, reference="Z")


def test_read_per_image_csv(tmp_path):
    path = tmp_path / "per_image.csv"
    path.write_text("method,name,S,MAE,wF,adpF,E\nA,a,0.5,0.1,0.4,0.3,0.7\nA,b,0.7,0.3,0.6,0.5,0.9\n"
                    "B,a,0.6,0.2,0.5,0.4,0.8\n")
    got = read_per_image_csv(path)
    assert list(got) == ["A", "B"] and got["A"].names == ["a", "b"]
    assert got["A"].point("Smeasure") == pytest.approx(0.6) and got["A"].point("adpEm") == pytest.approx(0.8)
    assert got["B"].value_map("MAE") == {"a": 0.2}


def test_bad_settings_are_user_errors():
    s = planted(5, 0)
    with pytest.raises(SodError, match="resamples"):
        bootstrap_cis(s, n_resamples=0)
    with pytest.raises(SodError, match="confidence"):
        bootstrap_cis(s, confidence=1.5)
    with pytest.raises(SodError, match="unknown metric"):
        bootstrap_cis(s, ["nope"])
