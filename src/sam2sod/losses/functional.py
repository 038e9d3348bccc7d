"""Loss functions for salient object detection, as pure functions of logits and targets.

Conventions shared by every loss here:

* ``logits``: ``B,1,H,W`` raw (pre-sigmoid) predictions, any float dtype (computed in float32,
  or float64 for float64 input, so the losses are safe under autocast).
* ``target``: ``B,1,H,W`` in ``[0, 1]``; soft values are allowed.
* ``reduction="mean"`` returns a scalar (mean over the batch of the per-sample losses),
  ``reduction="none"`` returns the per-sample losses, shape ``B``.

Every per-sample loss is a mean over the sample's pixels, so ``"mean"`` equals the usual
global mean for the pixel-wise losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Reduction = Literal["mean", "none"]

__all__ = [
    "Reduction",
    "bce_loss",
    "best_mask_loss",
    "deep_supervision",
    "dice_loss",
    "gaussian_window",
    "iou_head_loss",
    "mask_iou",
    "sod_objective",
    "ssim",
    "ssim_loss",
    "structure_loss",
]


def _check(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Validate ``B,C,H,W`` shapes; return both as float32 (float64 inputs stay float64)."""
    if logits.dim() != 4:
        raise ValueError(f"logits must be B,C,H,W, got shape {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != logits shape {tuple(logits.shape)}")
    dtype = _work_dtype(logits)
    return logits.to(dtype), target.to(device=logits.device, dtype=dtype)


def _work_dtype(x: Tensor) -> torch.dtype:
    """float32 for half/bfloat16/float32 inputs, float64 for float64 inputs."""
    return torch.promote_types(x.dtype, torch.float32) if x.is_floating_point() else torch.float32


def _reduce(per_sample: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def bce_loss(logits: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Binary cross-entropy from logits (log-sum-exp form, stable for large ``|logits|``).

    ``logits, target: B,1,H,W`` -> scalar, or ``B`` with ``reduction="none"``.
    """
    logits, target = _check(logits, target)
    pix = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return _reduce(pix.flatten(1).mean(1), reduction)


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0, reduction: Reduction = "mean") -> Tensor:
    """Soft Dice loss on sigmoid probabilities, per sample.

    ``1 - (2 * sum(p * t) + eps) / (sum(p) + sum(t) + eps)`` with sums over the sample's pixels.
    ``eps`` (in pixel units, default 1 as in V-Net/SAM-style smoothed Dice) keeps the loss finite and
    makes an empty prediction of an empty target score 0; it is negligible next to object areas of
    hundreds of pixels but visibly softens the loss on tiny test tensors.

    ``logits, target: B,1,H,W`` -> scalar, or ``B`` with ``reduction="none"``.
    """
    logits, target = _check(logits, target)
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    per = 1.0 - (2.0 * inter + eps) / (p.sum(1) + t.sum(1) + eps)
    return _reduce(per, reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised 2-D Gaussian window ``size x size`` (outer product of a 1-D Gaussian)."""
    g = _gaussian_1d(size, sigma)
    return torch.outer(g, g).to(dtype)


def _gaussian_1d(size: int, sigma: float) -> Tensor:
    """Normalised 1-D Gaussian of odd length ``size``, float64."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"SSIM window size must be a positive odd number, got {size}")
    g = torch.tensor([math.exp(-((i - size // 2) ** 2) / (2.0 * sigma**2)) for i in range(size)], dtype=torch.float64)
    return g / g.sum()


def ssim(
    x: Tensor,
    y: Tensor,
    window: int = 11,
    sigma: float = 1.5,
    padding: Literal["zero", "reflect"] = "zero",
    c1: float = 0.01**2,
    c2: float = 0.03**2,
) -> Tensor:
    """Per-sample mean SSIM of two maps in ``[0, 1]`` (``B,C,H,W`` each) -> ``B``.

    Local statistics use a Gaussian window (``window``, ``sigma``) applied per channel. ``padding="zero"``
    pads with zeros like BASNet's ``pytorch_ssim`` (border windows see a darker surround);
    ``"reflect"`` mirrors the border instead (needs ``H, W > window // 2``).
    ``C1 = 0.01**2`` and ``C2 = 0.03**2`` (dynamic range 1). Computed in float32 (float64 for
    float64 input); variances come from ``E[x^2] - E[x]^2``, so float32 results carry ~1e-4 error
    on flat regions, which is irrelevant for training.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two B,C,H,W maps of equal shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if padding not in ("zero", "reflect"):
        raise ValueError(f"padding must be 'zero' or 'reflect', got {padding!r}")
    dtype = torch.promote_types(_work_dtype(x), _work_dtype(y))
    x, y = x.to(dtype), y.to(dtype)
    c, r = x.shape[1], window // 2
    # the 2-D Gaussian is separable: filter the 5 statistics' maps in one grouped row + column pass
    g = _gaussian_1d(window, sigma).to(device=x.device, dtype=dtype)
    stats = torch.cat([x, y, x * x, y * y, x * y], 1)
    n = stats.shape[1]
    row_pad, col_pad = (0, r), (r, 0)  # zero padding, done by conv2d
    if padding == "reflect":
        stats = F.pad(stats, (r, r, r, r), mode="reflect")
        row_pad = col_pad = (0, 0)
    rows = F.conv2d(stats, g.view(1, 1, 1, window).expand(n, 1, 1, window), padding=row_pad, groups=n)
    filt = F.conv2d(rows, g.view(1, 1, window, 1).expand(n, 1, window, 1), padding=col_pad, groups=n)
    mu_x, mu_y, exx, eyy, exy = filt.split(c, 1)
    var_x = exx - mu_x * mu_x
    var_y = eyy - mu_y * mu_y
    cov = exy - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(1)


def ssim_loss(
    logits: Tensor,
    target: Tensor,
    window: int = 11,
    sigma: float = 1.5,
    padding: Literal["zero", "reflect"] = "zero",
    reduction: Reduction = "mean",
) -> Tensor:
    """``1 - SSIM(sigmoid(logits), target)`` per sample (BASNet's SSIM loss; see :func:`ssim`).

    ``logits, target: B,1,H,W`` -> scalar, or ``B`` with ``reduction="none"``. Range ``[0, 2]``.
    """
    logits, target = _check(logits, target)
    return _reduce(1.0 - ssim(torch.sigmoid(logits), target, window, sigma, padding), reduction)


def structure_loss(
    logits: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    legacy_unweighted_bce: bool = False,
) -> Tensor:
    """F3Net's pixel-position-aware "structure loss" (also SAM2-UNet's): weighted BCE + weighted IoU.

    Weights ``w = 1 + 5 * |avg_pool31(target) - target|`` (kernel 31, stride 1, padding 15,
    ``count_include_pad=True``, so borders see zero padding), larger near object edges.
    ``wbce = sum(w * bce) / sum(w)``; ``wiou = 1 - (sum(w*p*t) + 1) / (sum(w*(p+t)) - sum(w*p*t) + 1)``
    with ``p = sigmoid(logits)``, sums per sample.

    ``legacy_unweighted_bce=True`` reproduces the public F3Net / SAM2-UNet code exactly: there
    ``F.binary_cross_entropy_with_logits(..., reduce='none')`` hits the deprecated ``reduce`` flag
    (a truthy string), returns the plain mean BCE, so the BCE term is effectively unweighted.

    ``logits, target: B,1,H,W`` -> scalar, or ``B`` with ``reduction="none"``.
    """
    logits, target = _check(logits, target)
    weit = 1.0 + 5.0 * torch.abs(F.avg_pool2d(target, kernel_size=31, stride=1, padding=15) - target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if legacy_unweighted_bce:
        wbce = bce.flatten(1).mean(1)
    else:
        wbce = (weit * bce).flatten(1).sum(1) / weit.flatten(1).sum(1)
    p = torch.sigmoid(logits)
    inter = (p * target * weit).flatten(1).sum(1)
    union = ((p + target) * weit).flatten(1).sum(1)
    wiou = 1.0 - (inter + 1.0) / (union - inter + 1.0)
    return _reduce(wbce + wiou, reduction)


def mask_iou(logits: Tensor, target: Tensor) -> Tensor:
    """IoU of each binarised mask (``logits > 0``) with the target (``> 0.5``), no gradient.

    ``logits: B,K,H,W``; ``target: B,1,H,W`` (broadcast over K) -> ``B,K`` in ``[0, 1]``.
    Empty prediction and empty target count as a perfect match (IoU 1); SAM2's training code
    returns 0 there instead, which never matters for SOD data where every image has an object.
    """
    with torch.no_grad():
        pred = logits.detach() > 0
        gt = (target.detach() > 0.5).to(pred.device)
        inter = (pred & gt).flatten(2).sum(-1).float()
        union = (pred | gt).flatten(2).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(union))


def iou_head_loss(pred_iou: Tensor, logits: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    """MSE between SAM's IoU-head prediction and each mask's actual IoU with the target.

    ``pred_iou: B,K``; ``logits: B,K,H,W``; ``target: B,1,H,W`` (resized to the logits if needed).
    The actual IoU (:func:`mask_iou`) is a constant: gradients reach only ``pred_iou``.
    Returns a scalar, or ``B`` (mean over K) with ``reduction="none"``.
    """
    if logits.dim() != 4 or pred_iou.shape != logits.shape[:2]:
        raise ValueError(f"pred_iou {tuple(pred_iou.shape)} must be B,K for logits B,K,H,W {tuple(logits.shape)}")
    target = _resize_target(target, logits.shape[-2:])
    actual = mask_iou(logits, target)
    per = ((pred_iou.float() - actual.float()) ** 2).mean(1)
    return _reduce(per, reduction)


def sod_objective(
    logits: Tensor,
    target: Tensor,
    bce: float = 1.0,
    dice: float = 1.0,
    ssim: float = 1.0,
    reduction: Reduction = "mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Report 000's objective ``bce * BCE + dice * Dice + ssim * (1 - SSIM)``.

    Returns ``(total, parts)`` where ``parts`` maps ``"bce"``, ``"dice"``, ``"ssim"`` to the
    *unweighted* terms (with graph; call ``.item()`` to log). Terms with weight 0 are skipped
    (not computed, absent from ``parts``). Shapes follow ``reduction``.
    """
    weights = {"bce": bce, "dice": dice, "ssim": ssim}
    fns: dict[str, Callable[..., Tensor]] = {"bce": bce_loss, "dice": dice_loss, "ssim": ssim_loss}
    parts = {k: fns[k](logits, target, reduction=reduction) for k, wk in weights.items() if wk != 0}
    if not parts:
        raise ValueError("sod_objective needs at least one non-zero weight")
    total = sum((weights[k] * v for k, v in parts.items()), torch.zeros((), device=logits.device))
    return total, parts


def _resize_target(target: Tensor, size: Sequence[int]) -> Tensor:
    """Resize a ``B,1,H,W`` target to ``size``; values stay in ``[0, 1]`` (soft at edges).

    Shrinking uses area averaging (the fraction of each output cell covered by the object);
    enlarging uses bilinear interpolation (``align_corners=False``).
    """
    size = (int(size[0]), int(size[1]))
    h, w = target.shape[-2:]
    if (h, w) == size:
        return target
    if size[0] <= h and size[1] <= w:
        return F.interpolate(target.float(), size=size, mode="area")
    return F.interpolate(target.float(), size=size, mode="bilinear", align_corners=False, antialias=True)


def deep_supervision(
    loss_fn: Callable[[Tensor, Tensor], Tensor | tuple[Tensor, Mapping[str, Tensor]]],
    logits_list: Sequence[Tensor],
    target: Tensor,
    weights: Sequence[float] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of ``loss_fn`` over several outputs (e.g. SAM2-UNet's 3 side outputs).

    ``logits_list``: outputs ``B,1,h_i,w_i``; ``target: B,1,H,W`` is resized to each output size
    when they differ (area when shrinking, bilinear when enlarging). ``weights`` default to 1 each.
    ``loss_fn`` may return a tensor or ``(total, parts)`` (e.g. :func:`sod_objective`). Returns ``(total, parts)`` with
    ``parts["out{i}"]`` = output i's unweighted loss, plus each named part summed over outputs
    with the same weights.
    """
    if len(logits_list) == 0:
        raise ValueError("deep_supervision needs at least one output")
    weights = [1.0] * len(logits_list) if weights is None else list(weights)
    if len(weights) != len(logits_list):
        raise ValueError(f"{len(weights)} weights for {len(logits_list)} outputs")
    total: Tensor | None = None
    parts: dict[str, Tensor] = {}
    for i, (lg, w) in enumerate(zip(logits_list, weights, strict=True)):
        out = loss_fn(lg, _resize_target(target, lg.shape[-2:]))
        loss, sub = out if isinstance(out, tuple) else (out, {})
        parts[f"out{i}"] = loss
        for k, v in sub.items():
            parts[k] = parts[k] + w * v if k in parts else w * v
        total = w * loss if total is None else total + w * loss
    assert total is not None
    return total, parts


def best_mask_loss(
    loss_fn: Callable[..., Tensor],
    logits: Tensor,
    target: Tensor,
) -> tuple[Tensor, Tensor]:
    """SAM's multi-mask rule: per sample, the loss of the best of K candidate masks.

    ``loss_fn(logits B,1,H,W, target, reduction="none") -> B``; ``logits: B,K,H,W``;
    ``target: B,1,H,W``. Returns ``(mean over batch of the per-sample minimum, best index B)``.
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be B,K,H,W, got {tuple(logits.shape)}")
    per = torch.stack([loss_fn(logits[:, k : k + 1], target, reduction="none") for k in range(logits.shape[1])], 1)
    best, idx = per.min(1)
    return best.mean(), idx
