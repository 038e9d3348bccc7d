"""Torch dataset over (image, mask) pairs, with up-front header checks and per-sample seeded augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sam2sod.data.discovery import Pair
from sam2sod.data.io import image_size, load_image, load_mask
from sam2sod.data.transforms import Transform
from sam2sod.errors import SodError, format_names

__all__ = ["SODDataset", "check_pairs", "sample_seed"]


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that depends only on (seed, epoch, index), so augmentation ignores worker count."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def check_pairs(pairs: Sequence[Pair], resize_mask: bool = False) -> list[str]:
    """Validate all pairs from file headers only (fast), before any training starts.

    Every file must open and be under the decompression-bomb limit (`SodError` on the first that is
    not). All image/mask size mismatches are collected: with `resize_mask=False` they raise one
    `SodError` giving their count and the first few (names, sizes, files); with `resize_mask=True`
    they are allowed. Returns the names whose mask size differs from the image size (HxW, after EXIF
    orientation). Pixel data is not decoded, so corrupt pixel data is only caught when loaded.
    """
    if not pairs:
        raise SodError("no image/mask pairs to check: the dataset is empty")
    mismatched: list[str] = []
    details: list[str] = []
    for pair in pairs:
        img_hw = image_size(pair.image, "image")
        mask_hw = image_size(pair.mask, "mask")
        if img_hw != mask_hw:
            mismatched.append(pair.name)
            if len(details) < 5:
                details.append(f"{pair.name}: image {_hw(img_hw)} ({pair.image}) vs mask {_hw(mask_hw)} ({pair.mask})")
    if mismatched and not resize_mask:
        more = f"; and {len(mismatched) - len(details)} more" if len(mismatched) > len(details) else ""
        raise SodError(
            f"{len(mismatched)} of {len(pairs)} masks do not have the size (HxW) of their image: "
            + "; ".join(details)
            + more
            + ". Fix the masks, or turn on mask resizing (resize_mask) to resize each mask to its image."
        )
    return mismatched


class SODDataset(Dataset):
    """Dataset of SOD pairs returning ``{image, mask, name, orig_size}``.

    image: float32 3xHxW (in [0, 1] without transform); mask: float32 1xHxW in [0, 1] (soft values
    kept); name: the pair's name; orig_size: (H, W) of the image as decoded, before the transform
    (the default collate turns it into ``[tensor(Hs), tensor(Ws)]``).

    `transform(sample, gen)` receives a `torch.Generator` seeded from (seed, epoch, index): the same
    sample gets the same augmentation for a given seed and epoch, whatever the worker count or
    order. Call `set_epoch` every epoch to get new augmentations. A mask whose size differs from its
    image raises `SodError` unless `resize_mask`, which resizes it to the image (bilinear, soft).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        transform: Transform | None = None,
        resize_mask: bool = False,
        seed: int = 0,
    ) -> None:
        if int(seed) < 0:
            raise SodError(f"seed must be >= 0, got {seed}")
        self.pairs = list(pairs)
        self.transform = transform
        self.resize_mask = resize_mask
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of `epoch` (>= 0)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def generator(self, index: int) -> torch.Generator:
        """The generator the transform gets for `index` in the current epoch."""
        return torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))

    def load(self, index: int) -> dict[str, Any]:
        """Decoded sample before the transform: image 3xHxW and mask 1xHxW float32 in [0, 1]."""
        pair = self.pairs[index]
        image = load_image(pair.image)
        mask = load_mask(pair.mask)
        img_hw, mask_hw = image.shape[:2], mask.shape[:2]
        image_t = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        mask_t = torch.from_numpy(mask)[None].float().div_(255.0)
        if img_hw != mask_hw:
            if not self.resize_mask:
                raise SodError(
                    f"mask {pair.mask} is {_hw(mask_hw)} but its image {pair.image} is {_hw(img_hw)} "
                    "(HxW); fix the mask or turn on mask resizing (resize_mask)"
                )
            mask_t = F.interpolate(
                mask_t[None], size=tuple(img_hw), mode="bilinear", align_corners=False, antialias=True
            )[0].clamp_(0.0, 1.0)
        return {"image": image_t, "mask": mask_t, "name": pair.name, "orig_size": (img_hw[0], img_hw[1])}

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load(index)
        if self.transform is not None:
            sample = self.transform(sample, self.generator(index))
        return sample

    def __repr__(self) -> str:
        shown = format_names(self.names, 3)
        return f"SODDataset({len(self)} pairs: {shown}; seed={self.seed}, epoch={self.epoch})"
