"""Robust image and mask decoding: any Pillow mode in, uint8 RGB images / uint8 single-channel masks out.

Conventions (shared by `load_image`, `load_mask` and `image_size`):

* EXIF orientation is applied (`ImageOps.exif_transpose`), so arrays come out the way viewers show them.
  A broken EXIF block is ignored (the image is used as stored).
* Alpha is dropped, not composited: the colour stored under a transparent pixel is kept as it is.
  Palette images are expanded through RGBA first, so palettes with transparency decode without warnings.
* 16-bit data (modes ``I;16*``) is scaled to 8 bits with rounding, ``v8 = round(v16 / 257)``
  (0 -> 0, 65535 -> 255). 32-bit integer data (mode ``I``) is taken as 8-bit when all values lie in
  0..255 and as 16-bit otherwise (clipped to 0..65535, then scaled the same way). Float data (mode ``F``)
  is taken as 0..1 when all values lie in [0, 1], else as 0..255 (clipped); NaN becomes 0.
* Pillow's decompression-bomb limit stays on. Files above it raise `SodError`; the limit can be raised
  with the environment variable ``SAM2SOD_MAX_IMAGE_PIXELS`` (a pixel count, or ``none`` to disable it).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from sam2sod.errors import SodError

__all__ = ["MAX_PIXELS_ENV", "image_size", "load_image", "load_mask"]

MAX_PIXELS_ENV = "SAM2SOD_MAX_IMAGE_PIXELS"

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # orientations that swap width and height
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _apply_env_limit() -> None:
    """Set `PIL.Image.MAX_IMAGE_PIXELS` from ``SAM2SOD_MAX_IMAGE_PIXELS`` when that variable is set."""
    value = os.environ.get(MAX_PIXELS_ENV)
    if value is None or not value.strip():
        return
    if value.strip().lower() in ("none", "off", "0"):
        Image.MAX_IMAGE_PIXELS = None
        return
    try:
        limit = int(float(value))
    except ValueError:
        raise SodError(f"{MAX_PIXELS_ENV} must be a pixel count or 'none', got {value!r}") from None
    if limit <= 0:
        raise SodError(f"{MAX_PIXELS_ENV} must be a positive pixel count or 'none', got {value!r}")
    Image.MAX_IMAGE_PIXELS = limit


def _bomb_message(path: Path, what: str, err: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(err))
    pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    limit = Image.MAX_IMAGE_PIXELS
    return (
        f"{what} {path} has {pixels}, more than Pillow's decompression-bomb limit of {limit:,} pixels "
        f"(PIL.Image.MAX_IMAGE_PIXELS). If you trust this file, raise the limit with the environment "
        f"variable {MAX_PIXELS_ENV}=<pixel count> (or {MAX_PIXELS_ENV}=none to disable it), "
        f"or downscale the image."
    )


def _read_error(path: Path, what: str, err: Exception) -> SodError:
    if isinstance(err, FileNotFoundError):
        reason = "file not found"
    elif isinstance(err, IsADirectoryError):
        reason = "it is a folder, not a file"
    else:
        reason = str(err) or type(err).__name__
    return SodError(f"cannot read {what} {path}: {reason}")


def _orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1 when absent or unreadable)."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value)
    except Exception:
        return 1


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[Image.Image]:
    """`Image.open(path)` with Pillow's decompression-bomb limit as an error; any failure while the file is
    open (in here or in the caller's block) becomes a `SodError` naming the file."""
    _apply_env_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SodError(_bomb_message(path, what, err)) from None
    except SodError:
        raise
    except Exception as err:
        raise _read_error(path, what, err) from None


def _open_loaded(path: str | os.PathLike, what: str) -> Image.Image:
    """Decode `path` fully, EXIF orientation applied; every failure becomes a `SodError` naming the file."""
    path = Path(path)
    with _opened(path, what) as im:
        im.load()
        try:
            ImageOps.exif_transpose(im, in_place=True)
        except Exception:
            pass  # broken EXIF: keep the image as stored
        if im.size[0] == 0 or im.size[1] == 0:
            raise ValueError(f"image has zero size {im.size[0]}x{im.size[1]}")
        return im


def _high_depth_to_uint8(im: Image.Image) -> np.ndarray:
    """Single-channel 16/32-bit or float image -> uint8 HxW (see module docstring for the scaling)."""
    arr = np.asarray(im)
    if im.mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
            arr = arr * 255.0
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    if im.mode == "I" and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 255)):
        return arr.astype(np.uint8)
    arr = np.clip(arr, 0, 65535)
    return ((arr + 128) // 257).astype(np.uint8)


def _writable(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable else arr.copy()


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any mode -> RGB, dropping alpha (palettes go through RGBA so their transparency is handled)."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    return im if im.mode == "RGB" else im.convert("RGB")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to a uint8 array of shape (H, W, 3), RGB, in display orientation.

    Grayscale/bilevel are replicated to 3 channels, palette/CMYK/YCbCr are converted, alpha is
    dropped (not composited), high bit depths are scaled as the module docstring says.
    Raises `SodError` naming the file when it cannot be read or is above the decompression-bomb limit.
    """
    im = _open_loaded(path, "image")
    try:
        if im.mode in _HIGH_DEPTH_MODES:
            gray = _high_depth_to_uint8(im)
            return np.repeat(gray[:, :, None], 3, axis=2)
        return _writable(np.asarray(_to_rgb(im)))
    except Exception as err:
        raise _read_error(Path(path), "image", err) from None


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Decode a mask file to a uint8 array of shape (H, W); soft values are kept (no thresholding).

    L is used as is; bilevel '1' becomes 0/255; LA drops alpha; RGB/RGBA/CMYK/palette become RGB and
    then take the per-pixel maximum over the colour channels (not luminance, so a pure red or blue
    object stays 255); 16-bit/32-bit/float are scaled as the module docstring says.
    Raises `SodError` naming the file when it cannot be read.
    """
    im = _open_loaded(path, "mask")
    try:
        if im.mode in _HIGH_DEPTH_MODES:
            return _high_depth_to_uint8(im)
        if im.mode in ("L", "1"):
            return _writable(np.asarray(im.convert("L")))
        if im.mode in ("LA", "La"):
            return _writable(np.asarray(im.getchannel("L")))
        rgb = np.asarray(_to_rgb(im))
        return _writable(rgb.max(axis=2))
    except Exception as err:
        raise _read_error(Path(path), "mask", err) from None


def image_size(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """(H, W) of an image as `load_image`/`load_mask` would return it, reading only the file header.

    EXIF orientations 5-8 swap H and W. For PNG, EXIF stored after the pixel data is not seen here
    (it would need a full decode); such files are still checked when the dataset loads them.
    `what` ("image"/"mask") only changes the wording of errors.
    """
    path = Path(path)
    with _opened(path, what) as im:
        width, height = im.size
        orientation = 1
        if not (im.format == "PNG" and "exif" not in im.info):
            orientation = _orientation(im)
    if orientation in _TRANSPOSED_ORIENTATIONS:
        return width, height
    return height, width
