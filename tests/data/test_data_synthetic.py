"""Synthetic dataset: determinism, layout, and variety of contents (sam2sod.data.synthetic)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from sam2sod.data import check_pairs, find_pairs, load_image, load_mask, make_synthetic
from sam2sod.errors import SodError


def read_all(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_names(tmp_path: Path) -> None:
    names = make_synthetic(tmp_path, n=6, size=32, seed=0)
    assert names == [f"synth_{i:04d}" for i in range(6)]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"{n}.jpg" for n in names]
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"{n}.png" for n in names]
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == names
    assert check_pairs(pairs) == []
    make_synthetic(tmp_path / "png", n=2, size=32, seed=0, image_format="png")
    assert (tmp_path / "png" / "images" / "synth_0000.png").exists()


def test_same_seed_byte_identical_other_seed_differs(tmp_path: Path) -> None:
    make_synthetic(tmp_path / "a", n=8, size=32, seed=5)
    make_synthetic(tmp_path / "b", n=8, size=32, seed=5)
    make_synthetic(tmp_path / "c", n=8, size=32, seed=6)
    a, b, c = (read_all(tmp_path / d) for d in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.startswith("images"))


def test_contents_variety(tmp_path: Path) -> None:
    start = time.perf_counter()
    names = make_synthetic(tmp_path, n=40, size=96, seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"n=40 at 96 px took {elapsed:.2f}s"
    masks = [load_mask(tmp_path / "masks" / f"{n}.png") for n in names]
    images = [load_image(tmp_path / "images" / f"{n}.jpg") for n in names]
    assert all(m.shape == (96, 96) for m in masks) and all(i.shape == (96, 96, 3) for i in images)
    assert all(set(np.unique(m)) <= {0, 255} for m in masks)
    fractions = np.array([(m > 0).mean() for m in masks])
    empty = fractions == 0
    assert 1 <= empty.sum() <= 4  # ~5%
    tiny = (fractions > 0) & (fractions < 0.01)
    assert tiny.sum() >= 2
    border = [m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() for m in masks]
    assert sum(border) >= 8
    assert (fractions > 0.1).sum() >= 10  # plenty of large objects too
    # objects stand out from their background, and backgrounds are not flat
    contrasts = []
    for img, m in zip(images, masks, strict=True):
        obj, bg = m > 0, m == 0
        assert img[bg].std(axis=0).max() > 5
        if obj.sum() > 30:
            contrasts.append(np.abs(img[obj].mean(0) - img[bg].mean(0)).max())
    assert np.median(contrasts) > 40


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SodError):
        make_synthetic(tmp_path, n=0, size=32, seed=0)
    with pytest.raises(SodError):
        make_synthetic(tmp_path, n=2, size=8, seed=0)
    with pytest.raises(SodError):
        make_synthetic(tmp_path, n=2, size=32, seed=0, image_format="gif")
