"""F3Net (Wei, Wang & Huang, "F3Net: Fusion, Feedback and Focus for Salient Object Detection", AAAI 2020)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch.nn as nn
from torch import Tensor

from sam2sod.losses import structure_loss
from sam2sod.models.baselines.backbones import ResNet50, prepare_backbone
from sam2sod.models.baselines.common import SODBaseline, he_init, resize

__all__ = ["CFM", "F3Net", "F3NetDecoder", "build_f3net"]


def _cbr(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    """Conv(k x k, bias) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CFM(nn.Module):
    """Cross Feature Module: fuses a low-level (``left``) and a high-level (``down``) 64-ch feature.

    Each branch: two conv-BN-ReLU; their product is the common part, added back to each branch's first
    feature through one more conv, then a last conv. ``left: B,64,h,w``, ``down: B,64,h',w'`` (resized
    to ``h,w``) -> ``(left_out, down_out)``, both ``B,64,h,w``.
    """

    def __init__(self, ch: int = 64) -> None:
        super().__init__()
        self.h1, self.h2, self.h3, self.h4 = (_cbr(ch, ch) for _ in range(4))
        self.v1, self.v2, self.v3, self.v4 = (_cbr(ch, ch) for _ in range(4))

    def forward(self, left: Tensor, down: Tensor) -> tuple[Tensor, Tensor]:
        down = resize(down, left.shape[-2:])
        h1, v1 = self.h1(left), self.v1(down)
        fuse = self.h2(h1) * self.v2(v1)
        h = self.h4(self.h3(fuse) + h1)
        v = self.v4(self.v3(fuse) + v1)
        return h, v


class F3NetDecoder(nn.Module):
    """Cascaded decoder: CFMs from level 5 down to level 2.

    With ``feedback`` (the previous decoder's ``B,64,h2,w2`` output) every level first adds the feedback
    resized to its own size. ``feats``: levels 2..5, ``B,64,*`` each -> ``(refined levels 2..5, pred)``,
    ``pred: B,64,h2,w2``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cfm45, self.cfm34, self.cfm23 = CFM(), CFM(), CFM()

    def forward(self, feats: list[Tensor], feedback: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        f2, f3, f4, f5 = feats
        if feedback is not None:
            f2, f3, f4, f5 = (f + resize(feedback, f.shape[-2:]) for f in (f2, f3, f4, f5))
        f4, v4 = self.cfm45(f4, f5)
        f3, v3 = self.cfm34(f3, v4)
        f2, pred = self.cfm23(f2, v3)
        return [f2, f3, f4, f5], pred


class F3Net(SODBaseline):
    """F3Net on ResNet-50 (Wei et al., AAAI 2020).

    Backbone levels 2-5 are squeezed to 64 channels (1x1 conv-BN-ReLU) and decoded twice by cascaded
    feedback decoders of Cross Feature Modules; the second decoder refines with the first one's output.
    Outputs (all at input size): ``logits`` = the second decoder's prediction; ``aux_logits`` = [first
    decoder's prediction, side outputs of the refined levels 2, 3, 4, 5].

    Loss (:meth:`compute_loss`): the pixel position aware loss (weighted BCE + weighted IoU, weights
    ``1 + 5|avgpool31(G) - G|``) on every output, ``L = (L_p1 + L_p2) / 2 + sum_{i=2..5} L_i / 2^(i-1)``,
    with the weights of the authors' released training code.
    Training is multi-scale: each batch is resized to a size drawn from ``TRAIN_SIZES`` (the paper's
    224-352, test at 352).

    Parameters: 25,536,710, matching the 25.54M that F3Net's later comparisons report for the released
    model (ResNet-50 without its classifier + decoder); ``PAPER_PARAMS`` = 25,540,000.
    """

    PAPER_PARAMS: ClassVar[int] = 25_540_000
    TRAIN_SIZES: ClassVar[tuple[int, ...]] = (224, 256, 288, 320, 352)
    TEST_SIZE: ClassVar[int] = 352
    SIDE_WEIGHTS: ClassVar[tuple[float, ...]] = (0.5, 0.25, 0.125, 0.0625)

    def __init__(self, backbone_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.backbone = ResNet50()
        self.squeeze = nn.ModuleList(_cbr(c, 64, 1) for c in self.backbone.channels[1:])
        self.decoder1, self.decoder2 = F3NetDecoder(), F3NetDecoder()
        self.head_p1 = nn.Conv2d(64, 1, 3, padding=1)
        self.head_p2 = nn.Conv2d(64, 1, 3, padding=1)
        self.head_sides = nn.ModuleList(nn.Conv2d(64, 1, 3, padding=1) for _ in range(4))
        for m in (self.squeeze, self.decoder1, self.decoder2, self.head_p1, self.head_p2, self.head_sides):
            he_init(m)
        self.pretrained_backbone = prepare_backbone(self.backbone, backbone_weights, "f3net")

    def _predict(self, images: Tensor) -> dict[str, Any]:
        size = images.shape[-2:]
        feats = [sq(f) for sq, f in zip(self.squeeze, self.backbone(images)[1:], strict=True)]
        feats, p1 = self.decoder1(feats)
        feats, p2 = self.decoder2(feats, p1)
        sides = [resize(head(f), size) for head, f in zip(self.head_sides, feats, strict=True)]
        return {"logits": resize(self.head_p2(p2), size),
                "aux_logits": [resize(self.head_p1(p1), size), *sides]}

    def compute_loss(self, out: dict[str, Any], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``out`` from :meth:`forward`, ``target: B,1,H,W`` -> (weighted sum, per-output losses)."""
        p1, *sides = out["aux_logits"]
        target = target.float()
        losses = {"p2": structure_loss(out["logits"].float(), target), "p1": structure_loss(p1.float(), target)}
        total = 0.5 * (losses["p1"] + losses["p2"])
        for i, (side, w) in enumerate(zip(sides, self.SIDE_WEIGHTS, strict=True)):
            losses[f"side{i + 2}"] = structure_loss(side.float(), target)
            total = total + w * losses[f"side{i + 2}"]
        return total, {k: v.detach() for k, v in losses.items()}


def build_f3net(*, backbone_weights: str | os.PathLike | None = None) -> F3Net:
    """F3Net on ResNet-50; ``backbone_weights``: a torchvision ``resnet50`` ImageNet ``.pth`` file."""
    return F3Net(backbone_weights)

