"""Classical SOD baselines (report 001 / issue 6): F3Net, PoolNet (ResNet-50 / VGG-16), PFAN, U²-Net(p).

Every model follows the project's model contract: ``forward(images B,3,H,W, prompts=None,
multimask=False) -> {"logits": B,1,H,W, "aux_logits": [B,1,H,W, ...]}`` (input size, prompts ignored)
and ``compute_loss(out, target B,1,H,W) -> (total, parts)`` with the paper's loss. Images are
ImageNet-normalised. Input sizes: any size of at least 32 px works; :func:`build_baseline` asks for a
multiple of 32 (the deepest stride), as the papers use.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from sam2sod.errors import SodError
from sam2sod.models.baselines.backbones import (
    VGG16,
    BackboneRandomInitWarning,
    ResNet50,
    load_backbone_weights,
    prepare_backbone,
)
from sam2sod.models.baselines.f3net import F3Net, build_f3net
from sam2sod.models.baselines.pfan import PFAN, build_pfan
from sam2sod.models.baselines.poolnet import PoolNet, PoolNetVGG, build_poolnet, build_poolnet_vgg
from sam2sod.models.baselines.u2net import U2Net, U2NetP, build_u2net, build_u2netp

__all__ = [
    "BASELINES", "PFAN", "SIZE_MULTIPLE", "VGG16", "BackboneRandomInitWarning", "F3Net", "PoolNet",
    "PoolNetVGG", "ResNet50", "U2Net", "U2NetP", "baseline_options", "build_baseline", "load_backbone_weights",
    "prepare_backbone",
]

SIZE_MULTIPLE = 32  # the deepest feature stride of every baseline

BASELINES: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "f3net": (build_f3net, "F3Net (AAAI 2020): ResNet-50, cross feature modules, cascaded feedback decoder, "
                           "pixel position aware loss, 25.5M params"),
    "pfan": (build_pfan, "PFAN (CVPR 2019): VGG-16, context-aware pyramid features, channel + spatial "
                         "attention, BCE + Laplacian edge loss, 16.2M params"),
    "poolnet": (build_poolnet, "PoolNet (CVPR 2019): ResNet-50 FPN, global guidance module, feature "
                               "aggregation modules, optional edge branch (edge=True), 68.3M params"),
    "poolnet_vgg": (build_poolnet_vgg, "PoolNet (CVPR 2019) on VGG-16, optional edge branch (edge=True), "
                                       "52.8M params"),
    "u2net": (build_u2net, "U²-Net (PR 2020): nested residual U-blocks, 6 side outputs + fusion, "
                           "from scratch, 44.0M params"),
    "u2netp": (build_u2netp, "U²-Netp (PR 2020): the 1.1M-parameter U²-Net, from scratch"),
}


def baseline_options(name: str) -> dict[str, Any]:
    """Keyword options of a baseline's builder with their defaults, e.g. ``{'backbone_weights': None, ...}``."""
    builder = _builder(name)
    params = inspect.signature(builder).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in BASELINES:
        raise SodError(f"unknown baseline {name!r}: known baselines are {', '.join(sorted(BASELINES))}")
    return BASELINES[name][0]


def build_baseline(
    name: str,
    *,
    image_size: int,
    device: str | torch.device = "cpu",
    seed: int | None = 0,
    backbone_weights: str | os.PathLike | None = None,
    **cfg: Any,
) -> nn.Module:
    """Build baseline ``name`` with a seeded init (the global RNG is left untouched).

    ``backbone_weights``: torchvision ImageNet checkpoint for the backbone (``None``: random init and a
    :class:`BackboneRandomInitWarning`); ``cfg``: the builder's options (see :func:`baseline_options`).
    ``image_size`` must be a positive multiple of 32. Returned in eval mode on ``device``, with
    ``baseline``, ``baseline_cfg`` (defaults filled in) and ``image_size`` attributes.
    """
    builder = _builder(name)
    options = baseline_options(name)
    unknown = sorted(set(cfg) - set(options))
    if unknown:
        accepted = ", ".join(sorted(options)) or "none"
        raise SodError(f"unknown option(s) for baseline {name!r}: {', '.join(unknown)} (accepted: {accepted})")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < SIZE_MULTIPLE \
            or image_size % SIZE_MULTIPLE:
        raise SodError(f"image_size for baseline {name!r} must be a positive multiple of {SIZE_MULTIPLE}, "
                       f"got {image_size!r}")
    full = {**options, **cfg, "backbone_weights": backbone_weights}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = builder(**full)
    model.baseline, model.baseline_cfg, model.image_size = name, full, image_size
    return model.to(device).eval()
