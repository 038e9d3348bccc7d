"""sam2's automatic mask generator (AMG) without torchvision, and the rule that turns its masks into saliency.

`amg_generator_class()` imports `sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator` unmodified. When
torchvision does not import (the CPU torch this project pins), the import runs against stand-ins: the
transforms of `sam2sod.models.torchvision_standin` and `box_area` / `batched_nms` below (greedy NMS,
torchvision's semantics: boxes whose IoU with a higher-scoring box of the same category exceeds the
threshold are dropped, kept indices in decreasing score order). `sys.modules` is restored afterwards, so
nothing else sees the stand-ins.

Saliency from masks (`saliency_from_masks`), for masks m_k in {0,1}^(HxW) with predicted IoU q_k, stability
score t_k, area fraction a_k = |m_k| / (H W) and centroid (u_k, v_k) of its pixel centres in [0,1]^2
(u = (x + 0.5) / W, v = (y + 0.5) / H):

    c_k = exp(-((u_k - 1/2)^2 + (v_k - 1/2)^2) / (2 sigma^2)),  sigma = 0.25      (centre prior)
    s_k = 4 a_k (1 - a_k)                                                         (size prior: 1 at half the
                                                                                   image, 0 empty / full)
    w_k = clip(q_k, 0, 1) * clip(t_k, 0, 1) * c_k * s_k
    M(x) = sum_k w_k m_k(x);   saliency = M / max_x M   (all zeros when there is no mask or max M = 0)
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

CENTRE_SIGMA = 0.25  # sigma of the centre prior, in image widths / heights
_SAM2_MODULES = ("sam2.automatic_mask_generator", "sam2.sam2_image_predictor", "sam2.utils.transforms")
_TV_MODULES = ("torchvision", "torchvision.transforms", "torchvision.ops", "torchvision.ops.boxes")


# ---- torchvision.ops stand-ins (what sam2's AMG imports)

def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N,4) xyxy -> (N,) areas."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(4,) and (N,4) xyxy -> (N,) IoU."""
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = box_area(box[None])[0] + box_area(boxes) - inter
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression per category `idxs`: (N,4) xyxy, (N,) -> kept indices (K,) int64."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()
    offset = idxs.to(boxes) * (boxes.max() + 1)  # categories never overlap
    shifted = boxes + offset[:, None]
    order = torch.argsort(scores, descending=True, stable=True)
    alive = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(order[i])
        rest = order[i + 1:]
        alive[i + 1:] &= _box_iou(shifted[order[i]], shifted[rest]) <= iou_threshold
    return torch.stack(keep).to(torch.int64)


def _ops_modules() -> dict[str, Any]:
    import types

    from sam2sod.models.torchvision_standin import standin_modules

    tv, tr = standin_modules()
    ops, boxes = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms, boxes.box_area = batched_nms, box_area
    ops.boxes, tv.ops = boxes, ops
    return {"torchvision": tv, "torchvision.transforms": tr, "torchvision.ops": ops, "torchvision.ops.boxes": boxes}


def _torchvision_works() -> bool:
    try:
        from torchvision.ops.boxes import batched_nms as _  # noqa: F401
        from torchvision.transforms import Normalize as _n  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken torchvision raises RuntimeError / OSError, not only ImportError
        return False
    return True


@functools.lru_cache(maxsize=1)
def amg_generator_class() -> type:
    """sam2's `SAM2AutomaticMaskGenerator` class (imported against stand-ins when torchvision is unusable)."""
    if _torchvision_works():
        return importlib.import_module("sam2.automatic_mask_generator").SAM2AutomaticMaskGenerator
    names = _SAM2_MODULES + _TV_MODULES
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.modules.update(_ops_modules())
    try:
        return importlib.import_module("sam2.automatic_mask_generator").SAM2AutomaticMaskGenerator
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def make_generator(sam: torch.nn.Module, image_size: int, options: dict[str, Any]) -> Any:
    """A `SAM2AutomaticMaskGenerator` on a `SAM2Base` built for `image_size` (feature sizes from the input).

    `options`: the checked AMG settings (`zero_shot.AMG_OPTIONS`). min_mask_region_area is applied by
    `clean_masks` after generation (sam2's own hole filling needs its CUDA extension), so the generator
    gets 0.
    """
    cls = amg_generator_class()
    kw = {k: v for k, v in options.items() if k != "min_mask_region_area"}
    gen = cls(sam, output_mode="binary_mask", min_mask_region_area=0, **kw)
    gen.predictor._bb_feat_sizes = [(image_size // s, image_size // s) for s in (4, 8, 16)]
    return gen


def clean_masks(anns: list[dict[str, Any]], min_area: int) -> list[dict[str, Any]]:
    """Remove holes, then islands, smaller than `min_area` pixels from each mask (sam2's remove_small_regions)."""
    if min_area <= 0:
        return anns
    from sam2.utils.amg import remove_small_regions

    out = []
    for ann in anns:
        mask, _ = remove_small_regions(np.asarray(ann["segmentation"], dtype=bool), min_area, mode="holes")
        mask, _ = remove_small_regions(mask, min_area, mode="islands")
        out.append({**ann, "segmentation": mask, "area": int(mask.sum())})
    return out


# ---- masks -> saliency

def mask_weight(mask: np.ndarray, predicted_iou: float, stability: float, sigma: float = CENTRE_SIGMA) -> float:
    """w = clip(q) * clip(t) * centre prior * size prior of one (H,W) bool mask (module docstring)."""
    h, w = mask.shape
    area = float(mask.sum())
    if area == 0:
        return 0.0
    ys, xs = np.nonzero(mask)
    u, v = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
    centre = math.exp(-((u - 0.5) ** 2 + (v - 0.5) ** 2) / (2 * sigma ** 2))
    a = area / (h * w)
    size = 4.0 * a * (1.0 - a)
    return float(np.clip(predicted_iou, 0, 1) * np.clip(stability, 0, 1) * centre * size)


def saliency_from_masks(anns: Sequence[dict[str, Any]], hw: tuple[int, int]) -> np.ndarray:
    """AMG records (segmentation (H,W) bool, predicted_iou, stability_score) -> float32 (H,W) saliency in [0,1]."""
    total = np.zeros(hw, dtype=np.float64)
    for ann in anns:
        mask = np.asarray(ann["segmentation"], dtype=bool)
        if mask.shape != tuple(hw):
            raise ValueError(f"mask of shape {mask.shape} does not fit the image {tuple(hw)}")
        weight = mask_weight(mask, float(ann["predicted_iou"]), float(ann["stability_score"]))
        if weight > 0:
            total += weight * mask
    peak = total.max()
    return (total / peak if peak > 0 else total).astype(np.float32)
