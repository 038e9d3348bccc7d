"""Qualitative grid: image choice and layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2sod.errors import SodError
from sam2sod.report.qualitative import select_images, write_qualitative


def test_select_disagreement_then_worst_without_duplicates():
    mae = {"A": {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.2, "e": 0.3},
           "B": {"a": 0.9, "b": 0.8, "c": 0.1, "d": 0.2, "e": 0.3}}
    # disagreement |A-B|: b 0.7, c 0.4, rest 0; A's worst: a, c, e, d, b
    assert select_images(mae, n=4) == ["b", "c", "a", "e"]
    assert select_images(mae, n=2, reference="B") == ["b", "a"]
    assert select_images(mae, n=10) == ["b", "c", "a", "d", "e"]  # ties: by name
    assert select_images({"A": mae["A"]}, n=2) == ["a", "c"]  # one method: its worst cases
    with pytest.raises(SodError, match="at least 1"):
        select_images(mae, n=0)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {"wide": (32, 48), "tall": (48, 32), "sq": (40, 40)}
    for folder in ("images", "masks", "m1", "m2"):
        (tmp_path / folder).mkdir()
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{name}.jpg")
        gt = np.zeros((h, w), np.uint8)
        gt[h // 4:3 * h // 4, w // 4:3 * w // 4] = 255
        Image.fromarray(gt).save(tmp_path / "masks" / f"{name}.png")
        for m in ("m1", "m2"):
            Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(tmp_path / m / f"{name}.png")
    return tmp_path


def test_grid_layout(dataset):
    out = dataset / "out" / "qualitative.png"
    shown = write_qualitative(out, dataset / "images", dataset / "masks",
                              {"method one": dataset / "m1", "m2": dataset / "m2"},
                              names=["wide", "tall", "sq"], row_height=60)
    assert shown == ["wide", "tall", "sq"]
    with Image.open(out) as im:
        arr = np.asarray(im.convert("RGB"))
    h, w, _ = arr.shape
    header = 14 + 12
    assert h == header + 3 * (60 + 4) + 4
    # four columns (image, GT, 2 methods), each at least the widest scaled row (wide: 90 px)
    assert w >= 4 * (90 + 4)
    assert (arr[:header] < 128).any(), "column labels are drawn"
    assert (arr[header:, :20] < 128).any(), "row labels are drawn"


def test_automatic_choice_and_missing_files(dataset):
    mae = {"m1": {"wide": 0.1, "tall": 0.5, "sq": 0.2}, "m2": {"wide": 0.1, "tall": 0.1, "sq": 0.9}}
    out = dataset / "q.png"
    shown = write_qualitative(out, dataset / "images", dataset / "masks", {"m1": dataset / "m1", "m2": dataset / "m2"},
                              mae=mae, n=2, row_height=40)
    assert shown == ["sq", "tall"] and out.is_file()
    (dataset / "m2" / "sq.png").unlink()
    with pytest.raises(SodError, match="prediction folder .* no file for sq"):
        write_qualitative(out, dataset / "images", dataset / "masks", {"m2": dataset / "m2"}, names=["sq"])
    with pytest.raises(SodError, match="image names"):
        write_qualitative(out, dataset / "images", dataset / "masks", {"m1": dataset / "m1"})
