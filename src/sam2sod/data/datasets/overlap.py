"""Train/test overlap: exact duplicates by a hash of the decoded pixels, near duplicates by perceptual hashes.

* exact: sha256 of the shape and the RGB uint8 pixels as `load_image` decodes them, so a copy under another
  name, or in another lossless format (the decoded pixels saved as PNG), matches; a JPEG re-encode does not.
* near: a 64-bit DCT pHash (32x32 grayscale, the 8x8 lowest frequencies against their median) within
  `threshold` bits (Hamming distance), confirmed by a 64-bit difference hash (9x8 grayscale, left < right)
  within `confirm` bits. This catches resized copies, JPEG re-encodes, brightness/contrast changes, shifts of
  up to ~3% of the width and crops of up to ~2% per side; larger crops are often missed, mirrored or rotated
  copies are not caught.

Hashes are computed in threads and cached per folder in ``$SAM2SOD_CACHE`` (default ``~/.cache/sam2sod``),
keyed by file name, size and modification time, so a re-run only hashes new or changed files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn

from sam2sod.atomic import atomic_write_text
from sam2sod.data.datasets._threads import run_threads
from sam2sod.data.discovery import find_layout, list_images
from sam2sod.data.io import load_image
from sam2sod.errors import SodError

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CONFIRM",
    "DEFAULT_THRESHOLD",
    "ImageHash",
    "OverlapPair",
    "OverlapReport",
    "cache_dir",
    "describe_overlap",
    "dhash",
    "exact_hash",
    "find_overlap",
    "hamming",
    "hash_array",
    "hash_images",
    "match_hashes",
    "overlap_names",
    "phash",
]

CACHE_ENV = "SAM2SOD_CACHE"
DEFAULT_THRESHOLD = 10
DEFAULT_CONFIRM = 16
_HASH_VERSION = 1  # bump when a hash changes: old cache files are then ignored
_ENTRY_LEN = 7  # size, mtime_ns, sha256, phash, dhash, height, width
_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class ImageHash:
    """The hashes of one decoded image: `sha256` (hex, of shape + pixels), 64-bit `phash` and `dhash`, and
    its decoded size (`height`, `width`)."""

    sha256: str
    phash: int
    dhash: int
    height: int = 0
    width: int = 0


def exact_hash(rgb: np.ndarray) -> str:
    """sha256 (hex) of an HxWx3 uint8 array: its shape, then its pixel bytes."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    digest = hashlib.sha256("x".join(map(str, arr.shape)).encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def _gray(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).convert("L")
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float64)


def _bits(flags: np.ndarray) -> int:
    return int("".join("1" if f else "0" for f in flags.ravel()), 2)


def phash(rgb: np.ndarray) -> int:
    """64-bit DCT pHash: 2-D DCT of the 32x32 grayscale image, 8x8 lowest frequencies > their median."""
    low = dctn(_gray(rgb, 32, 32), type=2, norm="ortho")[:8, :8]
    return _bits(low > np.median(low))


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash: 9x8 grayscale image, one bit per pixel brighter than its right neighbour."""
    g = _gray(rgb, 9, 8)
    return _bits(g[:, :-1] > g[:, 1:])


def hash_array(rgb: np.ndarray) -> ImageHash:
    """All hashes of a decoded RGB uint8 image."""
    return ImageHash(exact_hash(rgb), phash(rgb), dhash(rgb), int(rgb.shape[0]), int(rgb.shape[1]))


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two 64-bit hashes."""
    return (a ^ b).bit_count()


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POP8[x[..., None].view(np.uint8)].sum(axis=-1, dtype=np.uint8)


def cache_dir() -> Path:
    """``$SAM2SOD_CACHE``, else ``$XDG_CACHE_HOME/sam2sod``, else ``~/.cache/sam2sod``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sam2sod"


class _FolderCache:
    """Hashes of the files of one folder, keyed by file name and valid while size and mtime are unchanged."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        key = hashlib.sha1(str(self.folder).encode()).hexdigest()[:20]
        self.path = cache_dir() / "hashes" / f"{key}.json"
        self.entries: dict[str, list] = {}
        self.dirty = False
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") == _HASH_VERSION and data.get("folder") == str(self.folder):
                self.entries = {k: v for k, v in data["files"].items() if isinstance(v, list) and len(v) == _ENTRY_LEN}

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def get(self, path: Path) -> ImageHash | None:
        entry = self.entries.get(path.name)
        if entry is None or tuple(entry[:2]) != self._stamp(path):
            return None
        try:
            return ImageHash(str(entry[2]), int(entry[3], 16), int(entry[4], 16), int(entry[5]), int(entry[6]))
        except (TypeError, ValueError):  # a damaged entry: hash the file again
            return None

    def put(self, path: Path, value: ImageHash) -> None:
        stamp = self._stamp(path)
        if stamp is not None:
            self.entries[path.name] = [*stamp, value.sha256, f"{value.phash:016x}", f"{value.dhash:016x}",
                                       value.height, value.width]
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        files = {k: v for k, v in self.entries.items() if (self.folder / k).exists()}
        text = json.dumps({"version": _HASH_VERSION, "folder": str(self.folder), "files": files})
        try:
            atomic_write_text(self.path, text)
        except (SodError, OSError) as err:
            print(f"warning: hashes are not cached ({err})", file=sys.stderr)
        self.dirty = False


def _hash_file(path: Path) -> ImageHash:
    return hash_array(load_image(path))


def hash_images(images: Mapping[str, Path], *, workers: int | None = None, progress: bool = False,
                cache: bool = True, recheck: bool = False, desc: str = "hash"
                ) -> tuple[dict[str, ImageHash], dict[str, str]]:
    """({name: hashes}, {name: error}) of images, decoding in threads; unreadable files go to the errors.

    With `cache`, unchanged files take their hashes from the cache and new ones are added to it; `recheck`
    decodes every file all the same (a full read check) and refreshes the cache.
    """
    caches: dict[Path, _FolderCache] = {}
    hashes: dict[str, ImageHash] = {}
    todo: dict[str, Path] = {}
    for name, path in images.items():
        path = Path(path)
        folder_cache = None
        if cache:
            if path.parent not in caches:
                caches[path.parent] = _FolderCache(path.parent)
            folder_cache = caches[path.parent]
        hit = folder_cache.get(path) if folder_cache is not None and not recheck else None
        if hit is not None:
            hashes[name] = hit
        else:
            todo[name] = path
    errors: dict[str, str] = {}
    try:
        for name, value, error in run_threads(_hash_file, todo, workers=workers, progress=progress, desc=desc):
            if value is None:
                errors[name] = error or "unreadable"
                continue
            hashes[name] = value
            if cache:
                caches[todo[name].parent].put(todo[name], value)
    finally:
        for folder_cache in caches.values():
            folder_cache.save()
    return {k: hashes[k] for k in sorted(hashes)}, dict(sorted(errors.items()))


@dataclass(frozen=True)
class OverlapPair:
    """A test image that duplicates a training image: names, Hamming distances (0 for `exact`)."""

    test: str
    train: str
    kind: str  # "exact" | "near"
    distance: int = 0
    confirm_distance: int = 0


@dataclass
class OverlapReport:
    """Duplicates of training images among the test images. `near` lists only test images without an exact
    duplicate; `unreadable` maps names (``train:NAME`` / ``test:NAME``) to why they could not be hashed."""

    exact: list[OverlapPair] = field(default_factory=list)
    near: list[OverlapPair] = field(default_factory=list)
    n_train: int = 0
    n_test: int = 0
    threshold: int = DEFAULT_THRESHOLD
    confirm: int | None = DEFAULT_CONFIRM
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def exact_names(self) -> set[str]:
        return {p.test for p in self.exact}

    @property
    def near_names(self) -> set[str]:
        return {p.test for p in self.near}


def _check_threshold(threshold: int, confirm: int | None) -> None:
    for label, value in (("threshold", threshold), ("confirm threshold", confirm)):
        if value is not None and not 0 <= int(value) <= 64:
            raise SodError(f"the near-duplicate {label} must be a number of bits in 0..64, got {value}")


def match_hashes(train: Mapping[str, ImageHash], test: Mapping[str, ImageHash],
                 threshold: int = DEFAULT_THRESHOLD, confirm: int | None = DEFAULT_CONFIRM) -> OverlapReport:
    """Exact and near duplicates between two sets of hashes (see `find_overlap`)."""
    _check_threshold(threshold, confirm)
    report = OverlapReport(n_train=len(train), n_test=len(test), threshold=threshold, confirm=confirm)
    by_sha: dict[str, list[str]] = {}
    for name, h in train.items():
        by_sha.setdefault(h.sha256, []).append(name)
    for name, h in test.items():
        report.exact += [OverlapPair(name, other, "exact") for other in by_sha.get(h.sha256, [])]
    exact = report.exact_names
    rest = [name for name in test if name not in exact]
    if not rest or not train:
        return report
    train_names = list(train)
    train_p = np.array([train[n].phash for n in train_names], dtype=np.uint64)
    train_d = np.array([train[n].dhash for n in train_names], dtype=np.uint64)
    chunk = max(1, 4_000_000 // len(train_names))
    for start in range(0, len(rest), chunk):
        names = rest[start:start + chunk]
        test_p = np.array([test[n].phash for n in names], dtype=np.uint64)
        dist = _popcount(test_p[:, None] ^ train_p[None, :])
        rows, cols = np.nonzero(dist <= threshold)
        if not len(rows):
            continue
        test_d = np.array([test[names[r]].dhash for r in rows], dtype=np.uint64)
        confirm_dist = _popcount(test_d ^ train_d[cols])
        for r, c, dd in zip(rows.tolist(), cols.tolist(), confirm_dist.tolist(), strict=True):
            if confirm is None or dd <= confirm:
                report.near.append(OverlapPair(names[r], train_names[c], "near", int(dist[r, c]), int(dd)))
    report.near.sort(key=lambda p: (p.distance, p.test, p.train))
    return report


ImageSet = str | os.PathLike | Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]


def _as_images(images: ImageSet) -> dict[str, Path]:
    """{name: path} from a dataset root, an images folder, a {name: path} mapping or a list of files."""
    if isinstance(images, Mapping):
        return {str(k): Path(v) for k, v in images.items()}
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        try:
            folder = find_layout(folder)[0]
        except SodError:
            if not folder.is_dir():
                raise
        return list_images(folder, "image")
    return {Path(p).stem: Path(p) for p in images}


def find_overlap(train_images: ImageSet, test_images: ImageSet, threshold: int = DEFAULT_THRESHOLD, *,
                 confirm: int | None = DEFAULT_CONFIRM, workers: int | None = None, progress: bool = False,
                 cache: bool = True) -> OverlapReport:
    """Test images that duplicate a training image, exactly (same decoded pixels) or nearly (pHash within
    `threshold` bits and, unless `confirm` is None, dHash within `confirm` bits).

    Each side is a dataset root (its images folder is found with `find_layout`), a folder of images, a
    {name: path} mapping (e.g. from `list_images`) or a list of files (named by stem). Unreadable files are
    skipped and listed in `report.unreadable`. Hashes are cached (see the module docstring) unless `cache`
    is False.
    """
    _check_threshold(threshold, confirm)
    train = _as_images(train_images)
    test = _as_images(test_images)
    opts = {"workers": workers, "progress": progress, "cache": cache}
    train_h, train_err = hash_images(train, desc="hash train", **opts)
    test_h, test_err = hash_images(test, desc="hash test", **opts)
    report = match_hashes(train_h, test_h, threshold, confirm)
    report.unreadable = {**{f"train:{k}": v for k, v in train_err.items()},
                         **{f"test:{k}": v for k, v in test_err.items()}}
    return report


def overlap_names(report: OverlapReport, *, near: bool = True) -> set[str]:
    """Names of the test images to leave out: exact duplicates, and near ones unless `near` is False."""
    return report.exact_names | (report.near_names if near else set())


def _count(n: int, kind: str, train_name: str) -> str:
    if n == 1:
        return f"1 test image is {'an' if kind == 'exact' else 'a'} {kind} duplicate of a {train_name} image"
    return f"{n} test images are {kind} duplicates of {train_name} images"


def describe_overlap(report: OverlapReport, train_name: str = "training", limit: int = 3) -> list[str]:
    """Readable lines: counts of test images and the first (test = train) pairs of each kind; empty when
    there is no overlap."""
    lines = []
    if report.exact:
        shown = ", ".join(f"{p.test} = {p.train}" for p in report.exact[:limit])
        more = f" (and {len(report.exact) - limit} more pairs)" if len(report.exact) > limit else ""
        lines.append(f"{_count(len(report.exact_names), 'exact', train_name)}: {shown}{more}")
    if report.near:
        shown = ", ".join(f"{p.test} ~ {p.train} ({p.distance} bits)" for p in report.near[:limit])
        more = f" (and {len(report.near) - limit} more pairs)" if len(report.near) > limit else ""
        lines.append(f"{_count(len(report.near_names), 'near', train_name)} (pHash within "
                     f"{report.threshold} bits): {shown}{more}")
    return lines
