"""Stand-ins for the three torchvision transforms sam2's `SAM2ImagePredictor` imports.

PyPI's torchvision does not import beside the CPU torch this project pins, and sam2's predictor needs it
only for ToTensor / Resize / Normalize. `standin_modules()` builds ``torchvision`` and
``torchvision.transforms`` modules with equivalents (Resize as torchvision's tensor path: bilinear with
antialias), for the parity tests and `benchmarks/predict_speed.py` to run sam2's own predictor unmodified.
"""

from __future__ import annotations

import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ToTensor:
    """uint8 HxWx3 -> float 3xHxW in [0, 1]."""

    def __call__(self, img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0)


class Resize(nn.Module):
    """3xHxW -> 3x`size` (bilinear, antialias, as torchvision resizes tensors)."""

    def __init__(self, size) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1])) if not isinstance(size, int) else (int(size), int(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] == self.size[0] and x.shape[-1] == self.size[1]:  # (scriptable: sam2 jit-scripts it)
            return x
        return F.interpolate(x[None], size=self.size, mode="bilinear", align_corners=False, antialias=True)[0]


class Normalize(nn.Module):
    """(x - mean) / std per channel."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def standin_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """(``torchvision``, ``torchvision.transforms``) module objects holding the stand-ins."""
    tv, tr = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    tr.ToTensor, tr.Resize, tr.Normalize = ToTensor, Resize, Normalize
    tv.transforms = tr
    return tv, tr
