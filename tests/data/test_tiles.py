"""Letterbox padding and tiled inference geometry (sam2sod.data.tiles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2sod.data import tiles as T
from sam2sod.errors import SodError


def test_letterbox_keeps_aspect_and_crops_back():
    lb = T.letterbox(300, 600, 64)
    assert (lb.h, lb.w, lb.top, lb.left) == (32, 64, 16, 0)
    canvas = torch.zeros(1, 256, 256)
    canvas[:, 64:192, :] = 1.0  # the image's part at 4x the canvas resolution
    crop = lb.crop(canvas)
    assert crop.shape == (1, 128, 256) and bool((crop == 1).all())
    tall = T.letterbox(1000, 10, 32)
    assert tall.h == 32 and tall.w == 1 and tall.left == 15


@pytest.mark.parametrize(("h", "w", "n"), [(1000, 3000, 3), (4000, 5000, 4), (500, 500, 2), (97, 31, 5)])
def test_tile_grid_covers_with_overlap(h, w, n):
    grid = T.tile_grid(h, w, n)
    cover = np.zeros((h, w), int)
    for t in grid:
        assert 0 <= t.y0 < t.y1 <= h and 0 <= t.x0 < t.x1 <= w
        cover[t.y0:t.y1, t.x0:t.x1] += 1
    assert cover.min() >= 1
    along = len({t.x0 for t in grid}) if w >= h else len({t.y0 for t in grid})
    assert along == n
    if n > 1:
        assert cover.max() >= 2  # neighbours overlap


def test_tile_count_auto_and_checks():
    assert T.tile_count(352, 352, 352, "auto") == 1
    assert T.tile_count(4000, 5000, 352, "auto") == 8  # ceil(5000 / 704)
    assert T.tile_count(10, 10, 352, 3) == 3
    for bad in (0, 65, "many", 2.5, True):
        with pytest.raises(SodError, match=r"--tiles must be auto or an integer in \[1, 64\]"):
            T.tile_count(10, 10, 352, bad)


def test_window_is_one_at_image_border_and_small_at_inner_border():
    grid = T.tile_grid(100, 300, 3)
    first = T.tile_window(grid[0], 100, 300)
    assert first[:, 0].min() == 1.0  # image border: full weight
    assert first[50, -1] < 0.01  # inner border: nearly zero
    assert float(first.min()) > 0


def _vignette_model(calls: list):
    """A fake model: probability = pixel brightness, darkened towards the crop's borders (as real models differ
    near crop borders), so two tiles disagree where they overlap."""

    def prob(rgb: np.ndarray, out_hw: tuple[int, int]) -> torch.Tensor:
        calls.append(rgb.shape[:2])
        x = torch.from_numpy(rgb[..., 0].astype(np.float32) / 255)[None, None]
        x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)[0, 0]
        yy = torch.linspace(-1, 1, out_hw[0])[:, None]
        xx = torch.linspace(-1, 1, out_hw[1])[None, :]
        return x * (1 - 0.3 * (yy ** 2 + xx ** 2) / 2)

    return prob


def _disc(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    lum = np.clip(255 * (1 - r / (0.45 * min(h, w))), 0, 255)  # a soft disc crossing every tile border
    return np.repeat(lum[..., None], 3, axis=2).astype(np.uint8)


def test_tiled_map_has_no_seams():
    h, w = 240, 400
    image = _disc(h, w)
    calls: list = []
    out = T.tiled_saliency(image, 64, _vignette_model(calls), tiles=3).astype(np.float64)
    grid = T.tile_grid(h, w, 3)
    assert len(calls) == len(grid) + 1  # tiles + the global pass
    borders = sorted({t.x1 for t in grid if t.x1 < w} | {t.x0 for t in grid if t.x0 > 0})
    step = np.abs(np.diff(out, axis=1))  # column-to-column change
    inner = np.delete(step, [b - 1 for b in borders], axis=1)
    at_borders = step[:, [b - 1 for b in borders]]
    assert at_borders.max() <= inner.max() + 1  # no step at tile edges beyond the map's own slope
    # the same tiles pasted without the window would leave a visible step
    hard = np.zeros((h, w))
    for t in grid:
        hard[t.y0:t.y1, t.x0:t.x1] = _vignette_model([])(image[t.y0:t.y1, t.x0:t.x1], (t.y1 - t.y0, t.x1 - t.x0))
    hard_step = np.abs(np.diff(hard * 255, axis=1))[:, [b - 1 for b in borders]]
    assert hard_step.max() > 3 * (inner.max() + 1)


def _dense_reference(image: np.ndarray, size: int, n: int) -> np.ndarray:
    """The same blend computed on whole-image float arrays: sum_i w_i p_i / sum_i w_i, averaged with the
    global map upsampled by F.interpolate."""
    h, w = image.shape[:2]
    prob = _vignette_model([])
    num, den = np.zeros((h, w)), np.zeros((h, w))
    for t in T.tile_grid(h, w, n):
        win = T.tile_window(t, h, w)
        num[t.y0:t.y1, t.x0:t.x1] += win * prob(image[t.y0:t.y1, t.x0:t.x1], (t.y1 - t.y0, t.x1 - t.x0)).numpy()
        den[t.y0:t.y1, t.x0:t.x1] += win
    small = T._downscale(image, size)
    glob = prob(small, small.shape[:2])[None, None]
    glob = F.interpolate(glob, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    return np.clip(np.rint((num / den + glob) * 0.5 * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("h, w, n", [(240, 400, 3), (300, 310, 4), (130, 700, 5), (500, 90, 2)])
def test_cell_by_cell_blend_equals_the_dense_blend(h, w, n):
    image = _disc(h, w)
    image[..., 0] = np.roll(image[..., 0], 17, axis=1)  # not symmetric, so a misplaced cell would show
    got = T.tiled_saliency(image, 64, _vignette_model([]), tiles=n).astype(int)
    want = _dense_reference(image, 64, n).astype(int)
    assert got.shape == (h, w)
    assert np.abs(got - want).max() <= 1  # float32 against float64 rounding only
    assert (got == want).mean() > 0.99


def test_working_memory_is_a_tile_and_a_strip_not_a_band():
    import tracemalloc

    h, w, n = 1600, 2400, 8
    image, prob = _disc(h, w), _vignette_model([])
    grid = T.tile_grid(h, w, n)
    th, tw = grid[0].y1 - grid[0].y0, grid[0].x1 - grid[0].x0
    tracemalloc.start()
    T.tiled_saliency(image, 64, prob, tiles=n)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    above_map = peak - h * w  # the uint8 output itself
    starts = sorted({t.y0 for t in grid})
    strip = (th - (starts[1] - starts[0])) * w * 4  # float32 rows shared by two tile rows
    assert above_map <= 2 * strip + 6 * th * tw * 4  # this row's and the next row's strips, a few tiles
    assert above_map < 2 * th * w * 4  # less than float32 sums and weights over one band of tile rows


def test_one_tile_is_the_global_pass():
    image = _disc(50, 70)
    calls: list = []
    out = T.tiled_saliency(image, 64, _vignette_model(calls), tiles="auto")
    assert calls == [(50, 70)] and out.shape == (50, 70) and out.dtype == np.uint8


def test_downscale_is_block_means_band_by_band():
    image = np.arange(7 * 10 * 3, dtype=np.uint8).reshape(7, 10, 3)
    small = T._downscale(image, 2)  # f = ceil(10 / 4) = 3 -> 3 x 4 blocks, the last ones partial
    assert small.shape == (3, 4, 3)
    ref = image[0:3, 0:3].reshape(-1, 3).mean(axis=0)
    np.testing.assert_array_equal(small[0, 0], np.rint(ref).astype(np.uint8))
    corner = image[6:7, 9:10].reshape(-1, 3).mean(axis=0)  # a 1 x 1 edge block
    np.testing.assert_array_equal(small[2, 3], np.rint(corner).astype(np.uint8))
    assert T._downscale(image, 8) is image  # nothing to shrink
