"""``nn.Module`` wrappers around :mod:`sam2sod.losses.functional`, a registry and ``build_loss``.

Single-term modules (:class:`BCELoss`, :class:`DiceLoss`, :class:`SSIMLoss`, :class:`StructureLoss`)
return a tensor like ``torch.nn`` losses. Combinations (:class:`WeightedLoss`, :class:`SODObjective`,
and everything :func:`build_loss` returns) return ``(total, parts)`` with the unweighted terms in
``parts`` for logging; :func:`~sam2sod.losses.functional.deep_supervision` accepts either form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from . import functional as LF
from .functional import Reduction

LossFn = Callable[..., Tensor]

#: Name -> loss function ``fn(logits B,1,H,W, target B,1,H,W, reduction=...) -> Tensor``.
LOSSES: dict[str, LossFn] = {
    "bce": LF.bce_loss,
    "dice": LF.dice_loss,
    "ssim": LF.ssim_loss,
    "structure": LF.structure_loss,
}

#: Named weight presets accepted by :func:`build_loss`.
PRESETS: dict[str, dict[str, float]] = {
    "sod": {"bce": 1.0, "dice": 1.0, "ssim": 1.0},  # report 000: BCE + Dice + SSIM
    "report000": {"bce": 1.0, "dice": 1.0, "ssim": 1.0},
    "f3net": {"structure": 1.0},  # F3Net / SAM2-UNet weighted BCE + weighted IoU
}


class BCELoss(nn.Module):
    """Module form of :func:`~sam2sod.losses.functional.bce_loss`."""

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.bce_loss(logits, target, reduction=self.reduction)


class DiceLoss(nn.Module):
    """Module form of :func:`~sam2sod.losses.functional.dice_loss`."""

    def __init__(self, eps: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.eps = eps
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.dice_loss(logits, target, eps=self.eps, reduction=self.reduction)


class SSIMLoss(nn.Module):
    """Module form of :func:`~sam2sod.losses.functional.ssim_loss`."""

    def __init__(self, window: int = 11, sigma: float = 1.5, padding: str = "zero", reduction: Reduction = "mean"):
        super().__init__()
        LF.gaussian_window(window, sigma)  # validate early
        self.window, self.sigma, self.padding = window, sigma, padding
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.ssim_loss(logits, target, self.window, self.sigma, self.padding, self.reduction)  # type: ignore[arg-type]


class StructureLoss(nn.Module):
    """Module form of :func:`~sam2sod.losses.functional.structure_loss` (F3Net / SAM2-UNet)."""

    def __init__(self, reduction: Reduction = "mean", legacy_unweighted_bce: bool = False) -> None:
        super().__init__()
        self.reduction: Reduction = reduction
        self.legacy_unweighted_bce = legacy_unweighted_bce

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return LF.structure_loss(logits, target, self.reduction, self.legacy_unweighted_bce)


class WeightedLoss(nn.Module):
    """Weighted sum of registry losses: ``forward(logits, target) -> (total, parts)``.

    ``weights`` maps names in :data:`LOSSES` to weights; zero-weight terms are dropped.
    ``parts`` holds the unweighted terms (same shape as ``total``).
    """

    def __init__(self, weights: Mapping[str, float], reduction: Reduction = "mean") -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(LOSSES))
        if unknown:
            raise ValueError(f"unknown loss name(s) {unknown}; known: {sorted(LOSSES)}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        if not self.weights:
            raise ValueError("a weighted loss needs at least one non-zero weight")
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        parts = {k: LOSSES[k](logits, target, reduction=self.reduction) for k in self.weights}
        total = sum((self.weights[k] * v for k, v in parts.items()), torch.zeros((), device=logits.device))
        return total, parts

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.weights.items())


class SODObjective(WeightedLoss):
    """Report 000's objective ``bce * BCE + dice * Dice + ssim * (1 - SSIM)`` -> ``(total, parts)``."""

    def __init__(self, bce: float = 1.0, dice: float = 1.0, ssim: float = 1.0, reduction: Reduction = "mean"):
        super().__init__({"bce": bce, "dice": dice, "ssim": ssim}, reduction=reduction)


def _parse_spec(spec: str) -> dict[str, float]:
    """``"sod"`` | ``"structure"`` | ``"bce+dice"`` | ``"bce+0.5*ssim"`` -> weights."""
    s = spec.strip().lower()
    if s in PRESETS:
        return dict(PRESETS[s])
    weights: dict[str, float] = {}
    for term in s.split("+"):
        term = term.strip()
        w, _, name = term.rpartition("*")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ValueError(f"bad loss term {term!r} in {spec!r}") from None
        weights[name.strip()] = weights.get(name.strip(), 0.0) + weight
    return weights


def build_loss(name_or_weights: str | Mapping[str, float], **kwargs: Any) -> WeightedLoss:
    """Build a ``(total, parts)`` loss from a name, a ``"+"`` expression, or a weight mapping.

    Examples: ``"sod"`` (= bce+dice+ssim, report 000), ``"structure"`` / ``"f3net"``,
    ``"bce+dice"``, ``"bce+0.5*ssim"``, ``{"bce": 1, "dice": 1}``. ``kwargs`` go to
    :class:`WeightedLoss` (``reduction``). Unknown names raise ``ValueError``.
    """
    weights = _parse_spec(name_or_weights) if isinstance(name_or_weights, str) else dict(name_or_weights)
    return WeightedLoss(weights, **kwargs)
