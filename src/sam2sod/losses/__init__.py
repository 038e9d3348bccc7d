"""sam2sod.losses: SOD losses (BCE, Dice, SSIM, F3Net structure loss, IoU-head MSE) and builders."""

from .edge import edge_loss, edge_target
from .functional import (
    Reduction,
    bce_loss,
    best_mask_loss,
    deep_supervision,
    dice_loss,
    gaussian_window,
    iou_head_loss,
    mask_iou,
    sod_objective,
    ssim,
    ssim_loss,
    structure_loss,
)
from .modules import (
    LOSSES,
    PRESETS,
    BCELoss,
    DiceLoss,
    SODObjective,
    SSIMLoss,
    StructureLoss,
    WeightedLoss,
    build_loss,
)

__all__ = [
    "LOSSES",
    "PRESETS",
    "BCELoss",
    "DiceLoss",
    "Reduction",
    "SODObjective",
    "SSIMLoss",
    "StructureLoss",
    "WeightedLoss",
    "bce_loss",
    "best_mask_loss",
    "build_loss",
    "deep_supervision",
    "dice_loss",
    "edge_loss",
    "edge_target",
    "gaussian_window",
    "iou_head_loss",
    "mask_iou",
    "sod_objective",
    "ssim",
    "ssim_loss",
    "structure_loss",
]
