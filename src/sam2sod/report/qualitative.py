"""``qualitative.png``: a grid of image | GT | each method's map, one row per chosen image.

Rows are chosen by an explicit list or automatically (:func:`select_images`): the images on which the
methods disagree most (standard deviation across methods of the per-image MAE), then the first method's
worst images (highest MAE), without duplicates. Every cell of a row is resized to the row height keeping
the image's aspect ratio; columns are labelled on top, rows by the image name on the left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sam2sod.atomic import atomic_save_image
from sam2sod.data.discovery import list_images
from sam2sod.data.io import load_image, load_mask
from sam2sod.errors import SodError, format_names

_PAD = 4
_BG = (255, 255, 255)
_TEXT = (20, 20, 20)


def select_images(mae: Mapping[str, Mapping[str, float]], n: int = 6, reference: str | None = None) -> list[str]:
    """Up to `n` image names: largest disagreement between methods first, then `reference`'s worst.

    Args:
        mae: {method: {image name: per-image MAE}}; only images every method has are considered.
        n: number of rows.
        reference: whose worst cases to show (default: the first method).
    """
    if n < 1:
        raise SodError(f"the number of qualitative rows must be at least 1, got {n}")
    if not mae:
        raise SodError("no per-image scores to choose qualitative images from")
    methods = list(mae)
    reference = methods[0] if reference is None else reference
    if reference not in mae:
        raise SodError(f"reference method {reference!r} is not among {', '.join(methods)}")
    names = sorted(set.intersection(*(set(v) for v in mae.values())))
    if not names:
        raise SodError("the methods share no scored image to show")
    values = np.array([[mae[m][name] for name in names] for m in methods], dtype=np.float64)
    ref = values[methods.index(reference)]
    by_disagreement = sorted(range(len(names)), key=lambda i: (-values[:, i].std(), names[i]))
    by_worst = sorted(range(len(names)), key=lambda i: (-ref[i], names[i]))
    quota = math.ceil(n / 2) if len(methods) > 1 else 0
    chosen: list[int] = []
    for order, limit in ((by_disagreement, quota), (by_worst, n), (by_disagreement, n)):
        for i in order:
            if len(chosen) >= limit:
                break
            if i not in chosen:
                chosen.append(i)
    return [names[i] for i in chosen]


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: Any) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """`text`, shortened with an ellipsis to fit `width` pixels."""
    if _text_width(draw, text, font) <= width:
        return text
    while len(text) > 1 and _text_width(draw, text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def _lookup(folder: Path, label: str, names: Sequence[str]) -> dict[str, Path]:
    files = list_images(folder, label, recursive=any("/" in n for n in names))
    missing = [n for n in names if n not in files]
    if missing:
        raise SodError(f"{label} folder {folder} has no file for {format_names(missing)}")
    return files


def _row_cells(name: str, image: Path, gt: Path, preds: Sequence[Path], height: int) -> list[Image.Image]:
    """The row's cells (RGB, `height` tall, the image's aspect ratio)."""
    rgb = Image.fromarray(load_image(image))
    width = max(1, round(rgb.width * height / rgb.height))
    cells = [rgb.resize((width, height), Image.BILINEAR)]
    for path in (gt, *preds):
        cells.append(Image.fromarray(load_mask(path)).resize((width, height), Image.BILINEAR).convert("RGB"))
    return cells


def write_qualitative(path: str | Path, image_dir: str | Path, gt_dir: str | Path,
                      pred_dirs: Mapping[str, str | Path], *, names: Sequence[str] | None = None,
                      mae: Mapping[str, Mapping[str, float]] | None = None, n: int = 6, row_height: int = 160,
                      font_size: int = 14, title: str | None = None) -> list[str]:
    """Write the qualitative grid to `path` (PNG, atomically); returns the image names shown.

    Args:
        path: output file, e.g. ``OUT/qualitative.png``.
        image_dir, gt_dir: the dataset's images and masks (matched by file stem).
        pred_dirs: {method: folder of 8-bit PNG maps}, in column order.
        names: the images to show; when None they are chosen from `mae` with :func:`select_images`.
        mae: {method: {image name: per-image MAE}} (e.g. ``ImageScores.value_map("MAE")`` per method).
        n: rows when choosing automatically.
        row_height: pixel height of every row.
        title: a line drawn above the grid (e.g. the dataset's name), so the figure says what it shows.
    """
    if not pred_dirs:
        raise SodError("no prediction folders for the qualitative figure")
    if names is None:
        if mae is None:
            raise SodError("give the image names to show, or per-image MAE to choose them")
        first = next(iter(pred_dirs))
        names = select_images(mae, n, reference=first if first in mae else None)
    names = list(dict.fromkeys(names))
    if not names:
        raise SodError("no images to show in the qualitative figure")
    images = _lookup(Path(image_dir), "image", names)
    gts = _lookup(Path(gt_dir), "mask", names)
    preds = {m: _lookup(Path(d), "prediction", names) for m, d in pred_dirs.items()}
    rows = [_row_cells(nm, images[nm], gts[nm], [preds[m][nm] for m in pred_dirs], row_height) for nm in names]

    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    titles = ["Image", "GT", *pred_dirs]
    cell_w = max(max(c.width for c in row) for row in rows)
    cell_w = max(cell_w, min(240, max(_text_width(probe, t, font) for t in titles)))
    label_w = min(240, max(_text_width(probe, nm, font) for nm in names)) + 2 * _PAD
    top = font_size + 3 * _PAD if title else 0
    header_h = top + font_size + 3 * _PAD
    width = label_w + len(titles) * (cell_w + _PAD) + _PAD
    height = header_h + len(rows) * (row_height + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_PAD, _PAD), _fit(draw, title, font, width - 2 * _PAD), fill=_TEXT, font=font)
    for j, column in enumerate(titles):
        text = _fit(draw, column, font, cell_w)
        x0 = label_w + _PAD + j * (cell_w + _PAD)
        draw.text((x0 + (cell_w - _text_width(draw, text, font)) // 2, top + _PAD), text, fill=_TEXT, font=font)
    for i, (nm, row) in enumerate(zip(names, rows, strict=True)):
        y0 = header_h + i * (row_height + _PAD)
        label = _fit(draw, nm, font, label_w - 2 * _PAD)
        draw.text((_PAD, y0 + (row_height - font_size) // 2), label, fill=_TEXT, font=font)
        for j, cell in enumerate(row):
            x0 = label_w + _PAD + j * (cell_w + _PAD)
            canvas.paste(cell, (x0 + (cell_w - cell.width) // 2, y0))
    atomic_save_image(canvas, Path(path), format="PNG")
    return names
