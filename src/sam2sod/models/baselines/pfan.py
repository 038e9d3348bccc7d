"""PFAN (Zhao & Wu, "Pyramid Feature Attention Network for Saliency Detection", CVPR 2019)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from sam2sod.models.baselines.backbones import VGG16, prepare_backbone
from sam2sod.models.baselines.common import SODBaseline, he_init, laplacian_edges, resize

__all__ = ["CPFE", "PFAN", "ChannelAttention", "SpatialAttention", "build_pfan", "pfan_loss"]


def _bnrelu(c: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))


class CPFE(nn.Module):
    """Context-aware Pyramid Feature Extraction: a 1x1 conv and 3x3 convs at dilation 3, 5, 7 (``width``
    channels each, no bias), concatenated, BN + ReLU. ``x: B,cin,h,w -> B,4*width,h,w``."""

    RATES = (3, 5, 7)

    def __init__(self, cin: int, width: int = 32) -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Conv2d(cin, width, 1, bias=False)] + [
            nn.Conv2d(cin, width, 3, padding=r, dilation=r, bias=False) for r in self.RATES])
        self.post = _bnrelu(4 * width)

    def forward(self, x: Tensor) -> Tensor:
        return self.post(torch.cat([b(x) for b in self.branches], 1))


class ChannelAttention(nn.Module):
    """Channel-wise attention: global average pool -> FC (C/4) -> ReLU -> FC (C) -> sigmoid, rescales
    the channels. ``x: B,C,h,w -> B,C,h,w``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // 4), nn.ReLU(inplace=True), nn.Linear(c // 4, c), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


class SpatialAttention(nn.Module):
    """Spatial attention from the high-level features: ``sigmoid(conv_kx1(conv_1xk(x)) +
    conv_1xk(conv_kx1(x)))`` with ``k = 9`` and C/2 middle channels (as in the paper); BN + ReLU after each
    branch's first conv and BN after its second, as in the authors' code, which also has a ReLU there (dropped:
    it would keep the attention above 0.5). ``x: B,C,h,w -> B,1,h,w`` in ``(0, 1)``."""

    def __init__(self, c: int, k: int = 9) -> None:
        super().__init__()
        p = k // 2
        self.a = nn.Sequential(nn.Conv2d(c, c // 2, (1, k), padding=(0, p)), _bnrelu(c // 2),
                               nn.Conv2d(c // 2, 1, (k, 1), padding=(p, 0)), nn.BatchNorm2d(1))
        self.b = nn.Sequential(nn.Conv2d(c, c // 2, (k, 1), padding=(p, 0)), _bnrelu(c // 2),
                               nn.Conv2d(c // 2, 1, (1, k), padding=(0, p)), nn.BatchNorm2d(1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.a(x) + self.b(x))


class PFAN(SODBaseline):
    """Pyramid Feature Attention Network (Zhao & Wu, CVPR 2019) on VGG-16.

    High levels (conv3_3, conv4_3, conv5_3): CPFE each (4 x 32 channels), resized to conv3_3's size and
    concatenated (384), channel attention, 1x1 conv-BN-ReLU to 64, upsampled to the input size.
    Low levels (conv1_2, conv2_2): 3x3 conv-BN-ReLU to 64 each, conv2_2 upsampled, concatenated, 3x3
    conv-BN-ReLU to 64, multiplied by the spatial attention computed from the high-level features.
    Both concatenated (128) -> 3x3 conv -> ``logits`` (no side outputs: ``aux_logits`` is empty).

    Loss (:func:`pfan_loss`): ``0.7 * BCE + 0.3 * edge loss``, the edge loss being the BCE between the
    Laplacian boundaries ``|tanh(laplace(.))|`` of the prediction and of the ground truth (as in the paper,
    alpha = 0.7). The authors' code additionally weights positives (1.12 saliency, 2 edges); not used.
    Parameters: 16,184,999 (trainable) from the authors' released model's layer list; the paper reports
    no count, so ``PAPER_PARAMS`` is that count (VGG-16 convs 14.71M + PFAN head 1.47M, no classifier).
    """

    PAPER_PARAMS: ClassVar[int] = 16_184_999
    ALPHA: ClassVar[float] = 0.7

    def __init__(self, backbone_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.backbone = VGG16()
        c1, c2, c3, c4, c5 = self.backbone.channels
        self.cpfe = nn.ModuleList(CPFE(c) for c in (c3, c4, c5))
        self.ca = ChannelAttention(384)
        self.high = nn.Sequential(nn.Conv2d(384, 64, 1), _bnrelu(64))
        self.sa = SpatialAttention(64)
        self.low1 = nn.Sequential(nn.Conv2d(c1, 64, 3, padding=1), _bnrelu(64))
        self.low2 = nn.Sequential(nn.Conv2d(c2, 64, 3, padding=1), _bnrelu(64))
        self.low = nn.Sequential(nn.Conv2d(128, 64, 3, padding=1), _bnrelu(64))
        self.out = nn.Conv2d(128, 1, 3, padding=1)
        for name, m in self.named_children():
            if name != "backbone":
                he_init(m)
        self.pretrained_backbone = prepare_backbone(self.backbone, backbone_weights, "pfan")

    def _predict(self, images: Tensor) -> dict[str, Any]:
        size = images.shape[-2:]
        f1, f2, f3, f4, f5 = self.backbone(images)
        high = torch.cat([resize(m(f), f3.shape[-2:]) for m, f in zip(self.cpfe, (f3, f4, f5), strict=True)], 1)
        high = resize(self.high(self.ca(high)), f1.shape[-2:])
        low = self.low(torch.cat([self.low1(f1), resize(self.low2(f2), f1.shape[-2:])], 1))
        low = low * self.sa(high)
        return {"logits": resize(self.out(torch.cat([low, high], 1)), size), "aux_logits": []}

    def compute_loss(self, out: dict[str, Any], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``out`` from :meth:`forward`, ``target: B,1,H,W`` -> (``0.7 BCE + 0.3 edge``, parts)."""
        return pfan_loss(out["logits"], target, self.ALPHA)


def pfan_loss(logits: Tensor, target: Tensor, alpha: float = 0.7) -> tuple[Tensor, dict[str, Tensor]]:
    """PFAN's ``alpha * BCE(P, G) + (1 - alpha) * BCE(|tanh(lap P)|, |tanh(lap G)|)``.

    ``logits, target: B,1,H,W`` -> (scalar, ``{"bce", "edge"}`` detached). Both BCEs are means over pixels.
    """
    logits, target = logits.float(), target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    pe = laplacian_edges(torch.sigmoid(logits)).clamp(1e-6, 1.0 - 1e-6)
    edge = F.binary_cross_entropy_with_logits(torch.logit(pe), laplacian_edges(target))  # = BCE(pe, ge)
    return alpha * bce + (1.0 - alpha) * edge, {"bce": bce.detach(), "edge": edge.detach()}


def build_pfan(*, backbone_weights: str | os.PathLike | None = None) -> PFAN:
    """PFAN on VGG-16; ``backbone_weights``: a torchvision ``vgg16`` ImageNet ``.pth`` file."""
    return PFAN(backbone_weights)
