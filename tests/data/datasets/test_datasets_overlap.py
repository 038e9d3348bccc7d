"""Train/test overlap: planted exact and near duplicates are found, distinct images are not, hashes are cached.

The synthetic images of `make_synthetic` share one style (gradient + noise backgrounds, a few shapes), yet
their pHashes stay >= 18 bits apart at 64 px, so they serve as near-misses directly.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from sam2sod.data import list_images, load_image, make_synthetic
from sam2sod.data.datasets import find_overlap, hash_images, match_hashes, overlap_names
from sam2sod.data.datasets import overlap as ov
from sam2sod.errors import SodError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(ov.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def train(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("overlap") / "train"
    make_synthetic(root, n=40, size=64, seed=3)
    return root


def save(array: np.ndarray, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)


def jpeg(array: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def planted(train: Path, test: Path) -> dict[str, str]:
    """Write modified copies of training images to `test/images`; {test name: training name} caught."""
    files = list_images(train / "images")
    names = list(files)
    src = {n: load_image(files[n]) for n in names[:10]}
    h, w = src[names[0]].shape[:2]
    out = test / "images"
    copies = {
        "copy": (names[0], src[names[0]], {}),
        "half": (names[1], np.asarray(Image.fromarray(src[names[1]]).resize((w // 2, h // 2))), {}),
        "larger": (names[2], np.asarray(Image.fromarray(src[names[2]]).resize((w * 3 // 2, h * 3 // 2))), {}),
        "jpeg60": (names[3], jpeg(src[names[3]], 60), {}),
        "jpeg75": (names[4], src[names[4]], {"quality": 75}),
        "bright": (names[5], np.asarray(ImageEnhance.Brightness(Image.fromarray(src[names[5]])).enhance(1.15)), {}),
        "shifted": (names[6], src[names[6]][:, 1:], {}),  # 1 px of 64 cut off the left: a horizontal shift
    }
    for name, (_, array, kw) in copies.items():
        save(array, out / (f"{name}.jpg" if kw else f"{name}.png"), **kw)
    save(src[names[7]][:, ::-1], out / "mirrored.png")  # not caught: pHash is not mirror-invariant
    return {name: orig for name, (orig, _, _) in copies.items()}


def test_planted_duplicates_are_found_and_distinct_images_are_not(train, tmp_path):
    test = tmp_path / "test"
    expected = planted(train, test)
    make_synthetic(tmp_path / "other", n=20, size=64, seed=11)
    for p in (tmp_path / "other" / "images").iterdir():  # distinct images of the same family: near-misses
        p.rename(test / "images" / f"other_{p.name}")
    report = find_overlap(train, test / "images", 10, workers=2)
    assert report.n_train == 40 and report.n_test == len(expected) + 1 + 20
    assert [(p.test, p.train) for p in report.exact] == [("copy", expected["copy"])]
    near = {p.test: p.train for p in report.near}
    assert near == {k: v for k, v in expected.items() if k != "copy"}
    assert all(p.distance <= 10 and p.confirm_distance <= ov.DEFAULT_CONFIRM for p in report.near)
    assert overlap_names(report) == set(expected)
    assert overlap_names(report, near=False) == {"copy"}
    assert not report.unreadable
    lines = ov.describe_overlap(report, "train")
    assert lines[0].startswith("1 test image is an exact duplicate of a train image: copy = ")
    assert lines[1].startswith(f"{len(expected) - 1} test images are near duplicates of train images (pHash within")


def test_no_false_positives_among_40_distinct_images(train):
    hashes, errors = hash_images(list_images(train / "images"), workers=2)
    assert not errors and len(hashes) == 40
    closest = min(ov.hamming(a.phash, b.phash) for a, b in itertools.combinations(hashes.values(), 2))
    assert closest > 2 * ov.DEFAULT_THRESHOLD - 5, closest  # a wide margin below the nearest distinct pair
    names = list(hashes)
    report = match_hashes({n: hashes[n] for n in names[:20]}, {n: hashes[n] for n in names[20:]})
    assert not report.exact and not report.near
    assert not match_hashes(hashes, hashes, threshold=10).near, "each image is only its own exact duplicate"


def test_exact_hash_is_of_pixels_and_shape_not_of_the_file(train, tmp_path):
    image = load_image(next(iter(list_images(train / "images").values())))
    save(image, tmp_path / "a.png")
    save(image, tmp_path / "b.bmp")
    assert ov.exact_hash(load_image(tmp_path / "a.png")) == ov.exact_hash(load_image(tmp_path / "b.bmp"))
    flat = np.zeros((4, 6, 3), np.uint8)
    assert ov.exact_hash(flat) != ov.exact_hash(flat.reshape(6, 4, 3)), "same bytes, other shape"


def test_hashes_are_cached_per_folder_and_refreshed_when_a_file_changes(train, tmp_path, monkeypatch):
    images = list_images(train / "images")
    first, _ = hash_images(images, workers=2)
    assert list((tmp_path / "cache" / "hashes").glob("*.json")), "written under SAM2SOD_CACHE"
    calls = []
    real = ov._hash_file
    monkeypatch.setattr(ov, "_hash_file", lambda p: calls.append(p) or real(p))
    again, _ = hash_images(images, workers=2)
    assert again == first and calls == [], "all from the cache"
    copy = tmp_path / "imgs"
    copy.mkdir()
    for name in list(images)[:3]:
        (copy / images[name].name).write_bytes(images[name].read_bytes())
    hash_images(list_images(copy), workers=2)
    assert len(calls) == 3, "another folder has its own cache"
    target = copy / images[list(images)[0]].name
    save(np.zeros((8, 8, 3), np.uint8), target.with_suffix(".png"))
    target.unlink()
    fresh, _ = hash_images(list_images(copy), workers=2)
    assert len(calls) == 4 and fresh[target.stem].height == 8
    hash_images(list_images(copy), workers=2, recheck=True)
    assert len(calls) == 7, "recheck decodes every file"
    hash_images(list_images(copy), workers=2, cache=False)
    assert len(calls) == 10


def test_a_damaged_cache_is_ignored(train, tmp_path):
    images = dict(list(list_images(train / "images").items())[:2])
    first, _ = hash_images(images)
    for f in (tmp_path / "cache" / "hashes").glob("*.json"):
        f.write_text("{not json")
    assert hash_images(images)[0] == first


def test_unreadable_files_are_reported_not_fatal(train, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = next(iter(list_images(train / "images").values()))
    (folder / "good.jpg").write_bytes(src.read_bytes())
    (folder / "bad.jpg").write_bytes(src.read_bytes()[:200])
    hashes, errors = hash_images(list_images(folder), workers=2)
    assert list(hashes) == ["good"] and list(errors) == ["bad"] and "bad.jpg" in errors["bad"]
    report = find_overlap([src], folder)
    assert report.unreadable.keys() == {"test:bad"} and overlap_names(report) == {"good"}


def test_inputs_and_thresholds(train):
    files = list_images(train / "images")
    two = dict(list(files.items())[:2])
    report = find_overlap(two, list(two.values()), threshold=0)
    assert overlap_names(report) == set(two)
    with pytest.raises(SodError, match="0..64"):
        find_overlap(two, two, threshold=65)


def test_popcount_without_numpy_bitwise_count(monkeypatch):
    x = np.array([0, 1, 2**64 - 1, 0xF0F0], dtype=np.uint64)
    expected = [0, 1, 64, 8]
    assert ov._popcount(x).tolist() == expected
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert ov._popcount(x).tolist() == expected
