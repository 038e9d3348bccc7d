"""ImageNet backbones for the classical SOD baselines: ResNet-50 and VGG-16 (with or without BatchNorm).

Written from the architectures' definitions (He et al., CVPR 2016; Simonyan & Zisserman, ICLR 2015) so
that parameter names and shapes equal those of torchvision's ImageNet checkpoints (``resnet50-*.pth``,
``vgg16-*.pth``, ``vgg16_bn-*.pth``); :func:`load_backbone_weights` loads such a file strictly.

The classification head (``fc`` / ``classifier``) is only built with ``head=True``: the SOD models never
use it, so by default it is absent and its entries in a checkpoint are checked for shape and dropped.
Each backbone returns five feature maps, listed in ``channels`` / ``strides``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import torch.nn as nn
from torch import Tensor

from sam2sod.errors import SodError, format_names
from sam2sod.safe_load import load_weights_file

__all__ = [
    "BACKBONE_RANDOM_INIT_WARNING",
    "BackboneRandomInitWarning",
    "Bottleneck",
    "ResNet50",
    "VGG16",
    "VGG16_CFG",
    "load_backbone_weights",
    "prepare_backbone",
]

BACKBONE_RANDOM_INIT_WARNING = (
    "ImageNet weights were NOT loaded for the {arch} backbone of {model} (backbone_weights=None): it is "
    "randomly initialised, unlike the paper; pass backbone_weights=<torchvision {arch} .pth file> for a "
    "faithful baseline"
)


class BackboneRandomInitWarning(UserWarning):
    """A baseline's ImageNet backbone was randomly initialised (no ``backbone_weights`` given)."""


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, expansion 4), stride on the 3x3 conv as in torchvision (v1.5).

    ``x: B,inplanes,H,W -> B,4*width,H/stride,W/stride``.
    """

    expansion = 4

    def __init__(self, inplanes: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """ResNet-50 feature extractor with torchvision's parameter names.

    ``forward(x: B,3,H,W)`` -> ``[stem, layer1, layer2, layer3, layer4]`` with ``channels``
    ``(64, 256, 512, 1024, 2048)`` and ``strides`` ``(2, 4, 8, 16, 32)``; with ``dilate_last=True`` the
    last stage keeps stride 16 and uses dilation 2 (same weights, as in PoolNet / DeepLab).
    """

    arch = "resnet50"
    LAYERS = (3, 4, 6, 3)

    def __init__(self, head: bool = False, dilate_last: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, inplanes = (64, 128, 256, 512), 64
        for i, (width, blocks) in enumerate(zip(widths, self.LAYERS, strict=True)):
            stride = 1 if i == 0 or (i == 3 and dilate_last) else 2
            dilation = 2 if i == 3 and dilate_last else 1
            layers = [Bottleneck(inplanes, width, stride, 1)]
            inplanes = width * Bottleneck.expansion
            layers += [Bottleneck(inplanes, width, 1, dilation) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        self.has_head = head
        if head:
            self.fc = nn.Linear(2048, 1000)
        self.channels = (64, 256, 512, 1024, 2048)
        self.strides = (2, 4, 8, 16, 16 if dilate_last else 32)
        _init_backbone(self)

    @staticmethod
    def head_shapes() -> dict[str, tuple[int, ...]]:
        """Shapes of the ImageNet classifier's entries in a torchvision checkpoint."""
        return {"fc.weight": (1000, 2048), "fc.bias": (1000,)}

    def forward(self, x: Tensor) -> list[Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        feats = [stem]
        y = self.maxpool(stem)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            y = getattr(self, name)(y)
            feats.append(y)
        return feats


# torchvision's configuration "D": numbers are 3x3 conv widths, "M" a 2x2 max pool
VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                    512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG-16 (optionally with BatchNorm) with torchvision's ``features.N`` indices.

    ``forward(x: B,3,H,W)`` -> ``[relu1_2, relu2_2, relu3_3, relu4_3, relu5_3]`` with ``channels``
    ``(64, 128, 256, 512, 512)`` and ``strides`` ``(1, 2, 4, 8, 16)``; pool5 (no parameters) is not applied.
    """

    def __init__(self, batch_norm: bool = False, head: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        taps: list[int] = []  # index of the ReLU that ends each of the 5 blocks
        cin = 3
        for v in VGG16_CFG:
            if v == "M":
                taps.append(len(layers) - 1)
                layers.append(nn.MaxPool2d(2, 2))
                continue
            assert isinstance(v, int)
            layers.append(nn.Conv2d(cin, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            cin = v
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)
        self.batch_norm = batch_norm
        self.arch = "vgg16_bn" if batch_norm else "vgg16"
        self.has_head = head
        if head:
            self.avgpool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 1000),
            )
        self.channels = (64, 128, 256, 512, 512)
        self.strides = (1, 2, 4, 8, 16)
        _init_backbone(self)

    @staticmethod
    def head_shapes() -> dict[str, tuple[int, ...]]:
        """Shapes of the ImageNet classifier's entries in a torchvision checkpoint."""
        return {
            "classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
            "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
            "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
        }

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
        return feats


def _init_backbone(m: nn.Module) -> None:
    """torchvision's init: He-normal (fan_out) convs, zero conv bias, unit/zero BN, N(0, 0.01) linear."""
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, 0, 0.01)
            nn.init.zeros_(mod.bias)


Backbone = ResNet50 | VGG16


def load_backbone_weights(backbone: Backbone, path: str | os.PathLike) -> None:
    """Load a torchvision ImageNet checkpoint (a plain state dict) into ``backbone``, strictly.

    Every backbone key must be present with the right shape, and no other key may be in the file,
    except the classifier entries (``fc.*`` / ``classifier.*``, shape-checked, dropped when the backbone
    has no head) and BatchNorm ``num_batches_tracked`` counters (absent from torchvision's older files).
    Raises :class:`SodError` naming the missing / unexpected / mis-shaped keys, or for an unreadable file.
    """
    path = os.fspath(path)
    state = load_weights_file(path, "backbone weights file")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                  for k, v in state.items()):
        raise SodError(f"backbone weights {path} are not a state dict (a mapping of names to tensors), "
                       f"as torchvision's {backbone.arch} ImageNet checkpoints are")
    own = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    expected = dict(own)
    if not backbone.has_head:
        expected.update(backbone.head_shapes())
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{k} {tuple(state[k].shape)} != {expected[k]}" for k in set(state) & set(expected)
                   if tuple(state[k].shape) != expected[k])
    problems = []
    if missing:
        problems.append(f"missing keys: {format_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {format_names(unexpected)}")
    if wrong:
        problems.append(f"shape mismatches: {format_names(wrong)}")
    if problems:
        raise SodError(f"backbone weights {path} do not match torchvision's {backbone.arch} ImageNet checkpoint: "
                       + "; ".join(problems))
    load = {k: v for k, v in state.items() if k in own}
    for k in optional:  # old files: keep the module's own counters
        if k in own and k not in load:
            load[k] = backbone.state_dict()[k]
    backbone.load_state_dict(load, strict=True)


def prepare_backbone(backbone: Backbone, weights: str | os.PathLike | None, model: str) -> bool:
    """Load ``weights`` into ``backbone``, or warn loudly that it stays randomly initialised.

    Returns ``True`` when ImageNet weights were loaded (the model's ``pretrained_backbone``).
    """
    if weights is not None:
        load_backbone_weights(backbone, weights)
        return True
    warnings.warn(BackboneRandomInitWarning(BACKBONE_RANDOM_INIT_WARNING.format(arch=backbone.arch, model=model)),
                  stacklevel=3)
    return False
