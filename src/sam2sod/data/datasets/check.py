"""`sam2sod datasets check`: is every set where it should be, complete, readable, and apart from the training set?

Per set: the folder and its layout are found, the pair count matches the registry, every image has a mask
and every mask an image, every file decodes fully (in threads), and, given a training set, no test image
duplicates a training image exactly or nearly (see `sam2sod.data.datasets.overlap`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sam2sod.data.datasets._threads import run_threads
from sam2sod.data.datasets.overlap import (
    DEFAULT_CONFIRM,
    DEFAULT_THRESHOLD,
    hash_images,
    match_hashes,
)
from sam2sod.data.datasets.registry import REGISTRY, DatasetInfo, lookup
from sam2sod.data.datasets.resolve import find_datasets_file, load_mapping, resolve_data_args
from sam2sod.data.datasets.set_check import SetCheck
from sam2sod.data.discovery import find_layout, list_images
from sam2sod.data.io import load_mask
from sam2sod.errors import SodError

__all__ = ["SetCheck", "check_datasets", "check_set", "format_checks", "run_check"]


def _layout_hint(info: DatasetInfo | None) -> str:
    if info is None:
        return ""
    shown = "; ".join(str(layout) for layout in info.layouts)
    return f". {info.name} releases use: {shown}"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _mask_size(path: Path) -> tuple[int, int]:
    mask = load_mask(path)
    return int(mask.shape[0]), int(mask.shape[1])


def check_set(name: str, root: str | os.PathLike, *, role: str = "test", workers: int | None = None,
              progress: bool = True, cache: bool = True, recursive: bool = False) -> SetCheck:
    """Check one set (see the module docstring); every file is decoded and the image hashes are kept."""
    from sam2sod.data.video_check import check_video_set, is_video_set  # video sets: own layouts and counts

    if is_video_set(name, root):
        return check_video_set(name, root, role=role, workers=workers, progress=progress)
    root = Path(root)
    result = SetCheck(name, root, role, lookup(name))
    if not root.is_dir():
        result.status = "missing folder"
        result.error = f"folder {root} does not exist" if not root.exists() else f"{root} is not a folder"
        return result
    try:
        images_dir, masks_dir = find_layout(root)
        images = list_images(images_dir, "image", allow_empty=True, recursive=recursive)
        masks = list_images(masks_dir, "mask", allow_empty=True, recursive=recursive)
    except SodError as err:
        result.status = "no layout" if "image and mask folders" in str(err) else "error"
        result.error = str(err) + (_layout_hint(result.info) if result.status == "no layout" else "")
        return result
    result.n_images, result.n_masks = len(images), len(masks)
    result.images_without_masks = sorted(set(images) - set(masks))
    result.masks_without_images = sorted(set(masks) - set(images))
    result.n_pairs = len(set(images) & set(masks))
    opts = {"workers": workers, "progress": progress}
    result.hashes, image_errors = hash_images(images, cache=cache, recheck=True, desc=f"{name} images", **opts)
    mask_sizes: dict[str, tuple[int, int]] = {}
    mask_errors: dict[str, str] = {}
    for key, size, error in run_threads(_mask_size, masks, desc=f"{name} masks", **opts):
        if size is None:
            mask_errors[key] = error or "unreadable"
        else:
            mask_sizes[key] = size
    result.unreadable = {**{_rel(images[k], root): v for k, v in image_errors.items()},
                         **{_rel(masks[k], root): v for k, v in mask_errors.items()}}
    result.size_mismatch = sorted(k for k, h in result.hashes.items()
                                  if k in mask_sizes and mask_sizes[k] != (h.height, h.width))
    return result


def check_datasets(sets: Sequence[tuple[str, str | os.PathLike]], train: tuple[str, str | os.PathLike] | None = None,
                   *, threshold: int = DEFAULT_THRESHOLD, confirm: int | None = DEFAULT_CONFIRM,
                   workers: int | None = None, progress: bool = True, cache: bool = True,
                   recursive: bool = False) -> list[SetCheck]:
    """`check_set` for the training set (first, when given) and each set; then the overlap of every other
    set with the training set. A set with the training set's name or folder is checked once, as train."""
    opts = {"workers": workers, "progress": progress, "cache": cache, "recursive": recursive}
    checks: list[SetCheck] = []
    train_check = None
    if train is not None:
        train_check = check_set(train[0], train[1], role="train", **opts)
        checks.append(train_check)
    for name, root in sets:
        if train is not None and (name == train[0] or Path(root).resolve() == Path(train[1]).resolve()):
            continue
        checks.append(check_set(name, root, role="test", **opts))
    if train_check is not None and train_check.status == "found":
        for check in checks[1:]:
            if check.status == "found":
                check.overlap = match_hashes(train_check.hashes, check.hashes, threshold, confirm)
                check.train_name = train_check.name
    return checks


def _status(check: SetCheck) -> str:
    if check.status != "found":
        return check.status
    if check.count_mismatch:
        return "count mismatch"
    return "found" if not check.problems() else "problems"


def format_checks(checks: Sequence[SetCheck]) -> str:
    """The table (one row per set), then one line per problem and note."""
    header = ("set", "task", "role", "status", "pairs", "expected", "no mask", "no image", "unreadable", "exact",
              "near")
    rows = [header]
    for c in checks:
        counts = [c.n_pairs, len(c.images_without_masks), len(c.masks_without_images), len(c.unreadable)]
        shown = [str(v) if c.status == "found" else "-" for v in counts]
        overlap = [str(len(c.overlap.exact_names)), str(len(c.overlap.near_names))] if c.overlap else ["-", "-"]
        expected = str(c.expected) if c.expected is not None else "-"
        rows.append((c.name, c.info.task if c.info else "-", c.role, _status(c), shown[0], expected, *shown[1:],
                     *overlap))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell.rjust(widths[i]) for i, cell in enumerate(r))
             for r in rows]
    details = [f"{c.name}: {p}" for c in checks for p in c.problems()]
    notes = [f"{c.name}: note: {n}" for c in checks for n in c.notes()]
    if details:
        lines += ["", "problems:", *details]
    if notes:
        lines += ["", *notes]
    return "\n".join(line.rstrip() for line in lines)


def run_check(data: Sequence[str], train: str | None = None, datasets_file: str | os.PathLike | None = None, *,
              threshold: int = DEFAULT_THRESHOLD, workers: int | None = None, progress: bool = True,
              cache: bool = True, recursive: bool = False) -> int:
    """`sam2sod datasets check`: print the table; 0 when all is well, 1 when a problem was found.

    Without `data`, every set of the datasets file is checked. Usage errors raise `SodError`.
    """
    if workers is not None and workers < 1:
        raise SodError(f"--decode-workers must be >= 1, got {workers}")
    if not 0 <= threshold <= 64:
        raise SodError(f"--near-distance must be a number of bits in 0..64, got {threshold}")
    file = find_datasets_file(datasets_file)
    specs = list(data)
    unmapped: list[str] = []
    if not specs:
        if file is None:
            raise SodError("give the sets to check with --data NAME[=DIR], or a datasets file mapping names to "
                           "folders with --datasets FILE or SAM2SOD_DATASETS=FILE")
        mapping = load_mapping(file, from_env=datasets_file is None)
        if not mapping:
            raise SodError(f"datasets file {file} maps no names to folders (e.g. a line `ECSSD: /data/ECSSD`)")
        specs = list(mapping)
        mapped = {lookup(k) for k in mapping}
        unmapped = [name for name, info in REGISTRY.items() if info not in mapped]
    sets = resolve_data_args(specs, datasets_file, must_exist=False)
    train_set = resolve_data_args([train], datasets_file, must_exist=False)[0] if train else None
    checks = check_datasets(sets, train_set, threshold=threshold, workers=workers, progress=progress, cache=cache,
                            recursive=recursive)
    print(format_checks(checks))
    if unmapped:
        print(f"\nnot in {file}: {', '.join(unmapped)}")
    bad = [c.name for c in checks if c.problems()]
    print(f"\n{len(bad)} of {len(checks)} sets have problems: {', '.join(bad)}" if bad
          else f"\nall well: {len(checks)} sets complete and readable" + (", no train/test overlap" if train else ""))
    return 1 if bad else 0
