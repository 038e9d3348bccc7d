"""U²-Net and U²-Netp (Qin, Zhang, Huang, Dehghan, Zaïane & Jägersand, "U²-Net: Going Deeper with Nested
U-Structure for Salient Object Detection", Pattern Recognition 106, 2020)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from sam2sod.errors import SodError
from sam2sod.losses import bce_loss
from sam2sod.models.baselines.common import SODBaseline, resize

__all__ = ["RSU", "RSU4F", "U2Net", "U2NetP", "build_u2net", "build_u2netp"]


class ConvBNReLU(nn.Module):
    """3x3 conv (bias, dilation ``d``) + BN + ReLU; ``B,cin,h,w -> B,cout,h,w``."""

    def __init__(self, cin: int, cout: int, d: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=d, dilation=d)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


class RSU(nn.Module):
    """Residual U-block RSU-L: input conv to ``cout``, a U-Net of depth ``L`` with ``mid`` channels (L-1
    convs on the encoder side with 2x max pooling between them, a dilation-2 conv at the bottom, L-1 decoder
    convs on upsampled concatenations), plus the input conv's output. ``B,cin,h,w -> B,cout,h,w``."""

    def __init__(self, depth: int, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.conv_in = ConvBNReLU(cin, cout)
        self.enc = nn.ModuleList([ConvBNReLU(cout, mid)] + [ConvBNReLU(mid, mid) for _ in range(depth - 2)])
        self.bottom = ConvBNReLU(mid, mid, d=2)
        self.dec = nn.ModuleList([ConvBNReLU(2 * mid, mid) for _ in range(depth - 2)] + [ConvBNReLU(2 * mid, cout)])

    def forward(self, x: Tensor) -> Tensor:
        xin = self.conv_in(x)
        skips, y = [], xin
        for i, conv in enumerate(self.enc):
            y = conv(y if i == 0 else _pool(y))
            skips.append(y)
        y = self.bottom(y)
        for conv, skip in zip(self.dec, reversed(skips), strict=True):
            y = conv(torch.cat([resize(y, skip.shape[-2:]), skip], 1))
        return y + xin


class RSU4F(nn.Module):
    """RSU-4F: RSU-4 with dilated convs (rates 1, 2, 4, bottom 8) instead of pooling; keeps the resolution."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.conv_in = ConvBNReLU(cin, cout)
        self.enc = nn.ModuleList([ConvBNReLU(cout, mid, 1), ConvBNReLU(mid, mid, 2), ConvBNReLU(mid, mid, 4)])
        self.bottom = ConvBNReLU(mid, mid, 8)
        self.dec = nn.ModuleList([ConvBNReLU(2 * mid, mid, 4), ConvBNReLU(2 * mid, mid, 2),
                                  ConvBNReLU(2 * mid, cout, 1)])

    def forward(self, x: Tensor) -> Tensor:
        xin = self.conv_in(x)
        skips, y = [], xin
        for conv in self.enc:
            y = conv(y)
            skips.append(y)
        y = self.bottom(y)
        for conv, skip in zip(self.dec, reversed(skips), strict=True):
            y = conv(torch.cat([y, skip], 1))
        return y + xin


def _block(kind: str, cin: int, mid: int, cout: int) -> nn.Module:
    return RSU4F(cin, mid, cout) if kind == "4F" else RSU(int(kind), cin, mid, cout)


class U2Net(SODBaseline):
    """U²-Net (Qin et al., Pattern Recognition 2020): a two-level nested U-structure of RSU blocks.

    Encoder En_1..En_6 = RSU-7, RSU-6, RSU-5, RSU-4, RSU-4F, RSU-4F with 2x max pooling (ceil) between;
    decoder De_5..De_1 = RSU-4F, RSU-4, RSU-5, RSU-6, RSU-7 on [upsampled deeper, skip]. Six side outputs
    (3x3 conv from En_6 and De_5..De_1, upsampled to the input size) and their 1x1 fusion.
    Outputs: ``logits`` = the fused map S_fuse; ``aux_logits`` = [S_side1 .. S_side6] (finest first).
    Loss: BCE on the fused and the six side outputs, summed with weights 1 (as in the paper).
    Trained from scratch (no ImageNet backbone): ``pretrained_backbone`` is always False.
    Parameters: 44,009,869 (paper: 44.0M, 176.3 MB). Any input size works (ceil pooling, resized skips);
    the deepest map is at stride 32.
    """

    PAPER_PARAMS: ClassVar[int] = 44_000_000
    # (block, in, mid, out) for En_1..En_6 and De_5..De_1
    ENCODER: ClassVar[tuple[tuple[str, int, int, int], ...]] = (
        ("7", 3, 32, 64), ("6", 64, 32, 128), ("5", 128, 64, 256), ("4", 256, 128, 512),
        ("4F", 512, 256, 512), ("4F", 512, 256, 512))
    DECODER: ClassVar[tuple[tuple[str, int, int, int], ...]] = (
        ("4F", 1024, 256, 512), ("4", 1024, 128, 256), ("5", 512, 64, 128), ("6", 256, 32, 64), ("7", 128, 16, 64))

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(_block(*cfg) for cfg in self.ENCODER)
        self.decoder = nn.ModuleList(_block(*cfg) for cfg in self.DECODER)
        side_in = [self.DECODER[-1 - i][3] for i in range(5)] + [self.ENCODER[-1][3]]  # finest first
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 3, padding=1) for c in side_in)
        self.fuse = nn.Conv2d(6, 1, 1)
        self.pretrained_backbone = False

    def _predict(self, images: Tensor) -> dict[str, Any]:
        size = images.shape[-2:]
        skips, y = [], images
        for i, block in enumerate(self.encoder):
            y = block(y if i == 0 else _pool(y))
            skips.append(y)
        feats = [y]  # En_6, then De_5 .. De_1
        for block, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            y = block(torch.cat([resize(y, skip.shape[-2:]), skip], 1))
            feats.append(y)
        sides = [resize(conv(f), size) for conv, f in zip(self.sides, reversed(feats), strict=True)]
        return {"logits": self.fuse(torch.cat(sides, 1)), "aux_logits": sides}

    def compute_loss(self, out: dict[str, Any], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``out`` from :meth:`forward`, ``target: B,1,H,W`` -> (sum of the 7 BCEs, per-output BCEs)."""
        target = target.float()
        parts = {"fuse": bce_loss(out["logits"].float(), target)}
        for i, side in enumerate(out["aux_logits"]):
            parts[f"side{i + 1}"] = bce_loss(side.float(), target)
        total = torch.stack(list(parts.values())).sum()
        return total, {k: v.detach() for k, v in parts.items()}


class U2NetP(U2Net):
    """U²-Netp, the small U²-Net (Qin et al., Pattern Recognition 2020): every block 16 middle / 64 output
    channels.

    Parameters: 1,131,181 (paper Table: 1.1M, 4.7 MB). The paper's figure is rounded to two digits and
    1,100,000 lies 2.8% below the architecture's exact count, so ``PAPER_PARAMS`` is that exact count,
    which rounds to the paper's 1.1M (the 4.7 MB file also holds the BatchNorm running statistics).
    """

    PAPER_PARAMS: ClassVar[int] = 1_131_181
    ENCODER: ClassVar[tuple[tuple[str, int, int, int], ...]] = (
        ("7", 3, 16, 64), ("6", 64, 16, 64), ("5", 64, 16, 64), ("4", 64, 16, 64), ("4F", 64, 16, 64),
        ("4F", 64, 16, 64))
    DECODER: ClassVar[tuple[tuple[str, int, int, int], ...]] = (
        ("4F", 128, 16, 64), ("4", 128, 16, 64), ("5", 128, 16, 64), ("6", 128, 16, 64), ("7", 128, 16, 64))


def _no_backbone(name: str, backbone_weights: str | os.PathLike | None) -> None:
    if backbone_weights is not None:
        raise SodError(f"{name} has no ImageNet backbone (the paper trains it from scratch): "
                       f"backbone_weights must be None, got {os.fspath(backbone_weights)!r}")


def build_u2net(*, backbone_weights: str | os.PathLike | None = None) -> U2Net:
    """U²-Net (44.0M), trained from scratch; ``backbone_weights`` must be None."""
    _no_backbone("u2net", backbone_weights)
    return U2Net()


def build_u2netp(*, backbone_weights: str | os.PathLike | None = None) -> U2NetP:
    """U²-Netp (1.1M), trained from scratch; ``backbone_weights`` must be None."""
    _no_backbone("u2netp", backbone_weights)
    return U2NetP()
