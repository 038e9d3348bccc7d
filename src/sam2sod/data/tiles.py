"""Geometry for images that are not the model's square: letterbox padding and overlapping tiles.

* **pad** (`letterbox`): the image is scaled so its longer side is the model's size S, keeping the aspect
  ratio, and centred on an SxS canvas filled with SAM2's mean colour (zero after normalisation). The map is
  cropped back to the image's part of the canvas (`Letterbox.crop`) and then resized to the original size.
* **tiles** (`tile_grid` + `tiled_saliency`): for images larger than the model's input. A global pass at the
  model's size gives the context; overlapping tiles (each resized to S) give the detail. Tile maps are
  blended with a smooth window (a raised cosine that falls to ``1e-6`` at inner tile borders and stays 1 at
  the image border), so no tile edge leaves a step. The result is the mean of the blended tile map and the
  upsampled global map: ``p = (p_global + sum_i w_i p_i / sum_i w_i) / 2``.
  ``tiles="auto"`` picks n tiles along the longer side with ``n = ceil(L / (2 S))`` (each tile is at most
  twice the model's size before resizing; n = 1 means no tiling); an integer fixes n. Neighbours overlap
  by a quarter of a tile.
  Tiles are processed one row of tiles at a time and each finished band of rows is converted to 8 bits at
  once; the global pass reads a copy shrunk by block means, made band by band. Working memory grows with the
  tile size and the image width, not with the image's area.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sam2sod.errors import SodError

__all__ = ["Letterbox", "Tile", "letterbox", "tile_count", "tile_grid", "tile_window", "tiled_saliency"]

_FLOOR = 1e-6


@dataclass(frozen=True)
class Letterbox:
    """Where an HxW image sits on the SxS canvas: resized to (h, w) at offset (top, left)."""

    size: int
    h: int
    w: int
    top: int
    left: int

    def crop(self, canvas: torch.Tensor) -> torch.Tensor:
        """(..., S', S') map of the canvas (any resolution S') -> (..., h', w') part that shows the image."""
        s = canvas.shape[-1] / self.size
        t, l = round(self.top * s), round(self.left * s)
        return canvas[..., t:t + max(1, round(self.h * s)), l:l + max(1, round(self.w * s))]


def letterbox(height: int, width: int, size: int) -> Letterbox:
    """The letterbox of an image of `height` x `width` on a `size` x `size` canvas (aspect ratio kept)."""
    scale = size / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    return Letterbox(size, h, w, (size - h) // 2, (size - w) // 2)


@dataclass(frozen=True)
class Tile:
    """Rows y0:y1 and columns x0:x1 of the image; `row` is the tile row it belongs to."""

    y0: int
    y1: int
    x0: int
    x1: int
    row: int


def tile_count(height: int, width: int, size: int, tiles: int | str) -> int:
    """Tiles along the longer side: ``ceil(L / (2 S))`` for "auto", else `tiles` (1-64)."""
    if tiles == "auto":
        return max(1, math.ceil(max(height, width) / (2 * size)))
    if isinstance(tiles, bool) or not isinstance(tiles, int) or not 1 <= tiles <= 64:
        raise SodError(f"--tiles must be auto or an integer in [1, 64], got {tiles!r}")
    return tiles


def _starts(length: int, tile: int) -> list[int]:
    if tile >= length:
        return [0]
    n = math.ceil((length - tile) / (0.75 * tile)) + 1
    return [round(k * (length - tile) / (n - 1)) for k in range(n)]


def tile_grid(height: int, width: int, n: int) -> list[Tile]:
    """Square-ish overlapping tiles covering the image, `n` along the longer side, in row-major order."""
    side = math.ceil(max(height, width) / (1 + 0.75 * (n - 1))) if n > 1 else max(height, width)
    th, tw = min(side, height), min(side, width)
    out = []
    for r, y in enumerate(_starts(height, th)):
        out.extend(Tile(y, y + th, x, x + tw, r) for x in _starts(width, tw))
    return out


def _ramp(length: int, at_start: bool, at_end: bool, overlap: int) -> np.ndarray:
    w = np.ones(length, np.float64)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap) if overlap > 0 else np.ones(0)
    if not at_start:
        w[:overlap] = np.maximum(ramp, _FLOOR)
    if not at_end:
        w[length - overlap:] = np.maximum(ramp[::-1], _FLOOR)
    return w


def tile_window(tile: Tile, height: int, width: int) -> np.ndarray:
    """(th, tw) float32 weights: a raised-cosine ramp over a quarter of the tile at inner borders, 1 elsewhere."""
    th, tw = tile.y1 - tile.y0, tile.x1 - tile.x0
    wy = _ramp(th, tile.y0 == 0, tile.y1 == height, th // 4)
    wx = _ramp(tw, tile.x0 == 0, tile.x1 == width, tw // 4)
    return np.outer(wy, wx).astype(np.float32)


ProbFn = Callable[[np.ndarray, tuple[int, int]], torch.Tensor]


def tiled_saliency(image: np.ndarray, size: int, prob_fn: ProbFn, tiles: int | str = "auto") -> np.ndarray:
    """uint8 HxW saliency of an HxWx3 uint8 image from a global pass and overlapping tiles.

    `prob_fn(rgb, (h, w))` runs the model on an RGB crop (resized to the model's input inside) and returns its
    probability map (h, w) float in [0, 1] at the given output size. With one tile it is a single global pass.
    """
    height, width = image.shape[:2]
    n = tile_count(height, width, size, tiles)
    if n == 1:
        return _to_uint8(prob_fn(image, (height, width)))
    grid = tile_grid(height, width, n)
    small = _downscale(image, size)
    glob = prob_fn(small, small.shape[:2])  # (h', w') at the model's scale; upsampled band by band
    out = np.empty((height, width), np.uint8)
    rows = sorted({t.row for t in grid})
    num = den = None
    band0 = 0
    for r in rows:
        row_tiles = [t for t in grid if t.row == r]
        y0, y1 = row_tiles[0].y0, row_tiles[0].y1
        num, den = _extend(num, den, band0, y0, y1, width)
        for t in row_tiles:
            p = prob_fn(image[t.y0:t.y1, t.x0:t.x1], (t.y1 - t.y0, t.x1 - t.x0)).float().cpu().numpy()
            w = tile_window(t, height, width)
            num[t.y0 - band0:t.y1 - band0, t.x0:t.x1] += w * p
            den[t.y0 - band0:t.y1 - band0, t.x0:t.x1] += w
        nxt = next((t.y0 for t in grid if t.row == r + 1), height)  # rows above the next tile row are final
        done = nxt - band0
        _finish(out, glob, num[:done] / den[:done], band0, height, width)
        num, den, band0 = num[done:], den[done:], nxt
    return out


def _extend(num, den, band0: int, y0: int, y1: int, width: int):
    need = y1 - band0
    if num is None:
        return np.zeros((need, width), np.float32), np.zeros((need, width), np.float32)
    if need > num.shape[0]:
        pad = np.zeros((need - num.shape[0], width), np.float32)
        return np.concatenate([num, pad]), np.concatenate([den, pad.copy()])
    return num, den


def _finish(out: np.ndarray, glob: torch.Tensor, tiled: np.ndarray, y0: int, height: int, width: int) -> None:
    """Write rows y0:y0+len(tiled) of `out` = mean of the tiled map and the global map upsampled there."""
    if tiled.shape[0] == 0:
        return
    gh = glob.shape[0]
    # the global map upsampled to full size, only for these rows (bilinear, align_corners=False geometry)
    ys = (np.arange(y0, y0 + tiled.shape[0]) + 0.5) * gh / height - 0.5
    lo = np.clip(np.floor(ys).astype(int), 0, gh - 1)
    hi = np.clip(lo + 1, 0, gh - 1)
    fy = np.clip(ys - np.floor(ys), 0, 1).astype(np.float32)
    g = glob.float().cpu()
    rows = g[lo] * torch.from_numpy(1 - fy)[:, None] + g[hi] * torch.from_numpy(fy)[:, None]
    rows = F.interpolate(rows[None, None], size=(rows.shape[0], width), mode="bilinear", align_corners=False)[0, 0]
    both = (rows.numpy() + tiled) * 0.5
    out[y0:y0 + tiled.shape[0]] = np.clip(np.rint(both * 255), 0, 255).astype(np.uint8)


def _downscale(image: np.ndarray, size: int) -> np.ndarray:
    """The image shrunk by the integer factor f = ceil(L / (2 `size`)) (f x f block means), for the global pass.

    One band of f rows is averaged at a time, so the working memory is a few rows of the image, never a copy of
    all of it. Blocks at the right and bottom edges average the pixels they hold.
    """
    h, w = image.shape[:2]
    f = math.ceil(max(h, w) / (2 * size))
    if f <= 1:
        return image
    oh, ow = math.ceil(h / f), math.ceil(w / f)
    starts = np.arange(0, w, f)
    widths = np.minimum(starts + f, w) - starts
    out = np.empty((oh, ow, image.shape[2]), np.uint8)
    for r in range(oh):
        band = image[r * f:(r + 1) * f]
        sums = np.add.reduceat(band.sum(axis=0, dtype=np.float64), starts, axis=0)  # (ow, C)
        out[r] = np.clip(np.rint(sums / (band.shape[0] * widths[:, None])), 0, 255).astype(np.uint8)
    return out


def _to_uint8(p: torch.Tensor) -> np.ndarray:
    return p.float().mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
