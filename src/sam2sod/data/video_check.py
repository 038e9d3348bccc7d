"""`datasets check` for a video set: layout found, sequence and annotated-frame counts as registered, every
frame and mask decodable, every mask of its frame's size.

:func:`check_video_set` returns a :class:`VideoSetCheck`, a `sam2sod.data.datasets.check.SetCheck` whose
``n_images`` counts all frames, ``n_masks`` / ``n_pairs`` the annotated frames, and whose problems also name
a sequence-count mismatch, so `format_checks` prints it in the same table as image sets. File keys in
``unreadable`` / ``size_mismatch`` are ``SEQ/FRAME`` (frames) and ``SEQ/FRAME (mask)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sam2sod.data.datasets._threads import run_threads
from sam2sod.data.datasets.registry import VideoDatasetInfo, lookup_video
from sam2sod.data.datasets.set_check import SetCheck
from sam2sod.data.io import load_image, load_mask
from sam2sod.data.video_layouts import find_video_layout, load_video_dataset
from sam2sod.errors import SodError

__all__ = ["VideoSetCheck", "check_video_set", "is_video_set"]


@dataclass
class VideoSetCheck(SetCheck):
    """A `SetCheck` of a video set, with its sequence count."""

    n_sequences: int = 0
    layout: str = ""

    @property
    def expected_sequences(self) -> int | None:
        return self.info.sequences if isinstance(self.info, VideoDatasetInfo) else None

    @property
    def count_mismatch(self) -> bool:
        if self.status != "found":
            return False
        frames_off = self.expected is not None and self.n_pairs != self.expected
        seqs_off = self.expected_sequences is not None and self.n_sequences != self.expected_sequences
        return frames_off or seqs_off

    def problems(self) -> list[str]:
        """Sequence and annotated-frame count mismatches, masks of another size, unreadable files."""
        if self.status != "found":
            return [self.error or self.status]
        out = []
        name = self.info.name if self.info else self.name
        if self.expected_sequences is not None and self.n_sequences != self.expected_sequences:
            out.append(f"found {self.n_sequences} sequences, expected {self.expected_sequences} for {name}")
        if self.expected is not None and self.n_pairs != self.expected:
            out.append(f"found {self.n_pairs} annotated frames, expected {self.expected} for {name}")
        out += [p for p in super().problems() if not p.startswith("found ")]
        if self.size_mismatch:
            out.append(f"{len(self.size_mismatch)} mask(s) of another size than their frame: "
                       f"{', '.join(self.size_mismatch[:5])}")
        return out

    def notes(self) -> list[str]:
        return []


def _decoded_size(item: tuple[Path, str]) -> tuple[int, int]:
    """(H, W) of a frame ("image") or mask after decoding it fully."""
    path, what = item
    array = load_image(path) if what == "image" else load_mask(path)
    return int(array.shape[0]), int(array.shape[1])


def is_video_set(name: str, root: str | os.PathLike) -> bool:
    """True when `name` is a registered video set or `root` holds a video layout."""
    if lookup_video(name) is not None:
        return True
    try:
        return Path(root).is_dir() and find_video_layout(root) is not None
    except SodError:
        return True


def check_video_set(name: str, root: str | os.PathLike, *, role: str = "test", workers: int | None = None,
                    progress: bool = True) -> VideoSetCheck:
    """Check one video set (see the module docstring); every frame and mask is decoded in threads."""
    root = Path(root)
    result = VideoSetCheck(name, root, role, lookup_video(name))  # type: ignore[arg-type]
    if not root.is_dir():
        result.status = "missing folder"
        result.error = f"folder {root} does not exist" if not root.exists() else f"{root} is not a folder"
        return result
    try:
        dataset = load_video_dataset(root, annotated=True)
    except SodError as err:
        result.status = "no layout" if "cannot find a video dataset layout" in str(err) else "error"
        result.error = str(err)
        return result
    result.layout, result.n_sequences = dataset.layout, dataset.n_sequences
    result.n_images, result.n_masks = dataset.n_frames, dataset.n_annotated
    result.n_pairs = dataset.n_annotated
    frames = {f"{v.name}/{n}": (p, "image") for v in dataset.sequences for n, p in (v.frames or ())}
    masks = {f"{v.name}/{n} (mask)": (p, "mask") for v in dataset.sequences for n, p in v.masks.items()}
    sizes: dict[str, tuple[int, int]] = {}
    for key, size, error in run_threads(_decoded_size, {**frames, **masks}, workers=workers, progress=progress,
                                        desc=f"{name} frames"):
        if size is None:
            result.unreadable[key] = error or "unreadable"
        else:
            sizes[key] = size
    result.size_mismatch = sorted(k for k in masks if k in sizes and sizes.get(k[: -len(" (mask)")]) not in
                                  (None, sizes[k]))
    return result
