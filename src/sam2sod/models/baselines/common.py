"""Pieces shared by the classical baselines: the model contract, resizing, init and edge maps."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SODBaseline", "he_init", "laplacian_edges", "mask_edges", "resize"]


def resize(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize (``align_corners=False``) of ``B,C,h,w`` to ``B,C,*size``; no-op when equal."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def he_init(module: nn.Module) -> None:
    """He-normal (fan_in, ReLU) convs/linears with zero bias, unit/zero BatchNorm, for decoder modules."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def mask_edges(target: Tensor) -> Tensor:
    """Edge labels from masks: morphological gradient (3x3 dilation - erosion) of ``target > 0.5``.

    ``target: B,1,H,W`` -> ``B,1,H,W`` in ``{0, 1}``, a band about 2 px wide on the object boundary.
    """
    b = (target > 0.5).to(torch.float32)
    dil = F.max_pool2d(b, 3, 1, 1)
    ero = -F.max_pool2d(-b, 3, 1, 1)
    return dil - ero


_LAPLACE = ((-1.0, -1.0, -1.0), (-1.0, 8.0, -1.0), (-1.0, -1.0, -1.0))


def laplacian_edges(x: Tensor) -> Tensor:
    """PFAN's boundary map ``|tanh(laplace(x))|`` (8-neighbour Laplacian, zero-sum kernel, replicate pad).

    ``x: B,1,H,W`` in ``[0, 1]`` -> ``B,1,H,W`` in ``[0, 1)``.
    """
    k = torch.tensor(_LAPLACE, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    return torch.tanh(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)).abs()


class SODBaseline(nn.Module):
    """Base of the baselines: the project's model contract around ``_predict``.

    ``forward(images B,3,H,W, prompts=None, multimask=False)`` -> ``{"logits": B,1,H,W,
    "aux_logits": [B,1,H,W, ...], ...}``; all outputs at the input size. Prompts and ``multimask``
    belong to the SAM2 models: the classical networks are prompt-free and single-mask, so both are ignored.
    Images are expected normalised with the ImageNet mean / std, as for the SAM2 models.
    """

    PAPER_PARAMS: ClassVar[int]
    pretrained_backbone: bool

    def _predict(self, images: Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def forward(self, images: Tensor, prompts: Any = None, multimask: bool = False) -> dict[str, Any]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B,3,H,W, got shape {tuple(images.shape)}")
        return self._predict(images)

    def compute_loss(self, out: dict[str, Any], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError
