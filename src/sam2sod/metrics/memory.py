"""How much memory scoring one pair takes, and how many worker processes the machine's memory allows.

:func:`~sam2sod.metrics.pair_scores` keeps, beyond its two uint8 inputs, the boolean mask and the
weighted F-measure's distance-transform indices (8 bytes per pixel; scipy also makes a transient int64
copy of the mask), and otherwise works in bands of ``BLOCK_PIXELS``. Measured on a 6000x4000 pair:
about 9.5 bytes per pixel over the inputs, 13 for a whole worker (decoding both PNGs included).
:func:`memory_capped_workers` applies :func:`cap_workers` to a list of pairs, reading image sizes from
the file headers only (:func:`image_pixels`, cached).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sam2sod.errors import SodError
from sam2sod.resources import available_memory_bytes

#: Bytes per pixel of the largest image a scoring worker holds at its peak (13 measured, rounded up).
PAIR_BYTES_PER_PIXEL = 16
#: Fixed cost of one worker process that shares nothing with its parent (spawn / forkserver: interpreter,
#: numpy, scipy, Pillow; ~240 MB measured while torch was still imported, kept as a safe upper bound);
#: forked workers share it.
WORKER_BASE_BYTES = 256 * 2**20
#: Share of the available memory that all workers together may plan to use.
MEMORY_SHARE = 0.5


def pair_memory_bytes(pixels: int) -> int:
    """Estimated peak memory of one scoring worker whose largest image has ``pixels`` pixels."""
    return WORKER_BASE_BYTES + PAIR_BYTES_PER_PIXEL * max(int(pixels), 0)


def cap_workers(pixels: int, available: int | None, requested: int) -> int:
    """Workers to run: ``requested``, lowered so that workers x per-worker estimate stays within
    ``MEMORY_SHARE`` of ``available`` bytes; at least 1; ``requested`` when ``available`` is unknown.

    >>> cap_workers(24_000_000, 4 * 2**30, 8)  # 24 MP images, 4 GiB available: 2 GiB / 622 MiB
    3
    """
    requested = max(1, int(requested))
    if available is None:
        return requested
    fit = int(MEMORY_SHARE * available // pair_memory_bytes(pixels))
    return max(1, min(requested, fit))


_PIXELS: dict[tuple[str, int, int], int] = {}  # (path, mtime_ns, size) -> pixels, from the file header


def image_pixels(path: Path, what: str) -> int:
    """H x W of an image file from its header (cached by path, mtime and size; `image_size`'s errors)."""
    try:
        st = os.stat(path)
        key: tuple[str, int, int] | None = (os.fspath(path), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    if key is not None and key in _PIXELS:
        return _PIXELS[key]
    from sam2sod.data.io import image_size

    h, w = image_size(path, what)
    if key is not None:
        if len(_PIXELS) > 200_000:
            _PIXELS.clear()
        _PIXELS[key] = h * w
    return h * w


def memory_capped_workers(items: Sequence[tuple[str, Path, Path]], workers: int, label: str) -> int:
    """`workers`, lowered (with one warning line naming the numbers) when the largest image of `items`
    times that many workers would take more than half the available memory."""
    pixels = 0
    for _name, pred, gt in items:
        for path, what in ((pred, "prediction"), (gt, "mask")):
            try:
                pixels = max(pixels, image_pixels(path, what))
            except SodError:  # reported by the worker that decodes it, in the usual way
                continue
    available = available_memory_bytes()
    capped = cap_workers(pixels, available, workers)
    if capped < workers and available is not None:
        noun = "worker process" if capped == 1 else "worker processes"
        print(f"warning: {label}: {capped} {noun} instead of {workers}: the largest image has {pixels / 1e6:.1f} MP "
              f"(about {pair_memory_bytes(pixels) / 2**30:.2f} GiB per worker) and {available / 2**30:.1f} GiB of "
              "memory is available, of which at most half is planned for", file=sys.stderr)
    return capped
