"""The one forward of sam2sod inference, and the one conversion of its logits to saliency maps.

`run_model` is what validation during training, `sam2sod evaluate` / `predict` / `benchmark` and `Predictor`
all call: ``model(images, prompts)`` plus, on request, self-prompted refinement (`sam2sod.infer.refine`) and
flip test-time augmentation. `saliency_from_logits` / `logits_to_uint8` turn its logits into the maps every
path returns or writes: bilinear upsampling of the logits to the image's size, sigmoid, and for 8-bit maps
``round(255 * p)`` (`saliency_to_uint8`), so the command line and `Predictor` give the same bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2sod.data.prompts import PromptBatch
from sam2sod.errors import SodError
from sam2sod.infer.refine import best_low_res, decode_refined, flip_prompts, record_refine_skips

__all__ = ["TTA_MODES", "check_refine", "is_promptable", "logits_to_uint8", "probability", "run_model",
           "saliency_from_logits", "saliency_to_uint8"]

TTA_MODES = ("none", "flip")


def is_promptable(model: torch.nn.Module) -> bool:
    """True for SAM2 methods whose forward is `encode_image` + `decode` (cacheable embedding, prompts);
    False for classical baselines and SAM2 methods with their own prompt-free forward (sam2unet)."""
    from sam2sod.models.sod_sam2 import SAM2SOD

    return isinstance(model, SAM2SOD) and type(model).forward is SAM2SOD.forward


def _name(model: torch.nn.Module) -> str:
    return str(getattr(model, "method", None) or type(model).__name__)


def check_refine(refine: int, tta: str | None, model: torch.nn.Module | None = None) -> str | None:
    """Validate `refine` (>= 0) and `tta` (None / "none" / "flip"); returns tta as None or "flip"."""
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise SodError(f"--refine must be an integer >= 0, got {refine!r}")
    if tta not in (None, *TTA_MODES):
        raise SodError(f"--tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    if refine and model is not None and not is_promptable(model):
        raise SodError(f"--refine needs a promptable SAM2 model; {_name(model)} is prompt-free (no prompts, "
                       "no self-prompting)")
    return None if tta in (None, "none") else tta


def _best_only(out: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep only the returned mask's low-res logits (B,1,h,w) and IoU (B,1) (multimask: the best of 3)."""
    if "best_index" not in out:
        return out
    best = out["best_index"]
    rest = {k: v for k, v in out.items() if k not in ("best_index", "all_logits")}
    return {**rest, "low_res_logits": best_low_res(out), "iou": out["iou"].gather(1, best[:, None])}


def _unflip(out: dict[str, Tensor]) -> dict[str, Tensor]:
    keep = {}
    for k, v in out.items():
        is_map = isinstance(v, Tensor) and v.ndim == 4 and k != "all_logits"
        keep[k] = v.flip(-1) if is_map else v
    return keep


def _merge(outs: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Average the views' probabilities of `logits` / `low_res_logits` (returned as logits) and `iou`."""
    merged: dict[str, Tensor] = {}
    for key in ("logits", "low_res_logits"):
        if all(key in o for o in outs):
            p = torch.stack([torch.sigmoid(o[key].float()) for o in outs]).mean(0)
            merged[key] = torch.logit(p, eps=1e-6)
    if all("iou" in o for o in outs):
        merged["iou"] = torch.stack([o["iou"].float() for o in outs]).mean(0)
    return merged


def _one_view(model: torch.nn.Module, images: Tensor, prompts: PromptBatch | None, multimask: bool,
              refine: int, features: dict[str, Any] | None = None) -> dict[str, Tensor]:
    if not is_promptable(model):
        if prompts is not None or refine:
            raise SodError(f"{_name(model)} is prompt-free: it takes no prompts and cannot --refine")
        return model(images)
    feats = model.encode_image(images) if features is None else features
    return decode_refined(model, feats, prompts, multimask, refine)


def run_model(model: torch.nn.Module, images: Tensor, prompts: PromptBatch | None = None, multimask: bool = False,
              refine: int = 0, tta: str | None = None,
              features: tuple[dict[str, Any] | None, dict[str, Any] | None] = (None, None)) -> dict[str, Tensor]:
    """images (B,3,S,S) -> the model's output dict (logits (B,1,S,S), ...) with refinement and TTA.

    With refine 0 and no TTA this is exactly ``model(images, prompts, multimask=multimask)``. `features`:
    cached `encode_image` outputs of the image and of its mirror (either may be None: computed here).
    """
    tta = check_refine(refine, tta, model)
    if not refine and tta is None and features[0] is None:
        return model(images, prompts, multimask=multimask)
    out = _one_view(model, images, prompts, multimask, refine, features[0])
    skipped = out.get("refine_skipped")
    record_refine_skips(skipped)
    if tta is None:
        return out
    mirrored = _one_view(model, images.flip(-1), flip_prompts(prompts, images.shape[-1]), multimask, refine,
                         features[1])
    merged = _merge([_best_only(out), _unflip(_best_only(mirrored))])
    return merged if skipped is None else {**merged, "refine_skipped": skipped}


def probability(logits: Tensor, size_hw: tuple[int, int]) -> Tensor:
    """Logits (1,h,w) -> float32 (H,W) saliency in 0..1 on the logits' device: bilinear upsampling of the
    logits to `size_hw`, then sigmoid (in place: one float32 map of the original size at most)."""
    up = F.interpolate(logits[None].float(), size=tuple(size_hw), mode="bilinear", align_corners=False)[0, 0]
    return up.sigmoid_()


def _uint8_(p: Tensor) -> np.ndarray:
    """float32 saliency in 0..1 -> uint8 ``round(255 * p)``, computed in place in `p`."""
    return p.mul_(255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def saliency_to_uint8(saliency: Tensor | np.ndarray) -> np.ndarray:
    """(H,W) float saliency in 0..1 -> (H,W) uint8 ``round(255 * p)`` (the saliency PNGs' bytes)."""
    return _uint8_(torch.as_tensor(saliency).to(torch.float32, copy=True))


def saliency_from_logits(logits: Tensor, size_hw: tuple[int, int]) -> np.ndarray:
    """Logits (1,h,w) -> float32 (H,W) numpy saliency in 0..1 at `size_hw` (see `probability`)."""
    return probability(logits, size_hw).cpu().numpy()


def logits_to_uint8(logits: Tensor, size_hw: tuple[int, int]) -> np.ndarray:
    """Logits (1,h,w) -> uint8 (H,W) saliency map at `size_hw` (see `probability`, `saliency_to_uint8`)."""
    return _uint8_(probability(logits, size_hw))
