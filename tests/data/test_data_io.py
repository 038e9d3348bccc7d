"""Decoding of every image mode and every read error (sam2sod.data.io)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from sam2sod.data import MAX_PIXELS_ENV, image_size, load_image, load_mask
from sam2sod.errors import SodError


def save(im: Image.Image, path: Path, **kwargs) -> Path:
    im.save(path, **kwargs)
    return path


def test_rgb_png_roundtrip_exact(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = load_image(save(Image.fromarray(arr), tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, arr)


def test_grayscale_image_replicated(tmp_path: Path) -> None:
    arr = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    out = load_image(save(Image.fromarray(arr), tmp_path / "g.png"))
    assert out.shape == (4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], arr)
    np.testing.assert_array_equal(load_mask(tmp_path / "g.png"), arr)  # soft values kept


def palette_image() -> Image.Image:
    im = Image.new("P", (4, 3), 0)
    im.putpalette([10, 20, 30, 200, 0, 0, 0, 90, 40] + [0] * (256 * 3 - 9))
    im.putpixel((1, 1), 1)
    im.putpixel((2, 2), 2)
    return im


@pytest.mark.parametrize("transparency", [0, bytes([0, 255, 128] + [255] * 253)])
def test_palette_with_transparency(tmp_path: Path, transparency: object) -> None:
    path = save(palette_image(), tmp_path / "p.png", transparency=transparency)
    assert Image.open(path).mode == "P"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img, mask = load_image(path), load_mask(path)
    assert tuple(img[0, 0]) == (10, 20, 30)  # alpha dropped, stored colour kept
    assert tuple(img[1, 1]) == (200, 0, 0)
    assert mask[0, 0] == 30 and mask[1, 1] == 200 and mask[2, 2] == 90  # max over RGB


def test_rgba_drops_alpha_and_mask_takes_channel_max(tmp_path: Path) -> None:
    arr = np.zeros((3, 3, 4), np.uint8)
    arr[0, 0] = (100, 50, 25, 0)
    arr[1, 1] = (0, 0, 200, 255)
    path = save(Image.fromarray(arr, "RGBA"), tmp_path / "rgba.png")
    img = load_image(path)
    assert img.shape == (3, 3, 3)
    assert tuple(img[0, 0]) == (100, 50, 25)
    mask = load_mask(path)
    assert mask.shape == (3, 3) and mask[0, 0] == 100 and mask[1, 1] == 200


def test_rgb_mask_is_max_not_luminance(tmp_path: Path) -> None:
    arr = np.zeros((2, 3, 3), np.uint8)
    arr[0, 0] = (255, 0, 0)
    arr[0, 1] = (0, 0, 255)
    arr[1, 2] = (30, 60, 90)
    mask = load_mask(save(Image.fromarray(arr), tmp_path / "m.png"))
    np.testing.assert_array_equal(mask, [[255, 255, 0], [0, 0, 90]])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = save(Image.new("CMYK", (16, 8), (255, 0, 0, 0)), tmp_path / "c.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    img = load_image(path)
    assert img.shape == (8, 16, 3)
    np.testing.assert_allclose(img.reshape(-1, 3).mean(0), (0, 255, 255), atol=6)  # pure cyan
    assert load_mask(path).min() >= 249


def test_16bit_png_scaled(tmp_path: Path) -> None:
    arr = np.array([[0, 255, 4608, 32896, 65535]], dtype=np.uint16)  # round(v / 257)
    path = save(Image.fromarray(arr), tmp_path / "d.png")
    assert Image.open(path).mode.startswith("I;16")
    np.testing.assert_array_equal(load_mask(path), [[0, 1, 18, 128, 255]])
    np.testing.assert_array_equal(load_image(path)[0, :, 1], [0, 1, 18, 128, 255])


def test_32bit_int_and_float_tiff(tmp_path: Path) -> None:
    wide = save(Image.fromarray(np.array([[0, 4608, 65535]], np.int32)), tmp_path / "i16.tif")
    narrow = save(Image.fromarray(np.array([[0, 200]], np.int32)), tmp_path / "i8.tif")
    unit = save(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)), tmp_path / "f.tif")
    assert Image.open(wide).mode == "I" and Image.open(unit).mode == "F"
    np.testing.assert_array_equal(load_mask(wide), [[0, 18, 255]])
    np.testing.assert_array_equal(load_mask(narrow), [[0, 200]])
    np.testing.assert_array_equal(load_mask(unit), [[0, 128, 255]])


def test_bilevel_mask_is_0_255(tmp_path: Path) -> None:
    im = Image.new("1", (3, 2), 0)
    im.putpixel((1, 0), 1)
    mask = load_mask(save(im, tmp_path / "b.png"))
    np.testing.assert_array_equal(mask, [[0, 255, 0], [0, 0, 0]])
    assert load_image(tmp_path / "b.png")[0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".webp"])
def test_other_formats(tmp_path: Path, suffix: str) -> None:
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    arr = np.zeros((6, 4, 3), np.uint8)
    arr[:3] = 255
    kwargs = {"lossless": True} if suffix == ".webp" else {}
    img = load_image(save(Image.fromarray(arr), tmp_path / f"a{suffix}", **kwargs))
    np.testing.assert_array_equal(img, arr)


def exif_rotated(path: Path, mode: str = "RGB") -> Path:
    """Stored 40 wide x 20 high with a red 6x6 square at the stored top-left; EXIF Orientation=6."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:6, :6] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    return save(Image.fromarray(arr).convert(mode), path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    path = exif_rotated(tmp_path / "r.jpg")
    img = load_image(path)
    assert img.shape == (40, 20, 3)  # rotated: H and W swapped
    assert image_size(path) == (40, 20)
    ys, xs = np.nonzero(img[:, :, 0] > 128)
    # stored top-left corner -> displayed top-right corner after a clockwise quarter turn
    assert ys.max() < 8 and xs.min() >= 20 - 8
    assert img[2, 17, 0] > 200 and img[2, 2, 0] < 60
    mask = load_mask(exif_rotated(tmp_path / "rm.jpg", "L"))
    assert mask.shape == (40, 20) and mask[2, 17] > 60 and mask[37, 2] < 20


def test_image_size_reads_header(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (30, 11)), tmp_path / "s.png")
    assert image_size(path) == (11, 30)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_text("this is not an image")
    for fn, what in ((load_image, "image"), (load_mask, "mask"), (image_size, "image")):
        with pytest.raises(SodError, match=f"cannot read {what} ") as err:
            fn(path)
        assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SodError, match="file not found") as err:
        load_image(tmp_path / "gone.jpg")
    assert str(tmp_path / "gone.jpg") in str(err.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = save(Image.fromarray(arr), tmp_path / f"full{suffix}")
    data = full.read_bytes()
    path = tmp_path / f"half{suffix}"
    path.write_bytes(data[: len(data) // 2])
    for fn, what in ((load_image, "image"), (load_mask, "mask")):
        with pytest.raises(SodError, match=f"cannot read {what} ") as err:
            fn(path)
        assert str(path) in str(err.value)


@pytest.mark.parametrize("limit", [100, 3000])  # error (> 2x limit) and warning (> limit) paths
def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    path = save(Image.new("L", (64, 64)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    for fn in (load_image, load_mask, image_size):
        with pytest.raises(SodError) as err:
            fn(path)
        msg = str(err.value)
        assert str(path) in msg and "4,096 pixels" in msg and MAX_PIXELS_ENV in msg
    monkeypatch.setenv(MAX_PIXELS_ENV, "5000")
    assert load_image(path).shape == (64, 64, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(SodError, match=MAX_PIXELS_ENV):
        load_image(path)
