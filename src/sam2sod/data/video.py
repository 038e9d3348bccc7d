"""Videos: a folder of frames or a video file, decoded lazily one frame at a time.

* **Frames folder**: ``.jpg`` / ``.jpeg`` / ``.png`` files (case-insensitive; hidden files, sub-folders and
  other files are ignored), ordered by the *last number in the name*: ``00000.jpg``, ``blackswan_00000.jpg``
  and ``frame7.png`` all work. A frame without a number, or two frames with the same number (``1.jpg`` and
  ``001.jpg``, ``a.jpg`` and ``a.png``), is refused: the order would be ambiguous.
* **Video file**: ``.mp4``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``, decoded with PyAV (the optional extra
  ``sam2sod[video]``). Frames are named by their index, ``00000``, ``00001``, ... (five digits, more past
  99999). The first video stream is used; rotation metadata is not applied.

`Video.iter_frames` yields ``(frame name, HxWx3 uint8 RGB)`` and decodes a frame only when it is asked
for, so a video is never held in memory as a whole. Annotated sequences (see
:mod:`sam2sod.data.video_layouts`) also carry ``masks``: {frame name: mask path} for the frames that have one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from sam2sod.data.io import load_image, load_mask
from sam2sod.errors import SodError, format_names
from sam2sod.names import check_stem

__all__ = ["FRAME_SUFFIXES", "VIDEO_SUFFIXES", "Video", "frame_number", "iter_video_file", "list_frames",
           "open_video", "pair_masks", "video_frame_count"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
_LAST_NUMBER = re.compile(r"(\d+)\D*$")


def frame_number(stem: str) -> int | None:
    """The last run of digits in a file stem (``blackswan_00012`` -> 12), None when it holds no digit."""
    found = _LAST_NUMBER.search(stem)
    return int(found.group(1)) if found else None


def _frame_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except FileNotFoundError:
        raise SodError(f"frames folder {folder} does not exist") from None
    except NotADirectoryError:
        raise SodError(f"{folder} is not a folder") from None
    except OSError as err:
        raise SodError(f"cannot list frames folder {folder}: {err.strerror or err}") from None
    return [p for p in entries if not p.name.startswith(".") and p.suffix.lower() in suffixes and p.is_file()]


def list_frames(folder: str | os.PathLike, label: str = "frame",
                suffixes: tuple[str, ...] = FRAME_SUFFIXES) -> list[tuple[str, Path]]:
    """``[(stem, path), ...]`` of the frames in `folder`, in frame-number order (see the module docstring).

    Raises `SodError` for a missing or empty folder, a name without a number, two files with one number,
    or a stem that cannot name an output file. `label` ("frame", "mask") is used in messages.
    """
    folder = Path(folder)
    files = _frame_files(folder, suffixes)
    if not files:
        raise SodError(f"no {label} files in {folder} (looked for {', '.join(suffixes)}; hidden files are ignored)")
    unnumbered = [p.name for p in files if frame_number(p.stem) is None]
    if unnumbered:
        raise SodError(f"{label} names in {folder} must hold a frame number (e.g. 00000.jpg); without one: "
                       f"{format_names(unnumbered)}")
    by_number: dict[int, list[Path]] = {}
    for path in files:
        by_number.setdefault(frame_number(path.stem), []).append(path)  # type: ignore[arg-type]
    clashes = [" and ".join(p.name for p in paths) for paths in by_number.values() if len(paths) > 1]
    if clashes:
        raise SodError(f"{label} files in {folder} share a frame number, so their order is ambiguous: "
                       f"{format_names(clashes, 3)}; keep one file per number")
    ordered = [by_number[n][0] for n in sorted(by_number)]
    return [(check_stem(p.stem, f"{label} name in {folder}"), p) for p in ordered]


def _import_av(path: Path) -> ModuleType:
    try:
        import av
    except ImportError:
        raise SodError(f"reading video file {path} needs PyAV: install sam2sod[video] "
                       "(pip install 'sam2sod[video]')") from None
    return av


def _reason(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if isinstance(err, IsADirectoryError):
        return "it is a folder, not a file"
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _open_container(path: Path) -> Any:
    """An open PyAV input container of `path` (`SodError` naming the file when it cannot be opened)."""
    av = _import_av(path)
    if not path.exists():
        raise SodError(f"cannot read video file {path}: file not found")
    try:
        return av.open(str(path))
    except Exception as err:
        raise SodError(f"cannot read video file {path}: {_reason(err)}") from None


def video_frame_count(path: str | os.PathLike) -> int | None:
    """The frame count a video file's header states (None when it states none); nothing is decoded."""
    path = Path(path)
    container = _open_container(path)
    try:
        streams = container.streams.video
        count = int(streams[0].frames) if streams else 0
        return count or None
    finally:
        container.close()


def iter_video_file(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, HxWx3 uint8 RGB)`` for each frame of a video file, decoded one at a time (names ``00000``, ...).

    Raises `SodError` naming the file when PyAV is missing, the file is missing or unreadable, it has no
    video stream, a frame cannot be decoded, or it holds no frame at all.
    """
    path = Path(path)
    container = _open_container(path)
    index = 0
    try:
        streams = container.streams.video
        if not streams:
            raise SodError(f"video file {path} has no video stream")
        for frame in container.decode(streams[0]):
            yield f"{index:05d}", np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            index += 1
    except SodError:
        raise
    except Exception as err:
        raise SodError(f"cannot decode video file {path} at frame {index}: {_reason(err)}") from None
    finally:
        container.close()
    if index == 0:
        raise SodError(f"video file {path} holds no decodable frame")


@dataclass(frozen=True)
class Video:
    """One sequence: a frames folder (`frames` lists it in order) or a video file (`frames` is None).

    Attributes:
        name: the sequence name (names the output folder ``OUT/NAME/``).
        source: the frames folder or the video file.
        frames: ``((frame name, path), ...)`` in frame order; None for a video file.
        masks: {frame name: mask path} of the annotated frames (empty when the sequence has no annotation).
    """

    name: str
    source: Path
    frames: tuple[tuple[str, Path], ...] | None = None
    masks: Mapping[str, Path] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        """True for a video file, False for a frames folder."""
        return self.frames is None

    @property
    def frame_names(self) -> list[str]:
        """Frame names in order (a video file is read through once, without keeping frames, to list them)."""
        if self.frames is not None:
            return [name for name, _ in self.frames]
        return [name for name, _ in iter_video_file(self.source)]

    @property
    def num_frames(self) -> int | None:
        """Number of frames (a video file's header count, None when the header has none)."""
        return len(self.frames) if self.frames is not None else video_frame_count(self.source)

    @property
    def annotated(self) -> list[str]:
        """Names of the frames that have a mask, in frame order."""
        if self.frames is None:
            return sorted(self.masks, key=lambda n: (frame_number(n) or 0, n))
        return [name for name, _ in self.frames if name in self.masks]

    def iter_frames(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(frame name, HxWx3 uint8 RGB)`` in order, each frame decoded when it is reached."""
        if self.frames is None:
            yield from iter_video_file(self.source)
            return
        for name, path in self.frames:
            yield name, load_image(path)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        return self.iter_frames()

    def load_mask(self, frame: str) -> np.ndarray:
        """The HxW uint8 mask of an annotated frame (`SodError` when the frame has none)."""
        path = self.masks.get(frame)
        if path is None:
            raise SodError(f"frame {frame} of sequence {self.name} has no mask")
        return load_mask(path)


def pair_masks(name: str, frames: list[tuple[str, Path]], masks: list[tuple[str, Path]] | dict[str, Path]
               ) -> dict[str, Path]:
    """{frame name: mask path} pairing by stem; `SodError` naming the masks that have no frame."""
    masks = dict(masks)
    known = {stem for stem, _ in frames}
    orphans = sorted(str(p) for stem, p in masks.items() if stem not in known)
    if orphans:
        raise SodError(f"sequence {name}: {len(orphans)} mask(s) without a frame of the same name: "
                       f"{format_names(orphans, 3)}")
    return masks


def open_video(path: str | os.PathLike, name: str | None = None) -> Video:
    """A `Video` from a frames folder or a video file (no mask); `name` defaults to the folder / file stem.

    Raises `SodError` for a missing path, an unsupported file type, or a frames folder that
    `list_frames` refuses. A video file is opened once to check that it is readable.
    """
    path = Path(path)
    if not path.exists():
        raise SodError(f"video {path} does not exist (give a frames folder or a {'/'.join(VIDEO_SUFFIXES)} file)")
    seq = check_stem(name if name is not None else (path.stem if path.is_file() else path.resolve().name),
                     "sequence name")
    if path.is_dir():
        return Video(seq, path, tuple(list_frames(path)))
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise SodError(f"{path} is not a video: give a frames folder or a file ending in {', '.join(VIDEO_SUFFIXES)}")
    _open_container(path).close()
    return Video(seq, path)
