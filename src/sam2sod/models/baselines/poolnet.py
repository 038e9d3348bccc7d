"""PoolNet (Liu, Hou, Cheng, Feng & Jiang, "A Simple Pooling-Based Design for Real-Time Salient Object
Detection", CVPR 2019), on ResNet-50 or VGG-16, with the optional joint edge branch."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from sam2sod.losses import bce_loss
from sam2sod.models.baselines.backbones import VGG16, ResNet50, prepare_backbone
from sam2sod.models.baselines.common import SODBaseline, mask_edges, resize

__all__ = ["FAM", "GGM", "PoolNet", "PoolNetVGG", "balanced_bce", "build_poolnet", "build_poolnet_vgg"]


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)


class GGM(nn.Module):
    """Global Guidance Module: a modified pyramid pooling module and the global guiding flows.

    ``top: B,cin,h,w`` (the deepest backbone feature) is reduced to ``mid`` channels, pooled to 1x1, 3x3,
    5x5 (conv + ReLU each), upsampled, concatenated with itself and fused by a 3x3 conv; one 3x3 conv +
    ReLU per guided level turns it into that level's guidance, resized to ``sizes[i]``.
    Returns ``[B,out_planes[i],*sizes[i]]``.
    """

    BINS = (1, 3, 5)

    def __init__(self, cin: int, out_planes: tuple[int, ...], mid: int = 512) -> None:
        super().__init__()
        self.pre = _conv(cin, mid, 1)
        self.ppms = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), _conv(mid, mid, 1), nn.ReLU(inplace=True))
                                  for b in self.BINS)
        self.cat = nn.Sequential(_conv(mid * (len(self.BINS) + 1), mid), nn.ReLU(inplace=True))
        self.flows = nn.ModuleList(nn.Sequential(_conv(mid, c), nn.ReLU(inplace=True)) for c in out_planes)

    def forward(self, top: Tensor, sizes: list[torch.Size]) -> list[Tensor]:
        x = self.pre(top)
        x = self.cat(torch.cat([x, *(resize(p(x), x.shape[-2:]) for p in self.ppms)], 1))
        return [flow(resize(x, s)) for flow, s in zip(self.flows, sizes, strict=True)]


class FAM(nn.Module):
    """Feature Aggregation Module (the authors' "DeepPoolLayer").

    ``x + sum_s up(conv(avgpool_s(x)))`` for ``s`` in 2, 4, 8, ReLU, resize to ``size``, 3x3 conv to
    ``cout``; with ``fuse``, add the lateral feature and the global guidance and apply one more 3x3 conv.
    ``x: B,cin,h,w`` -> ``B,cout,*size``. A pooling window larger than the map is clipped to the map
    (only happens for inputs below 128 px).
    """

    RATES = (2, 4, 8)

    def __init__(self, cin: int, cout: int, fuse: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv(cin, cin) for _ in self.RATES)
        self.conv_sum = _conv(cin, cout)
        self.conv_fuse = _conv(cout, cout) if fuse else None

    def forward(self, x: Tensor, size: torch.Size | None = None, lateral: Tensor | None = None,
                guide: Tensor | None = None) -> Tensor:
        h, w = x.shape[-2:]
        y = x
        for s, conv in zip(self.RATES, self.convs, strict=True):
            k = (min(s, h), min(s, w))
            y = y + resize(conv(F.avg_pool2d(x, k, k)), (h, w))
        y = self.conv_sum(resize(F.relu(y), size if size is not None else (h, w)))
        if self.conv_fuse is not None:
            assert lateral is not None and guide is not None
            y = self.conv_fuse(y + lateral + guide)
        return y


class _EdgeBlock(nn.Module):
    """Edge branch block: residual bottleneck (c -> c/4 -> 3x3 -> c) then 1x1 to ``cout`` channels."""

    def __init__(self, c: int, cout: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(c, c // 4, 1), nn.ReLU(inplace=True), _conv(c // 4, c // 4),
                                  nn.ReLU(inplace=True), _conv(c // 4, c, 1))
        self.out = _conv(c, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(x + self.body(x)))


class PoolNet(SODBaseline):
    """PoolNet (Liu et al., CVPR 2019): FPN + Global Guidance Module + Feature Aggregation Modules.

    ``backbone="resnet50"`` (the paper's main model; last stage dilated, output stride 16, with the
    authors' 1x1 "convert" layers to 128/256/256/512/512 channels) or ``"vgg16"`` (relu2_2 .. relu5_3,
    no convert layers). Top-down: FAM on the top feature, upsample, add the lateral feature and the GGM's
    guidance, repeat down to stride 2, a last FAM, a 1x1 score conv, upsampled to the input size.
    Outputs: ``logits``; ``aux_logits`` is empty (PoolNet has no deep supervision).

    ``edge=True`` adds the joint edge branch (the paper's joint training with edge detection): after each
    fused FAM a residual block and a 1x1 conv to 16 channels; these give edge side outputs and a fused
    edge map (``out["edge_logits"]``: [fused, sides...]) and, through two 3x3 convs, 128 edge channels
    concatenated with the last FAM before the (then 3x3) score conv. The paper trains the branch on
    BSDS500 edges; here edge labels come from the masks (:func:`mask_edges`), and the branch's exact
    block layout is our own reading of the paper.

    Loss: saliency BCE (mean over pixels; the authors sum over pixels, a learning-rate scale) + with
    ``edge`` the class-balanced edge BCE (:func:`balanced_bce`) on the fused and every side edge output.
    Parameters (``edge=False``, no ImageNet classifier): ResNet-50 68,261,057, the 68.26M that later
    comparisons report for the released model (we found no count in the paper itself); VGG-16 52,774,849,
    counted from the authors' released VGG configuration (no published figure).
    """

    PAPER_PARAMS: ClassVar[int] = 68_260_000
    CONFIGS: ClassVar[dict[str, dict[str, tuple[int, ...]]]] = {
        # channels after convert (bottom-up), FAM in/out channels top-down; the last FAM is unfused
        "resnet50": {"convert": (128, 256, 256, 512, 512), "fam_in": (512, 512, 256, 256, 128),
                     "fam_out": (512, 256, 256, 128, 128)},
        "vgg16": {"convert": (), "fam_in": (512, 512, 256, 128), "fam_out": (512, 256, 128, 128)},
    }

    def __init__(self, backbone: str = "resnet50", edge: bool = False,
                 backbone_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        cfg = self.CONFIGS[backbone]
        self.backbone_name, self.edge = backbone, edge
        if backbone == "resnet50":
            self.backbone: ResNet50 | VGG16 = ResNet50(dilate_last=True)
            chans = cfg["convert"]
            self.convert = nn.ModuleList(nn.Sequential(_conv(a, b, 1), nn.ReLU(inplace=True))
                                         for a, b in zip(self.backbone.channels, chans, strict=True))
        else:
            self.backbone = VGG16()
            chans = self.backbone.channels[1:]
            self.convert = None
        fam_in, fam_out = cfg["fam_in"], cfg["fam_out"]
        n_fused = len(fam_in) - 1
        # guidance for each fused FAM's output (same channels as the lateral it is added to)
        self.ggm = GGM(self.backbone.channels[-1], tuple(fam_out[:n_fused]))  # on the raw top feature
        self.fams = nn.ModuleList(FAM(i, o, fuse=k < n_fused)
                                  for k, (i, o) in enumerate(zip(fam_in, fam_out, strict=True)))
        if edge:
            self.edge_blocks = nn.ModuleList(_EdgeBlock(c) for c in fam_out[:n_fused])
            self.edge_sides = nn.ModuleList(nn.Conv2d(16, 1, 1) for _ in range(n_fused))
            self.edge_fuse = nn.Conv2d(n_fused, 1, 1)
            self.edge_info = nn.Sequential(_conv(16 * n_fused, 128), nn.ReLU(inplace=True),
                                           _conv(128, 128), nn.ReLU(inplace=True))
            self.score = nn.Conv2d(fam_out[-1] + 128, 1, 3, padding=1)
        else:
            self.score = nn.Conv2d(fam_out[-1], 1, 1)
        for name, m in self.named_children():
            if name != "backbone":  # the authors' init: N(0, 0.01) weights, zero bias
                for mod in m.modules():
                    if isinstance(mod, nn.Conv2d):
                        nn.init.normal_(mod.weight, 0.0, 0.01)
                        if mod.bias is not None:
                            nn.init.zeros_(mod.bias)
        self.pretrained_backbone = prepare_backbone(self.backbone, backbone_weights,
                                                    "poolnet" if backbone == "resnet50" else "poolnet_vgg")

    def _predict(self, images: Tensor) -> dict[str, Any]:
        size = images.shape[-2:]
        raw = self.backbone(images)
        if self.convert is not None:
            feats = [c(f) for c, f in zip(self.convert, raw, strict=True)]
        else:
            feats = raw[1:]
        feats = feats[::-1]  # top-down: deepest first
        n_fused = len(self.fams) - 1
        laterals = feats[1 : n_fused + 1]
        guides = self.ggm(raw[-1], [f.shape[-2:] for f in laterals])
        x, fused = feats[0], []
        for k in range(n_fused):
            x = self.fams[k](x, laterals[k].shape[-2:], laterals[k], guides[k])
            fused.append(x)
        x = self.fams[-1](x)
        out: dict[str, Any] = {"aux_logits": []}
        if self.edge:
            efeats = [blk(f) for blk, f in zip(self.edge_blocks, fused, strict=True)]
            sides = [resize(s(f), size) for s, f in zip(self.edge_sides, efeats, strict=True)]
            out["edge_logits"] = [self.edge_fuse(torch.cat(sides, 1)), *sides]
            info = self.edge_info(torch.cat([resize(f, x.shape[-2:]) for f in efeats], 1))
            x = torch.cat([x, info], 1)
        out["logits"] = resize(self.score(x), size)
        return out

    def compute_loss(self, out: dict[str, Any], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``out`` from :meth:`forward`, ``target: B,1,H,W`` -> (BCE [+ edge losses], parts)."""
        target = target.float()
        total = bce_loss(out["logits"].float(), target)
        parts = {"bce": total.detach()}
        if self.edge:
            edges = mask_edges(target)
            edge = sum(balanced_bce(e.float(), edges) for e in out["edge_logits"])
            assert isinstance(edge, Tensor)
            parts["edge"] = edge.detach()
            total = total + edge
        return total, parts


class PoolNetVGG(PoolNet):
    """PoolNet on VGG-16 (Liu et al., CVPR 2019; see :class:`PoolNet`).

    Parameters: 52,774,849; the paper gives no count, so ``PAPER_PARAMS`` is the count of the authors'
    released VGG-16 configuration (VGG-16 convs + GGM + FAMs, no classifier, ``edge=False``).
    """

    PAPER_PARAMS: ClassVar[int] = 52_774_849

    def __init__(self, edge: bool = False, backbone_weights: str | os.PathLike | None = None) -> None:
        super().__init__("vgg16", edge, backbone_weights)


def balanced_bce(logits: Tensor, edges: Tensor) -> Tensor:
    """HED-style class-balanced BCE: edge pixels weighted by the non-edge fraction, non-edge pixels by
    1.1x the edge fraction (per image). ``logits, edges: B,1,H,W`` -> scalar (mean over pixels and batch)."""
    pos = edges.flatten(1).mean(1).view(-1, 1, 1, 1)
    weight = torch.where(edges > 0.5, 1.0 - pos, 1.1 * pos)
    return F.binary_cross_entropy_with_logits(logits, edges, weight=weight)


def build_poolnet(*, backbone_weights: str | os.PathLike | None = None, edge: bool = False) -> PoolNet:
    """PoolNet on ResNet-50; ``backbone_weights``: a torchvision ``resnet50`` ImageNet ``.pth`` file."""
    return PoolNet("resnet50", edge, backbone_weights)


def build_poolnet_vgg(*, backbone_weights: str | os.PathLike | None = None, edge: bool = False) -> PoolNet:
    """PoolNet on VGG-16; ``backbone_weights``: a torchvision ``vgg16`` ImageNet ``.pth`` file."""
    return PoolNetVGG(edge, backbone_weights)
