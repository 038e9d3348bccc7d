"""`SetCheck`: what `sam2sod datasets check` found for one set (image sets: `check`, video sets: `video_check`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sam2sod.data.datasets.overlap import ImageHash, OverlapReport, describe_overlap
from sam2sod.data.datasets.registry import DatasetInfo
from sam2sod.errors import format_names

__all__ = ["SetCheck"]


@dataclass
class SetCheck:
    """What `check_set` found for one set. `status`: "found", "missing folder", "no layout" or "error"
    (`error` says why); `unreadable` maps ``images/NAME`` / ``masks/NAME`` to the decoding error."""

    name: str
    root: Path
    role: str = "test"
    info: DatasetInfo | None = None
    status: str = "found"
    error: str = ""
    n_images: int = 0
    n_masks: int = 0
    n_pairs: int = 0
    images_without_masks: list[str] = field(default_factory=list)
    masks_without_images: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    size_mismatch: list[str] = field(default_factory=list)
    overlap: OverlapReport | None = None
    train_name: str = ""
    hashes: dict[str, ImageHash] = field(default_factory=dict, repr=False)

    @property
    def expected(self) -> int | None:
        return self.info.expected if self.info else None

    @property
    def count_mismatch(self) -> bool:
        return self.status == "found" and self.expected is not None and self.n_pairs != self.expected

    def problems(self) -> list[str]:
        """One readable line per problem (empty when all is well)."""
        if self.status != "found":
            return [self.error or self.status]
        out = []
        if self.count_mismatch:
            out.append(f"found {self.n_pairs} image/mask pairs, expected {self.expected} for {self.info.name}")
        for names, what, other in ((self.images_without_masks, "image", "mask"),
                                   (self.masks_without_images, "mask", "image")):
            if names:
                article = "an" if other == "image" else "a"
                out.append(f"{_plural(len(names), what)} without {article} {other}: {format_names(names)}")
        if self.unreadable:
            first = next(iter(self.unreadable.values()))
            out.append(f"{_plural(len(self.unreadable), 'unreadable file')}: {format_names(list(self.unreadable))} "
                       f"(first error: {first})")
        if self.overlap is not None:
            out += describe_overlap(self.overlap, self.train_name)
        return out

    def notes(self) -> list[str]:
        """Findings that are not problems: masks of another size than their image (evaluation resizes them)."""
        if not self.size_mismatch:
            return []
        return [f"{_plural(len(self.size_mismatch), 'mask')} of another size than the image (evaluation resizes "
                f"masks; training needs resize_mask): {format_names(self.size_mismatch)}"]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
