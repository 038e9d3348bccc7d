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
  Tiles are processed row by row, left to right. The window is separable and the grid is a full product of
  tile rows and columns, so the sum of weights is a product of two 1-D sums; each cell between neighbouring
  tile starts is converted to 8 bits as soon as the last tile covering it is done. The float state is one
  tile plus the strip the next tile row overlaps (a quarter of a tile high); the global pass reads a copy
  shrunk by block means, made band by band.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

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


def _axis_window(start: int, size: int, length: int) -> np.ndarray:
    """(size,) weights of a tile along one axis: a raised-cosine ramp over a quarter of the tile at inner
    borders, 1 at the image border."""
    return _ramp(size, start == 0, start + size == length, size // 4)


def tile_window(tile: Tile, height: int, width: int) -> np.ndarray:
    """(th, tw) float32 weights: a raised-cosine ramp over a quarter of the tile at inner borders, 1 elsewhere."""
    wy = _axis_window(tile.y0, tile.y1 - tile.y0, height)
    wx = _axis_window(tile.x0, tile.x1 - tile.x0, width)
    return np.outer(wy, wx).astype(np.float32)


ProbFn = Callable[[np.ndarray, tuple[int, int]], torch.Tensor]


def tiled_saliency(image: np.ndarray, size: int, prob_fn: ProbFn, tiles: int | str = "auto") -> np.ndarray:
    """uint8 HxW saliency of an HxWx3 uint8 image from a global pass and overlapping tiles.

    `prob_fn(rgb, (h, w))` runs the model on an RGB crop (resized to the model's input inside) and returns its
    probability map (h, w) float in [0, 1] at the given output size. With one tile it is a single global pass.
    Tiles run row by row, left to right; each cell between the starts of neighbouring tiles is written to the
    8-bit map as soon as no later tile covers it, so the float state is one tile plus the strip that the next
    tile row overlaps (`_Blend`).
    """
    height, width = image.shape[:2]
    n = tile_count(height, width, size, tiles)
    if n == 1:
        return _to_uint8(prob_fn(image, (height, width)))
    small = _downscale(image, size)
    glob = prob_fn(small, small.shape[:2]).float().cpu().numpy()  # (h', w'), upsampled cell by cell
    blend = _Blend(tile_grid(height, width, n), height, width, glob)
    th, tw = blend.th, blend.tw
    for r, y0 in enumerate(blend.ys):
        blend.start_row(r)
        for c, x0 in enumerate(blend.xs):
            blend.add(r, c, prob_fn(image[y0:y0 + th, x0:x0 + tw], (th, tw)).float().cpu().numpy())
    return blend.out


def _ends(starts: list[int], length: int) -> list[int]:
    """Where each tile's cells end: the next tile's start (no later tile reaches above it), or the border."""
    return starts[1:] + [length]


class _Blend:
    """Accumulates window-weighted tile maps and writes finished cells of the 8-bit map.

    The window is separable (``w = wy_row (x) wx_col``) and the grid is a full product of tile rows and tile
    columns, so the sum of weights is ``Dy(y) Dx(x)`` (two 1-D arrays). Float state: `acc`, the weighted sum over
    the current tile's columns (th x tw), and `carry`, the sums the earlier tile rows left in the rows the current
    row overlaps ((overlap) x W).
    """

    def __init__(self, grid: list[Tile], height: int, width: int, glob: np.ndarray):
        self.height, self.width, self.glob = height, width, glob.astype(np.float32, copy=False)
        self.ys, self.xs = sorted({t.y0 for t in grid}), sorted({t.x0 for t in grid})
        self.th, self.tw = grid[0].y1 - grid[0].y0, grid[0].x1 - grid[0].x0
        self.y_ends, self.x_ends = _ends(self.ys, height), _ends(self.xs, width)
        self.wy = [_axis_window(y, self.th, height).astype(np.float32) for y in self.ys]
        self.wx = [_axis_window(x, self.tw, width).astype(np.float32) for x in self.xs]
        self.dy, self.dx = _weight_sum(self.ys, self.wy, height), _weight_sum(self.xs, self.wx, width)
        self.out = np.empty((height, width), np.uint8)
        self.next_carry = np.zeros((0, width), np.float32)
        self.acc: np.ndarray | None = None

    def start_row(self, r: int) -> None:
        """Begin tile row `r`: the last row's strip becomes the carry, and the rows this one shares with the
        next tile row go to a fresh strip."""
        self.carry = self.next_carry
        self.next_carry = np.zeros((self.ys[r] + self.th - self.y_ends[r], self.width), np.float32)
        self.acc, self.ax = None, 0

    def add(self, r: int, c: int, p: np.ndarray) -> None:
        """Add tile (r, c)'s probability map (th, tw), then write the cell it finishes."""
        y0, x0, y_end, x_end = self.ys[r], self.xs[c], self.y_ends[r], self.x_ends[c]
        self._slide(x0)
        weighted = np.outer(self.wy[r], self.wx[c])
        weighted *= p
        self.acc += weighted
        rows, cols = y_end - y0, x_end - x0
        self._write(self.acc[:rows, :cols], y0, x0)
        self.next_carry[:, x0:x_end] = self.acc[rows:, :cols]

    def _slide(self, x0: int) -> None:
        """Move `acc` to columns x0:x0+tw, keeping the columns it shares with the last tile; columns entering it
        start from the earlier tile rows' carry."""
        new = np.zeros((self.th, self.tw), np.float32)
        keep = 0
        if self.acc is not None:
            keep = max(0, self.ax + self.tw - x0)
            new[:, :keep] = self.acc[:, x0 - self.ax:]
        new[:self.carry.shape[0], keep:] += self.carry[:, x0 + keep:x0 + self.tw]
        self.acc, self.ax = new, x0

    def _write(self, num: np.ndarray, y0: int, x0: int) -> None:
        """Rows y0:+h, columns x0:+w of the map = mean of the blended tiles and the global map upsampled there."""
        h, w = num.shape
        den = np.outer(self.dy[y0:y0 + h], self.dx[x0:x0 + w]).astype(np.float32)
        g = _upsampled_block(self.glob, y0, y0 + h, x0, x0 + w, self.height, self.width)
        both = (num / den + g) * 0.5
        self.out[y0:y0 + h, x0:x0 + w] = np.clip(np.rint(both * 255), 0, 255).astype(np.uint8)


def _weight_sum(starts: list[int], windows: list[np.ndarray], length: int) -> np.ndarray:
    total = np.zeros(length, np.float64)
    for s, w in zip(starts, windows, strict=True):
        total[s:s + len(w)] += w
    return total


def _lerp(start: int, stop: int, src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear (align_corners=False) sources of output pixels start:stop when `src` pixels grow to `dst`:
    (lower index, upper index, weight of the upper)."""
    pos = np.maximum((np.arange(start, stop) + 0.5) * src / dst - 0.5, 0)
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    return lo, np.minimum(lo + 1, src - 1), (pos - lo).astype(np.float32)


def _upsampled_block(g: np.ndarray, y0: int, y1: int, x0: int, x1: int, height: int, width: int) -> np.ndarray:
    """Rows y0:y1, columns x0:x1 of the (gh, gw) map `g` resized bilinearly to (height, width)."""
    ly, hy, fy = _lerp(y0, y1, g.shape[0], height)
    lx, hx, fx = _lerp(x0, x1, g.shape[1], width)
    rows = g[ly] * (1 - fy)[:, None] + g[hy] * fy[:, None]
    return rows[:, lx] * (1 - fx) + rows[:, hx] * fx


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
