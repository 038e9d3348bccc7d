"""Video datasets: a folder of sequences in one of the layouts VSOD releases use, found by itself.

Detected layouts (folder names are matched case-insensitively):

* ``davis``: ``JPEGImages/480p/SEQ/`` + ``Annotations/480p/SEQ/`` (DAVIS; another single resolution
  folder such as ``Full-Resolution`` is taken when ``480p`` is absent, and ``JPEGImages/SEQ/`` +
  ``Annotations/SEQ/`` without a resolution folder works too).
* ``davsod``: ``SEQ/Imgs/`` + ``SEQ/ground-truth/`` (the unified layout of the DAVSOD toolkit; the mask
  folder may also be called ``GT_object_level`` or ``GT``, looked for in that order).
* ``images-masks``: ``SEQ/images/`` + ``SEQ/masks/`` (sam2sod's own layout).
* ``frames`` (prediction input only, no masks): ``SEQ/`` frames folders and video files directly in the root.

Annotations may be sparse: every frame is listed (and predicted); ``Video.masks`` holds the frames that
have a mask, paired with frames by file stem. A mask without a frame of the same stem is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sam2sod.data.discovery import list_images
from sam2sod.data.video import FRAME_SUFFIXES, VIDEO_SUFFIXES, Video, list_frames, open_video, pair_masks
from sam2sod.errors import SodError, format_names
from sam2sod.names import check_stem

__all__ = ["VIDEO_LAYOUTS", "VideoDataset", "find_video_layout", "is_video_dataset", "load_video_dataset",
           "open_video_input"]

#: Layout name -> how it looks, for messages and docs.
VIDEO_LAYOUTS = {
    "davis": "JPEGImages/480p/SEQ/ + Annotations/480p/SEQ/",
    "davsod": "SEQ/Imgs/ + SEQ/ground-truth/ (or GT_object_level/, GT/)",
    "images-masks": "SEQ/images/ + SEQ/masks/",
}
_SEQ_LAYOUTS = {"davsod": ("imgs", ("ground-truth", "gt_object_level", "gt")),
                "images-masks": ("images", ("masks",))}


@dataclass(frozen=True)
class VideoDataset:
    """The sequences of a video dataset, sorted by name, and the `layout` they were found in."""

    root: Path
    layout: str
    sequences: tuple[Video, ...]

    @property
    def n_sequences(self) -> int:
        return len(self.sequences)

    @property
    def n_frames(self) -> int:
        """All frames (of frames folders; video files count by their header)."""
        return sum(v.num_frames or 0 for v in self.sequences)

    @property
    def n_annotated(self) -> int:
        """Frames with a mask."""
        return sum(len(v.masks) for v in self.sequences)

    def sequence(self, name: str) -> Video:
        for video in self.sequences:
            if video.name == name:
                return video
        names = format_names([v.name for v in self.sequences])
        raise SodError(f"no sequence {name!r} in {self.root}; sequences: {names}")


def _subdirs(folder: Path) -> dict[str, Path]:
    """{lower-case name: path} of the non-hidden sub-folders."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise SodError(f"cannot list folder {folder}: {err.strerror or err}") from None
    return {p.name.lower(): p for p in entries if p.is_dir() and not p.name.startswith(".")}


def _has_files(folder: Path, suffixes: tuple[str, ...]) -> bool:
    try:
        return any(p.suffix.lower() in suffixes and p.is_file() and not p.name.startswith(".")
                   for p in folder.iterdir())
    except OSError:
        return False


def _davis_dirs(root: Path) -> tuple[Path, Path] | None:
    """(frames parent, masks parent) of a DAVIS layout: the folders that hold one folder per sequence."""
    subs = _subdirs(root)
    images, annotations = subs.get("jpegimages"), subs.get("annotations")
    if images is None or annotations is None:
        return None
    resolutions = _subdirs(images)
    if not resolutions:
        return None  # e.g. PASCAL VOC: JPEGImages/ holds images, not sequences
    if any(_has_files(d, FRAME_SUFFIXES) for d in resolutions.values()):
        return images, annotations  # JPEGImages/SEQ/ without a resolution folder
    pick = "480p" if "480p" in resolutions else (next(iter(resolutions)) if len(resolutions) == 1 else None)
    if pick is None:
        shown = ", ".join(d.name for d in resolutions.values()) or "none"
        raise SodError(f"{images} holds no 480p/ folder and not one resolution folder to take instead "
                       f"(found: {shown}); give the resolution folder's parent as a DAVIS root with one resolution")
    masks = _subdirs(annotations).get(pick)
    if masks is None:
        raise SodError(f"DAVIS layout in {root}: {images / resolutions[pick].name} has no partner "
                       f"{annotations / resolutions[pick].name}")
    return resolutions[pick], masks


def _seq_layout_of(folder: Path) -> str | None:
    subs = _subdirs(folder)
    for layout, (images, _) in _SEQ_LAYOUTS.items():
        if images in subs and _has_files(subs[images], FRAME_SUFFIXES):
            return layout
    return None


def find_video_layout(root: str | os.PathLike) -> str | None:
    """The name of the annotated layout of `root` (``davis``, ``davsod``, ``images-masks``), else None.

    Raises `SodError` when sequences mix layouts or a sub-folder matches none while others do.
    """
    root = Path(root)
    if not root.is_dir():
        raise SodError(f"video dataset folder {root} does not exist" if not root.exists()
                       else f"{root} is not a folder")
    if _davis_dirs(root) is not None:
        return "davis"
    found = {name: _seq_layout_of(path) for name, path in _subdirs(root).items()}
    layouts = {v for v in found.values() if v is not None}
    if not layouts:
        return None
    if len(layouts) > 1:
        raise SodError(f"sequences of {root} mix layouts ({', '.join(VIDEO_LAYOUTS[v] for v in sorted(layouts))}); "
                       "use one layout for all")
    strays = [f"{_subdirs(root)[n].name}/" for n, v in found.items() if v is None]
    if strays:
        layout = layouts.pop()
        verb = "does" if len(strays) == 1 else "do"
        raise SodError(f"{root} holds sequences in the layout {VIDEO_LAYOUTS[layout]}, but {format_names(strays)} "
                       f"{verb} not (no {_SEQ_LAYOUTS[layout][0]}/ folder of frames inside)")
    return layouts.pop()


def is_video_dataset(root: str | os.PathLike) -> bool:
    """True when `root` is a folder in one of the annotated video layouts (errors of a broken layout count)."""
    try:
        return Path(root).is_dir() and find_video_layout(root) is not None
    except SodError:
        return True


def _masks_of(name: str, frames: list[tuple[str, Path]], mask_dir: Path | None, annotated: bool) -> dict[str, Path]:
    if mask_dir is None or not mask_dir.is_dir():
        if annotated:
            raise SodError(f"sequence {name} has no mask folder" + (f" {mask_dir}" if mask_dir else ""))
        return {}
    masks = list_images(mask_dir, "mask", allow_empty=not annotated)
    return pair_masks(name, frames, masks)


def _sequence(name: str, frame_dir: Path, mask_dir: Path | None, annotated: bool) -> Video:
    seq = check_stem(name, "sequence name")
    frames = list_frames(frame_dir)
    return Video(seq, frame_dir, tuple(frames), _masks_of(seq, frames, mask_dir, annotated))


def _davis_sequences(root: Path, annotated: bool) -> list[Video]:
    frames_parent, masks_parent = _davis_dirs(root)  # type: ignore[misc]
    mask_dirs = {p.name: p for p in _subdirs(masks_parent).values()}
    return [_sequence(d.name, d, mask_dirs.get(d.name), annotated) for d in _subdirs(frames_parent).values()]


def _per_sequence(root: Path, layout: str, annotated: bool) -> list[Video]:
    images_name, mask_names = _SEQ_LAYOUTS[layout]
    out = []
    for seq_dir in _subdirs(root).values():
        subs = _subdirs(seq_dir)
        mask_dir = next((subs[m] for m in mask_names if m in subs), None)
        out.append(_sequence(seq_dir.name, subs[images_name], mask_dir, annotated))
    return out


def _finish(root: Path, layout: str, videos: list[Video], annotated: bool) -> VideoDataset:
    if not videos:
        raise SodError(f"video dataset {root} ({VIDEO_LAYOUTS.get(layout, layout)}) holds no sequence")
    if annotated:
        bare = [v.name for v in videos if not v.masks]
        if bare:
            raise SodError(f"{len(bare)} sequence(s) of {root} have no mask: {format_names(bare)}")
    return VideoDataset(root, layout, tuple(sorted(videos, key=lambda v: v.name)))


def load_video_dataset(root: str | os.PathLike, *, annotated: bool = True) -> VideoDataset:
    """All sequences of a video dataset in a detected layout (see the module docstring).

    With `annotated` (for scoring), every sequence needs a mask folder with at least one mask; without it
    (for prediction) sequences without masks are kept with empty ``masks``.

    Raises `SodError` when no layout fits (the detected ones are named), a folder is empty, frames are
    ambiguous, or a mask has no frame.
    """
    root = Path(root)
    layout = find_video_layout(root)
    if layout is None:
        seen = format_names([p.name + "/" for p in _subdirs(root).values()], 6) or "no sub-folders"
        raise SodError(f"cannot find a video dataset layout under {root}: looked for "
                       f"{'; '.join(VIDEO_LAYOUTS.values())} (names are case-insensitive); found {seen}")
    loaders: dict[str, Callable[[Path, bool], list[Video]]] = {
        "davis": _davis_sequences,
        "davsod": lambda r, a: _per_sequence(r, "davsod", a),
        "images-masks": lambda r, a: _per_sequence(r, "images-masks", a),
    }
    return _finish(root, layout, loaders[layout](root, annotated), annotated)


def _frames_layout(root: Path) -> list[Video]:
    """Sequences as frames sub-folders and video files directly in `root` (no masks)."""
    videos = [open_video(d, d.name) for d in _subdirs(root).values() if _has_files(d, FRAME_SUFFIXES)]
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                   and not p.name.startswith("."))
    videos += [open_video(p) for p in files]
    names = [v.name for v in videos]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SodError(f"two sequences of {root} have one name (a frames folder and a video file?): "
                       f"{format_names(twice)}")
    return videos


def open_video_input(path: str | os.PathLike) -> VideoDataset:
    """What ``predict --video`` reads: a video file, a frames folder, or a folder of sequences.

    A folder of sequences is an annotated layout (masks kept where present) or the ``frames`` layout:
    frames sub-folders and video files in the folder itself. Raises `SodError` when `path` is none of these.
    """
    path = Path(path)
    if path.is_file() or not path.exists():
        video = open_video(path)
        return VideoDataset(path.parent, "file", (video,))
    if _has_files(path, FRAME_SUFFIXES):
        return VideoDataset(path.parent, "frames-folder", (open_video(path),))
    if find_video_layout(path) is not None:
        return load_video_dataset(path, annotated=False)
    videos = _frames_layout(path)
    if not videos:
        raise SodError(f"no video in {path}: give a video file, a frames folder ({', '.join(FRAME_SUFFIXES)}), "
                       f"or a folder of sequences ({'; '.join(VIDEO_LAYOUTS.values())}; or frames folders / "
                       f"{'/'.join(VIDEO_SUFFIXES)} files)")
    return _finish(path, "frames", videos, annotated=False)
