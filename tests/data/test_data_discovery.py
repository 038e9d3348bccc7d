"""Layout detection, image listing and stem matching (sam2sod.data.discovery)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2sod.data import find_layout, find_pairs, list_images, match_by_stem
from sam2sod.errors import SodError


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")  # listing does not decode


@pytest.mark.parametrize(
    ("img_dir", "mask_dir"),
    [
        ("images", "masks"),
        ("Imgs", "GT"),
        ("im", "gt"),
        ("DUTS-TR-Image", "DUTS-TR-Mask"),
        ("ECSSD-Image", "ECSSD-Mask"),
        ("Images", "Masks"),  # case-insensitive
        ("imgs", "gt"),
    ],
)
def test_every_layout_is_detected(tmp_path: Path, img_dir: str, mask_dir: str) -> None:
    touch(tmp_path / img_dir, "a.jpg", "b.jpg")
    touch(tmp_path / mask_dir, "a.png", "b.png")
    (tmp_path / "other").mkdir()
    assert find_layout(tmp_path) == (tmp_path / img_dir, tmp_path / mask_dir)
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[0].image == tmp_path / img_dir / "a.jpg"
    assert pairs[0].mask == tmp_path / mask_dir / "a.png"


def test_explicit_folders_absolute_and_relative_to_root(tmp_path: Path) -> None:
    touch(tmp_path / "pics", "x.jpg")
    touch(tmp_path / "labels", "x.png")
    pairs = find_pairs(images=tmp_path / "pics", masks=tmp_path / "labels")
    assert [(p.name, p.image.name, p.mask.name) for p in pairs] == [("x", "x.jpg", "x.png")]
    assert find_pairs(root=tmp_path, images="pics", masks="labels") == pairs
    with pytest.raises(SodError, match="only the images folder"):
        find_pairs(images=tmp_path / "pics")
    with pytest.raises(SodError, match="give a dataset folder"):
        find_pairs()


def test_unknown_layout_lists_what_was_looked_for(tmp_path: Path) -> None:
    touch(tmp_path / "photos", "a.jpg")
    touch(tmp_path / "labels", "a.png")
    with pytest.raises(SodError) as err:
        find_layout(tmp_path)
    msg = str(err.value)
    for expected in ("images/ + masks/", "Imgs/ + GT/", "im/ + gt/", "X-Image/ + X-Mask/", "photos/", "labels/"):
        assert expected in msg
    assert str(tmp_path) in msg


def test_ambiguous_layout(tmp_path: Path) -> None:
    for d in ("images", "masks", "A-Image", "A-Mask"):
        (tmp_path / d).mkdir()
    with pytest.raises(SodError, match="more than one"):
        find_layout(tmp_path)


def test_missing_root_and_file_as_root(tmp_path: Path) -> None:
    with pytest.raises(SodError, match="does not exist"):
        find_layout(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(SodError, match="is not a folder"):
        list_images(tmp_path / "f.txt")


def test_list_images_suffixes_hidden_and_others(tmp_path: Path) -> None:
    names = ["a.JPG", "b.jpeg", "c.png", "d.bmp", "e.tif", "f.TIFF", "g.webp", "h.Png"]
    touch(tmp_path, *names, ".hidden.png", "notes.txt", "anim.gif", "Thumbs.db")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix
    found = list_images(tmp_path)
    assert list(found) == ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert found["f"] == tmp_path / "f.TIFF"


def test_duplicate_stems_name_both_files(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", "a.png", "b.jpg")
    with pytest.raises(SodError) as err:
        list_images(tmp_path)
    msg = str(err.value)
    assert "a.jpg" in msg and "a.png" in msg and str(tmp_path) in msg
    assert "b.jpg" not in msg


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    touch(tmp_path / "masks", "a.png")
    touch(tmp_path / "images", "readme.txt")
    with pytest.raises(SodError) as err:
        find_pairs(tmp_path)
    msg = str(err.value)
    assert "no image files found" in msg and str(tmp_path / "images") in msg and "readme.txt" in msg
    assert list_images(tmp_path / "images", allow_empty=True) == {}


def test_missing_on_both_sides_counts_and_names(tmp_path: Path) -> None:
    touch(tmp_path / "images", "a.jpg", "b.jpg", "c.jpg", "both.jpg")
    touch(tmp_path / "masks", "both.png", "x.png", "y.png")
    with pytest.raises(SodError) as err:
        find_pairs(tmp_path)
    msg = str(err.value)
    assert "3 images have no mask: a, b, c" in msg
    assert "2 masks have no image: x, y" in msg
    assert str(tmp_path / "images") in msg and str(tmp_path / "masks") in msg
    assert "both" not in msg.split("(")[0]


def test_match_by_stem_generic_labels_singular_and_truncation(tmp_path: Path) -> None:
    preds = {f"p{i}": tmp_path / "preds" / f"p{i}.png" for i in range(8)}
    masks = {**{k: tmp_path / "gt" / f"{k}.png" for k in preds}, "extra": tmp_path / "gt" / "extra.png"}
    with pytest.raises(SodError) as err:
        match_by_stem(preds, masks, "prediction", "mask")
    assert "1 mask has no prediction: extra" in str(err.value)
    del masks["extra"], masks["p0"], masks["p1"], masks["p2"], masks["p3"], masks["p4"], masks["p5"]
    with pytest.raises(SodError) as err:
        match_by_stem(preds, masks, "prediction", "mask")
    assert "6 predictions have no mask: p0, p1, p2, p3, p4 (and 1 more)" in str(err.value)
    assert match_by_stem({"b": 1, "a": 2}, {"a": 3, "b": 4}, "x", "y") == ["a", "b"]
