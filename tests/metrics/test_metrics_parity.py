"""Golden parity: the three PySODMetrics example pairs reproduce the published dataset values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.metrics import DATASET_KEYS, SODMetrics, aggregate, pair_scores

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "pysodmetrics-examples"
NAMES = ("0001", "19", "aerial-1867541__340")


def _version(tag: str) -> tuple[int, ...]:
    """'v1_4_3' -> (1, 4, 3)."""
    return tuple(int(part) for part in tag.lstrip("v").split("_"))


def latest_golden_values() -> dict[str, tuple[str, float]]:
    """For each dataset key, (release, value) of the latest release in version_performance.json having it."""
    releases = json.loads((EXAMPLES / "version_performance.json").read_text())
    golden: dict[str, tuple[str, float]] = {}
    for tag in sorted(releases, key=_version):
        for key, value in releases[tag].items():
            golden[key] = (tag, value)
    return golden


def load_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(Image.open(EXAMPLES / "preds" / f"{name}.png").convert("L"))
    gt = np.asarray(Image.open(EXAMPLES / "masks" / f"{name}.png").convert("L"))
    return pred, gt


def test_golden_values_are_found_for_every_key():
    golden = latest_golden_values()
    assert set(DATASET_KEYS) <= set(golden)
    # Today every one of these keys was last published in v1_4_3; a newer release would take over.
    assert {golden[key][0] for key in DATASET_KEYS} == {"v1_4_3"}


def test_example_pairs_look_as_documented():
    shapes = {name: load_pair(name)[0].shape for name in NAMES}
    assert shapes == {"0001": (400, 267), "19": (375, 500), "aerial-1867541__340": (340, 605)}
    assert not (load_pair("aerial-1867541__340")[1] > 128).any()  # the all-background mask


@pytest.mark.parametrize("key", DATASET_KEYS)
def test_examples_reproduce_latest_release(key):
    golden = latest_golden_values()
    results = aggregate([pair_scores(*load_pair(name)) for name in NAMES])
    tag, expected = golden[key]
    assert isinstance(results[key], float)
    assert results[key] == pytest.approx(expected, abs=1e-10, rel=0), f"{key} differs from {tag}"


def test_accumulator_reproduces_latest_release():
    golden = latest_golden_values()
    metrics = SODMetrics()
    for name in NAMES:
        metrics.step(*load_pair(name))
    results = metrics.get_results()
    got = np.array([results[key] for key in DATASET_KEYS])
    expected = np.array([golden[key][1] for key in DATASET_KEYS])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    for key in ("precision", "recall", "fm_curve", "em_curve"):
        assert results[key].shape == (256,)
    assert results["maxFm"] == results["fm_curve"].max()
