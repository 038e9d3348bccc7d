"""Find SOD datasets on disk: image/mask folder layouts, image listing and pairing by file stem."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sam2sod.errors import SodError, format_names
from sam2sod.wording import plural

__all__ = [
    "IMAGE_SUFFIXES",
    "KNOWN_LAYOUTS",
    "Pair",
    "count_nested_images",
    "dataset_root_of",
    "find_layout",
    "find_pairs",
    "list_images",
    "match_by_stem",
    "warn_nested",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# (images folder, masks folder) names, matched case-insensitively; "X-Image/X-Mask" is handled apart.
# The last three are the official releases of ECSSD, DUT-OMRON and COD10K-v3 (Train/ and Test/).
_FIXED_LAYOUTS = (
    ("images", "masks"),
    ("Imgs", "GT"),
    ("im", "gt"),
    ("images", "ground_truth_mask"),
    ("DUT-OMRON-image", "pixelwiseGT-new-PNG"),
    ("Image", "GT_Object"),
)
KNOWN_LAYOUTS = tuple(f"{i}/ + {m}/" for i, m in _FIXED_LAYOUTS) + (
    "X-Image/ + X-Mask/ (e.g. DUTS-TR-Image/ + DUTS-TR-Mask/)",
)


@dataclass(frozen=True)
class Pair:
    """One sample: its name (the shared file stem), image path and mask path."""

    name: str
    image: Path
    mask: Path


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _check_folder(folder: Path, label: str) -> None:
    if not folder.exists():
        raise SodError(f"{label} folder {folder} does not exist")
    if not folder.is_dir():
        raise SodError(f"{label} folder {folder} is not a folder")


def _dangling(link: Path) -> str:
    """Why the symbolic link `link` leads to no file: a loop, or a missing target."""
    try:
        link.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop"
    return f"a broken symbolic link (its target {os.readlink(link)} does not exist)"


def _scan(folder: Path, label: str, recursive: bool) -> tuple[dict[str, list[Path]], list[str]]:
    """({name: [paths]}, ignored entry names); names are stems, or 'sub/stem' paths when `recursive`."""
    by_stem: dict[str, list[Path]] = {}
    ignored: list[str] = []
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        try:
            entries = sorted(current.iterdir())
        except OSError as err:
            raise SodError(f"cannot list {label} folder {current}: {err}") from None
        for path in entries:
            if path.name.startswith("."):
                continue
            if recursive and path.is_dir() and not path.is_symlink():
                pending.append((path, f"{prefix}{path.name}/"))
                continue
            if path.is_symlink() and not path.exists():
                print(f"skipped: {path}: {_dangling(path)}", file=sys.stderr)
                ignored.append(prefix + path.name)
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                ignored.append(prefix + path.name)
                continue
            by_stem.setdefault(prefix + path.stem, []).append(path)
    return by_stem, ignored


def list_images(
    folder: str | os.PathLike, label: str = "image", allow_empty: bool = False, *, recursive: bool = False
) -> dict[str, Path]:
    """Image files directly inside `folder`, as {stem: path} sorted by stem.

    Suffixes are matched case-insensitively against `IMAGE_SUFFIXES`; hidden files, sub-folders and
    other files are ignored. With `recursive`, files in (non-hidden) sub-folders are included too and
    named by their relative path without suffix (``sub/a``). Raises `SodError` for a missing folder,
    two files with the same stem (e.g. ``a.jpg`` and ``a.png``), or no image at all unless `allow_empty`.
    `label` ("image", "mask", "prediction") is used in messages.
    """
    folder = Path(folder)
    _check_folder(folder, label)
    by_stem, ignored = _scan(folder, label, recursive)
    duplicates = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
    if duplicates:
        shown = [f"{stem} ({', '.join(p.name for p in paths)})" for stem, paths in duplicates.items()]
        raise SodError(
            f"{_plural(len(duplicates), 'name')} in {label} folder {folder} "
            f"{'is' if len(duplicates) == 1 else 'are'} used by more than one file: "
            f"{format_names(shown)}; keep one file per name"
        )
    if not by_stem and not allow_empty:
        others = f"; it holds {len(ignored)} other entries, e.g. {format_names(ignored, 3)}" if ignored else ""
        nested = count_nested_images(folder) if not recursive else 0
        hint = f"; {nested} image files are in sub-folders (pass --recursive to include them)" if nested else ""
        raise SodError(
            f"no {label} files found in {folder} (looked for {', '.join(IMAGE_SUFFIXES)}; "
            f"hidden files are ignored){others}{hint}"
        )
    return {stem: by_stem[stem][0] for stem in sorted(by_stem)}


def count_nested_images(folder: str | os.PathLike) -> int:
    """Number of image files in the (non-hidden) sub-folders of `folder`: what a non-recursive listing skips."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if Path(dirpath) == Path(folder):
            continue
        count += sum(1 for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES)
    return count


def warn_nested(folder: Path, label: str) -> None:
    """One warning line when a non-recursive listing of `folder` skips image files in its sub-folders."""
    nested = count_nested_images(folder)
    if nested:
        print(f"warning: {plural(nested, label + ' file')} in sub-folders of {folder} are skipped; pass --recursive "
              "to include them", file=sys.stderr)


def _partner_names(name: str) -> set[str]:
    """Lower-case names of the folder that would pair with a folder called `name` in a known layout."""
    lower = name.lower()
    partners = {m.lower() for i, m in _FIXED_LAYOUTS if lower == i.lower()}
    partners |= {i.lower() for i, m in _FIXED_LAYOUTS if lower == m.lower()}
    for own, other in (("-image", "-mask"), ("-mask", "-image")):
        if lower.endswith(own) and len(lower) > len(own):
            partners.add(lower[: -len(own)] + other)
    return partners


def dataset_root_of(folder: str | os.PathLike) -> Path | None:
    """The dataset root when `folder` is the image or mask folder of a known layout (its partner exists)."""
    folder = Path(folder)
    partners = _partner_names(folder.name)
    parent = folder.parent
    if not partners or parent == folder or not folder.is_dir():
        return None
    try:
        siblings = [p for p in parent.iterdir() if p.name.lower() in partners and p.is_dir()]
    except OSError:
        return None
    return parent if siblings else None


def _folders_of(paths: Mapping[str, object]) -> str:
    parents = sorted({str(Path(str(p)).parent) for p in paths.values()})
    return format_names(parents, 2)


def match_by_stem(
    left: Mapping[str, object], right: Mapping[str, object], left_label: str, right_label: str
) -> list[str]:
    """Sorted names present in both mappings; `SodError` if any name is missing on either side.

    The labels are singular nouns ("image", "mask", "prediction"). The message gives the count and
    the first few names for each side, e.g. "3 images have no mask: a, b, c", plus the folders.
    """
    only_left = sorted(set(left) - set(right))
    only_right = sorted(set(right) - set(left))
    if only_left or only_right:
        problems = []
        for missing, label, other in ((only_left, left_label, right_label), (only_right, right_label, left_label)):
            if missing:
                verb = "has" if len(missing) == 1 else "have"
                problems.append(f"{_plural(len(missing), label)} {verb} no {other}: {format_names(missing)}")
        where = []
        if left:
            where.append(f"{left_label}s in {_folders_of(left)}")
        if right:
            where.append(f"{right_label}s in {_folders_of(right)}")
        suffix = f" ({'; '.join(where)})" if where else ""
        raise SodError(
            "; ".join(problems) + suffix + f". Every {left_label} needs a {right_label} with the same file name "
            "(the suffix may differ)."
        )
    return sorted(left)


def find_layout(root: str | os.PathLike) -> tuple[Path, Path]:
    """(images folder, masks folder) of a dataset root, from the layouts in `KNOWN_LAYOUTS`.

    Folder names are matched case-insensitively. Raises `SodError` when no layout or more than one fits.
    """
    root = Path(root)
    _check_folder(root, "dataset")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_lower: dict[str, list[Path]] = {}
    for d in subdirs:
        by_lower.setdefault(d.name.lower(), []).append(d)
    found: list[tuple[Path, Path]] = []
    for img_name, mask_name in _FIXED_LAYOUTS:
        for img in by_lower.get(img_name.lower(), []):
            found.extend((img, mask) for mask in by_lower.get(mask_name.lower(), []))
    for d in subdirs:
        if d.name.lower().endswith("-image") and len(d.name) > len("-image"):
            prefix = d.name[: -len("-image")].lower()
            found.extend((d, mask) for mask in by_lower.get(prefix + "-mask", []))
    if len(found) == 1:
        return found[0]
    if not found:
        seen = format_names([d.name + "/" for d in subdirs], 8) if subdirs else "no sub-folders"
        raise SodError(
            f"cannot find the image and mask folders under {root}: looked for "
            f"{'; '.join(KNOWN_LAYOUTS)} (names are case-insensitive); found {seen}. "
            "Give the images folder and the masks folder explicitly instead."
        )
    shown = ", ".join(f"{i.name}/ + {m.name}/" for i, m in found)
    raise SodError(
        f"more than one image/mask layout under {root}: {shown}. "
        "Give the images folder and the masks folder explicitly instead."
    )


def find_pairs(
    root: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    masks: str | os.PathLike | None = None,
    *,
    recursive: bool = False,
) -> list[Pair]:
    """All (image, mask) pairs of a dataset, sorted by name.

    Give either `root` (layout auto-detected with `find_layout`) or both `images` and `masks` folders
    (relative ones are taken relative to `root` when it is given). Raises `SodError` on empty folders,
    duplicate stems, or images without masks / masks without images. `recursive` includes sub-folders
    (see `list_images`).
    """
    if images is not None or masks is not None:
        if images is None or masks is None:
            given = "images" if images is not None else "masks"
            raise SodError(f"only the {given} folder was given: give both the images and the masks folder")
        base = Path(root) if root is not None else None
        images, masks = Path(images), Path(masks)
        if base is not None:
            images = images if images.is_absolute() else base / images
            masks = masks if masks.is_absolute() else base / masks
    elif root is None:
        raise SodError("give a dataset folder, or an images folder and a masks folder")
    else:
        images, masks = find_layout(root)
    image_files = list_images(images, "image", recursive=recursive)
    mask_files = list_images(masks, "mask", recursive=recursive)
    names = match_by_stem(image_files, mask_files, "image", "mask")
    return [Pair(name, image_files[name], mask_files[name]) for name in names]
