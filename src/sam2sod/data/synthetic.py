"""Deterministic synthetic SOD dataset: textured salient objects on cluttered textured backgrounds.

Each image gets a background (gradient + smooth colour noise + optional stripes + fine noise), a few
low-contrast distractor shapes (not in the mask), then 0-3 salient objects (ellipses, star polygons,
smooth blobs) with their own colour and texture, chosen to stand out from the background. About 5%
of masks are empty, ~10% hold one tiny object, ~25% have an object centred on the image border.
Masks are binary 0/255. Everything is drawn from `numpy.random.default_rng`, so a seed gives
byte-identical files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sam2sod.atomic import atomic_save_image
from sam2sod.errors import SodError

__all__ = ["check_synthetic_size", "make_synthetic", "remove_stale_pairs"]

_KINDS = ("normal", "empty", "tiny", "border")
_NAME_RE = re.compile(r"^synth_\d{4,}\.(jpg|png)$")


def _schedule(n: int, rng: np.random.Generator) -> list[str]:
    """Per-image kind, with at least one empty/tiny/border image once n >= 4, in a seeded order."""
    if n < 4:
        return ["normal"] * n
    n_empty = max(1, round(0.05 * n))
    n_tiny = max(1, round(0.10 * n))
    n_border = max(1, round(0.25 * n))
    kinds = ["empty"] * n_empty + ["tiny"] * n_tiny + ["border"] * n_border
    kinds += ["normal"] * (n - len(kinds))
    return [kinds[i] for i in rng.permutation(n)]


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix stretching n_in samples over n_out pixels."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    eye = np.eye(n_in)
    return np.stack([np.interp(pos, np.arange(n_in), eye[j]) for j in range(n_in)], axis=1)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """Smooth random field HxWxC in [0, 1] from a coarse cells x cells grid, linearly upsampled."""
    grid = rng.random((cells, cells, channels))
    a = _interp_matrix(size, cells)
    return np.einsum("ij,jkc,lk->ilc", a, grid, a)


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size]
    return y.astype(np.float64), x.astype(np.float64)


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """HxW stripes in [-1, 1] with random direction, period and phase."""
    y, x = _coords(size)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.05, 0.3) * size
    return np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))


def _texture(rng: np.random.Generator, size: int, colour: np.ndarray, strength: float) -> np.ndarray:
    """HxWx3 texture around `colour`: flat, stripes, checker, gradient or blotches."""
    kind = rng.integers(5)
    y, x = _coords(size)
    if kind == 0:
        pattern = np.zeros((size, size))
    elif kind == 1:
        pattern = _stripes(rng, size)
    elif kind == 2:
        cell = rng.uniform(0.04, 0.15) * size
        pattern = ((np.floor(x / cell) + np.floor(y / cell)) % 2) * 2 - 1.0
    elif kind == 3:
        angle = rng.uniform(0, 2 * np.pi)
        pattern = ((x * np.cos(angle) + y * np.sin(angle)) / size) * 2 - 0.5
    else:
        pattern = _smooth_noise(rng, size, int(rng.integers(3, 8)), 1)[:, :, 0] * 2 - 1
    tint = rng.uniform(0.5, 1.0, 3)
    return colour + strength * pattern[:, :, None] * tint


def _shape_mask(rng: np.random.Generator, size: int, cy: int, cx: int, radius: float, kind: str) -> np.ndarray:
    """Boolean HxW shape centred on pixel (cy, cx); the centre pixel is always inside."""
    y, x = _coords(size)
    dy, dx = y - cy, x - cx
    if kind == "ellipse":
        angle = rng.uniform(0, np.pi)
        a, b = radius, radius * rng.uniform(0.45, 1.0)
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if kind == "polygon":
        k = int(rng.integers(4, 10))
        step = 2 * np.pi / k
        angles = rng.uniform(0, 2 * np.pi) + step * np.arange(k) + rng.uniform(-0.25, 0.25, k) * step
        radii = radius * rng.uniform(0.55, 1.0, k)
        points = [(cx + r * np.cos(t), cy + r * np.sin(t)) for r, t in zip(radii, angles, strict=True)]
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).polygon(points, fill=1)
        out = np.asarray(canvas).astype(bool)
        out[cy, cx] = True
        return out
    # smooth blob: star-convex with a low-order Fourier radius r(theta) >= 0.4 * radius
    theta = np.arctan2(dy, dx)
    r = np.ones_like(theta)
    for order in range(2, 6):
        r += rng.uniform(0, 0.3 / order * 2) * np.cos(order * theta + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.4) * radius
    return np.hypot(dy, dx) <= r


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cluttered HxWx3 float background in [0, 1] with low-contrast distractors."""
    y, x = _coords(size)
    c0, c1 = rng.random(3), rng.random(3)
    angle = rng.uniform(0, 2 * np.pi)
    t = ((x * np.cos(angle) + y * np.sin(angle)) / size + 1) / 2
    bg = c0 + (c1 - c0) * t[:, :, None] * rng.uniform(0.3, 1.0)
    bg = bg * 0.6 + 0.4 * _smooth_noise(rng, size, int(rng.integers(3, 9)), 3)
    if rng.random() < 0.6:
        bg += rng.uniform(0.04, 0.15) * _stripes(rng, size)[:, :, None] * rng.uniform(0.3, 1.0, 3)
    for _ in range(int(rng.integers(2, 7))):
        cy, cx = (int(v) for v in rng.integers(0, size, 2))
        shape = _shape_mask(rng, size, cy, cx, rng.uniform(0.05, 0.25) * size, str(rng.choice(["ellipse", "polygon"])))
        colour = bg[cy, cx] + rng.normal(0, 0.08, 3)
        tex = _texture(rng, size, colour, rng.uniform(0.02, 0.08))
        alpha = rng.uniform(0.4, 0.8)
        bg = np.where(shape[:, :, None], (1 - alpha) * bg + alpha * tex, bg)
    return bg


def _salient_colour(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """Among a few random colours, the one farthest from the mean background colour."""
    candidates = rng.random((8, 3))
    mean = bg.reshape(-1, 3).mean(axis=0)
    return candidates[np.argmax(((candidates - mean) ** 2).sum(axis=1))]


def _render(rng: np.random.Generator, size: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 HxWx3 image, uint8 HxW mask in {0, 255}) of the given kind."""
    image = _background(rng, size)
    mask = np.zeros((size, size), dtype=bool)
    if kind == "empty":
        n_obj = 0
    elif kind == "normal":
        n_obj = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
    else:
        n_obj = 1
    shape_kinds = ["ellipse", "polygon", "blob"]
    for _ in range(n_obj):
        if kind == "tiny":
            radius = max(1.5, rng.uniform(0.02, 0.045) * size)
            cy, cx = (int(v) for v in rng.integers(2, size - 2, 2))
            shape_kind = str(rng.choice(["ellipse", "blob"]))
        elif kind == "border":
            radius = rng.uniform(0.2, 0.4) * size
            along, side = int(rng.integers(0, size)), int(rng.integers(4))
            cy, cx = [(0, along), (size - 1, along), (along, 0), (along, size - 1)][side]
            shape_kind = str(rng.choice(shape_kinds))
        else:
            radius = rng.uniform(0.12, 0.32) * size
            lo, hi = int(radius * 0.7), int(size - radius * 0.7)
            cy, cx = (int(v) for v in rng.integers(lo, max(lo + 1, hi), 2))
            shape_kind = str(rng.choice(shape_kinds))
        shape = _shape_mask(rng, size, cy, cx, radius, shape_kind)
        tex = _texture(rng, size, _salient_colour(rng, image), rng.uniform(0.05, 0.2))
        image = np.where(shape[:, :, None], tex, image)
        mask |= shape
    image = image + rng.normal(0, rng.uniform(0.005, 0.03), image.shape)
    image_u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return image_u8, mask.astype(np.uint8) * 255


# Measured (sizes 16-1024): drawing one image peaks at ~150 bytes per pixel (float64 layers), each name of the
# schedule costs ~400 bytes; a JPEG + PNG pair takes >= ~800 bytes plus >= 0.05 bytes per pixel on disk.
_RENDER_BYTES_PER_PX, _PLAN_BYTES_PER_PAIR = 160, 400
_DISK_BYTES_PER_PAIR, _DISK_BYTES_PER_PX = 700, 0.05


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def check_synthetic_size(out: str | os.PathLike, n: int, size: int) -> None:
    """SodError (one line, the sizes tried and the limits) when `n` pairs of `size` px cannot fit in the
    available memory or on the disk holding `out`; checked before anything is allocated or written."""
    import shutil

    from sam2sod.resources import available_memory_bytes

    need_mem = _RENDER_BYTES_PER_PX * size * size + _PLAN_BYTES_PER_PAIR * n
    avail = available_memory_bytes()
    if avail is not None and need_mem > avail:
        plan = _PLAN_BYTES_PER_PAIR * n
        hint = (f"use an --n up to about {avail // (2 * _PLAN_BYTES_PER_PAIR):,}" if 2 * plan > avail else
                f"use an --image-size up to about {int(((avail - plan) / _RENDER_BYTES_PER_PX) ** 0.5)}")
        raise SodError(f"make-synthetic --n {n} --image-size {size} needs about {_gib(need_mem)} of memory, "
                       f"{_gib(avail)} is available: {hint}")
    part = Path(out).absolute()
    while not part.exists() and part != part.parent:
        part = part.parent
    try:
        free = shutil.disk_usage(part).free
    except OSError:
        return
    need_disk = n * (_DISK_BYTES_PER_PAIR + _DISK_BYTES_PER_PX * size * size)
    if need_disk > free:
        fits = int(free // (_DISK_BYTES_PER_PAIR + _DISK_BYTES_PER_PX * size * size))
        raise SodError(f"make-synthetic --n {n} --image-size {size} needs at least {_gib(need_disk)} on the disk "
                       f"of {out}, "
                       f"{_gib(free)} is free: about --n {fits} pairs of this size fit")


def make_synthetic(out: str | os.PathLike, n: int, size: int, seed: int, image_format: str = "jpg") -> list[str]:
    """Write `n` synthetic pairs, `out/images/NAME.jpg` (or png) + `out/masks/NAME.png`, of size x size.

    Returns the sorted names (``synth_0000``, ...). The same arguments give byte-identical files,
    another seed gives other files. Existing files with other names are left alone.
    """
    if n < 1:
        raise SodError(f"synthetic dataset size n must be >= 1, got {n}")
    if size < 16:
        raise SodError(f"synthetic image size must be >= 16 pixels, got {size}")
    if seed < 0:
        raise SodError(f"seed must be >= 0, got {seed}")
    if image_format not in ("jpg", "png"):
        raise SodError(f"synthetic image_format must be 'jpg' or 'png', got {image_format!r}")
    check_synthetic_size(out, n, size)
    out = Path(out)
    kinds = _schedule(n, np.random.default_rng([seed, 0]))
    image_seqs = np.random.SeedSequence([seed, 1]).spawn(n)
    names = []
    for i, (kind, seq) in enumerate(zip(kinds, image_seqs, strict=True)):
        name = f"synth_{i:04d}"
        image, mask = _render(np.random.default_rng(seq), size, kind)
        atomic_save_image(Image.fromarray(image), out / "images" / f"{name}.{image_format}")
        atomic_save_image(Image.fromarray(mask), out / "masks" / f"{name}.png")
        names.append(name)
    return names


def remove_stale_pairs(out: str | os.PathLike, keep: list[str], image_format: str = "jpg") -> int:
    """Delete `make_synthetic` files (``synth_NNNN.jpg/png`` in images/ and masks/) it would not write now.

    Kept: names in `keep`, as ``images/NAME.<image_format>`` and ``masks/NAME.png``.

    Used when a synthetic dataset is rewritten with fewer pairs, so no stale pair is left beside the new
    ones; files with other names are never touched. Returns how many files were removed.
    """
    keep_set, removed = set(keep), 0
    for sub, suffix in (("images", f".{image_format}"), ("masks", ".png")):
        folder = Path(out) / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            stale = path.stem not in keep_set or path.suffix != suffix
            if _NAME_RE.match(path.name) and stale and path.is_file() and not path.is_symlink():
                path.unlink()
                removed += 1
    return removed
