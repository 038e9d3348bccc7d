"""Edge supervision (report 000's edge branch): the edge target from a mask and the Dice loss on it."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .functional import Reduction, dice_loss


def edge_target(mask: Tensor, kernel: int = 5) -> Tensor:
    """Morphological gradient of a ``B,1,H,W`` mask in ``[0, 1]``: dilation minus erosion with a
    ``kernel x kernel`` square (odd), binarised at 0.5 first -> ``B,1,H,W`` in {0, 1}, a band about
    ``kernel - 1`` pixels wide along the object's boundary (empty for an empty or full mask)."""
    if kernel < 3 or kernel % 2 == 0:
        raise ValueError(f"edge kernel must be odd and >= 3, got {kernel}")
    m = (mask.float() > 0.5).float()
    pad = kernel // 2
    dilated = F.max_pool2d(m, kernel, stride=1, padding=pad)
    eroded = 1.0 - F.max_pool2d(1.0 - m, kernel, stride=1, padding=pad)
    return dilated - eroded


def edge_loss(edge_logits: Tensor, mask: Tensor, kernel: int = 5, reduction: Reduction = "mean") -> Tensor:
    """Dice loss of the edge head's logits ``B,1,h,w`` against :func:`edge_target` of ``mask`` (``B,1,H,W``,
    resized to the logits' size first with nearest sampling of the binary edge band)."""
    target = edge_target(mask, kernel)
    if target.shape[-2:] != edge_logits.shape[-2:]:
        target = F.interpolate(target, size=edge_logits.shape[-2:], mode="nearest")
    return dice_loss(edge_logits.float(), target, reduction=reduction)
