"""Clips of T consecutive frames from annotated video sequences, for fine-tuning SAM2's memory path.

`ClipDataset(sequences, clip_len, transform, seed)` holds one item per `clip_len` frames of each sequence
(at least one per sequence). Item `i` of epoch `e` draws, from a generator seeded by (seed, e, i) only
(`sample_seed`, as `SODDataset` does: reproducible across resume and worker counts), a start frame among the
starts whose clip holds at least one annotated frame, and one augmentation seed. The training transform then
runs on every frame with a generator re-seeded to that augmentation seed: each transform of
`sam2sod.data.transforms` draws a fixed number of values per call, so every frame of the clip gets the same
flip, rotation, zoom, crop and colour jitter.

An item is ``{"frames": (T,3,S,S) float32, "masks": (T,1,S,S) float32 in [0,1] (zeros where not
annotated), "annotated": (T,) bool, "name": sequence name, "start": first frame index}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sam2sod.data.dataset import sample_seed
from sam2sod.data.io import load_image, load_mask
from sam2sod.data.transforms import Transform
from sam2sod.data.video import Video
from sam2sod.errors import SodError, format_names

__all__ = ["ClipDataset", "eval_chunks", "load_frame"]


def load_frame(video: Video, index: int, resize_mask: bool = False, with_mask: bool = True) -> dict[str, Any]:
    """Frame `index` of `video` before any transform: image (3,H,W) and, if annotated (and `with_mask`),
    mask (1,H,W), both in [0, 1]; "orig_size" (H, W)."""
    assert video.frames is not None
    name, path = video.frames[index]
    image = torch.from_numpy(load_image(path)).permute(2, 0, 1).float().div_(255.0)
    sample: dict[str, Any] = {"image": image, "orig_size": tuple(image.shape[-2:])}
    mask_path = video.masks.get(name) if with_mask else None
    if mask_path is not None:
        mask = torch.from_numpy(load_mask(mask_path))[None].float().div_(255.0)
        if mask.shape[-2:] != image.shape[-2:]:
            if not resize_mask:
                raise SodError(f"mask {mask_path} is {mask.shape[-2]}x{mask.shape[-1]} but its frame {path} is "
                               f"{image.shape[-2]}x{image.shape[-1]} (HxW); fix the mask or set data.resize_mask")
            mask = F.interpolate(mask[None], size=tuple(image.shape[-2:]), mode="bilinear", align_corners=False,
                                 antialias=True)[0].clamp_(0.0, 1.0)
        sample["mask"] = mask
    return sample


def _check_sequences(sequences: Sequence[Video], clip_len: int) -> None:
    if not sequences:
        raise SodError("no training sequences for clip training")
    files = [v.name for v in sequences if v.frames is None]
    if files:
        raise SodError(f"clip training reads frames folders; these sequences are video files: {format_names(files)}")
    short = [f"{v.name} ({len(v.frames)} frames)" for v in sequences if len(v.frames) < clip_len]  # type: ignore[arg-type]
    if short:
        raise SodError(f"config key data.clip_len: {clip_len} is longer than {len(short)} training sequence(s): "
                       f"{format_names(short, 3)}; lower data.clip_len or leave those sequences out")


class ClipDataset(Dataset):
    """Training clips of `clip_len` frames (see the module docstring); `set_epoch` selects new draws."""

    def __init__(self, sequences: Sequence[Video], clip_len: int, transform: Transform | None,
                 seed: int = 0, resize_mask: bool = False) -> None:
        _check_sequences(sequences, clip_len)
        self.sequences, self.clip_len, self.transform = list(sequences), int(clip_len), transform
        self.seed, self.resize_mask, self.epoch = int(seed), resize_mask, 0
        self.items = [k for k, v in enumerate(self.sequences) for _ in range(max(1, len(v.frames) // clip_len))]
        self._starts = [self._annotated_starts(v) for v in self.sequences]

    def _annotated_starts(self, video: Video) -> list[int]:
        """Start frames whose clip holds an annotated frame (every start if none does)."""
        flags = [name in video.masks for name, _ in video.frames]  # type: ignore[union-attr]
        starts = range(len(flags) - self.clip_len + 1)
        good = [s for s in starts if any(flags[s:s + self.clip_len])]
        return good or list(starts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, index: int) -> tuple[int, int]:
        """(start frame, augmentation seed) of item `index` in the current epoch."""
        gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
        starts = self._starts[self.items[index]]
        start = starts[int(torch.randint(len(starts), (), generator=gen))]
        return start, int(torch.randint(2**62, (), generator=gen))

    def __getitem__(self, index: int) -> dict[str, Any]:
        video = self.sequences[self.items[index]]
        start, aug_seed = self.draw(index)
        frames, masks, annotated = [], [], []
        for t in range(start, start + self.clip_len):
            sample = load_frame(video, t, self.resize_mask)
            has = "mask" in sample
            if not has:
                sample["mask"] = torch.zeros_like(sample["image"][:1])
            if self.transform is not None:
                sample = self.transform(sample, torch.Generator().manual_seed(aug_seed))
            frames.append(sample["image"])
            masks.append(sample["mask"] if has else torch.zeros_like(sample["mask"]))
            annotated.append(has)
        return {"frames": torch.stack(frames), "masks": torch.stack(masks),
                "annotated": torch.tensor(annotated, dtype=torch.bool), "name": video.name, "start": start}

    def __repr__(self) -> str:
        return (f"ClipDataset({len(self.sequences)} sequences, {len(self)} clips of {self.clip_len} frames; "
                f"seed={self.seed}, epoch={self.epoch})")


def eval_chunks(video: Video, clip_len: int, transform: Transform
                ) -> Iterator[tuple[list[str], torch.Tensor, tuple[int, int]]]:
    """Consecutive chunks of up to `clip_len` frames of `video`, in order, for validation:
    (frame names, frames (n,3,S,S) through the eval `transform`, original (H, W))."""
    assert video.frames is not None
    n = len(video.frames)
    for start in range(0, n, clip_len):
        names, frames, size = [], [], (0, 0)
        for t in range(start, min(n, start + clip_len)):
            sample = load_frame(video, t, with_mask=False)
            size = sample["orig_size"]
            frames.append(transform(sample, None)["image"])
            names.append(video.frames[t][0])
        yield names, torch.stack(frames), size
