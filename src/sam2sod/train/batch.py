"""What the training loop does to one batch: simulated prompts (per the method's policy), multi-scale
resizing, and the loss (SAM's multimask rule, IoU head, edge branch, or a model's own paper loss)."""

from __future__ import annotations

import torch

from sam2sod.errors import SodError
from sam2sod.runs.config import TrainConfig


def prompts_enabled(cfg: TrainConfig) -> bool:
    """`prompts.enabled`, or (null) the method's paper policy (`sam2sod methods`)."""
    from sam2sod.models.registry import trains_with_prompts

    return cfg.prompts.enabled if cfg.prompts.enabled is not None else trains_with_prompts(cfg.model.method)


def prompt_config(cfg: TrainConfig):
    """The `PromptConfig` of a run, every simulation setting passed through from `cfg.prompts`."""
    from sam2sod.data.prompts import PromptConfig

    p = cfg.prompts
    return PromptConfig(p_prompt_free=p.p_prompt_free, p_points=p.p_points, p_box=p.p_box, p_mask=p.p_mask,
                        k_fg=p.k_fg, k_bg=p.k_bg, box_jitter=p.box_jitter, box_min_shift_px=p.box_min_shift_px,
                        mask_kernel=tuple(p.mask_kernel), logit_scale=p.logit_scale)


def simulate_batch_prompts(masks: torch.Tensor, cfg: TrainConfig, seed: int, device: torch.device):
    """Prompts for a training batch (B,1,S,S masks) with a generator derived from (run seed, step); None when
    the run trains prompt-free (nothing is simulated then) or every row came out prompt-free."""
    from sam2sod.data.prompts import collate_prompts, simulate_prompts

    if not prompts_enabled(cfg):
        return None
    pcfg = prompt_config(cfg)
    gen = torch.Generator().manual_seed(seed)
    batch = collate_prompts([simulate_prompts(m.cpu(), pcfg, gen) for m in masks], cfg.model.image_size)
    return batch.to(device) if batch is not None else None


def iou_head_weight(cfg: TrainConfig) -> float:
    """`loss.iou_head`, or (null) 1.0 with `model.multimask` (the IoU head picks the mask) and 0 without."""
    w = cfg.loss.iou_head
    return (1.0 if cfg.model.multimask else 0.0) if w is None else float(w)


def _body_loss(logits: torch.Tensor, masks: torch.Tensor, cfg: TrainConfig, reduction: str = "mean"):
    from sam2sod.losses import sod_objective, structure_loss

    if cfg.loss.name == "structure":
        return structure_loss(logits, masks, reduction=reduction), {}
    return sod_objective(logits, masks, bce=cfg.loss.bce, dice=cfg.loss.dice, ssim=cfg.loss.ssim,
                         reduction=reduction)


def compute_loss(out: dict, masks: torch.Tensor, cfg: TrainConfig,
                 model: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The configured objective on a forward output; masks (B,1,S,S) in [0,1] -> (scalar loss, logged parts).

    multimask (`all_logits` (B,3,S,S) in `out`): per sample the loss of the best of the 3 masks (SAM's
    minimum-loss rule), and the IoU head regresses each mask's true IoU (MSE). `edge_logits`: + loss.edge x
    Dice against the mask's morphological gradient. A model with its own `compute_loss` (deep supervision,
    paper losses) uses it.
    """
    from sam2sod.losses import best_mask_loss, edge_loss, iou_head_loss

    own = getattr(model, "compute_loss", None)
    if own is not None:
        total, parts = own(out, masks)
        return total, {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in parts.items()}
    if "all_logits" in out:
        total, best = best_mask_loss(lambda lg, t, reduction: _body_loss(lg, t, cfg, reduction)[0],
                                     out["all_logits"].float(), masks)
        parts = {"body": total, "best_mask_index": best.float().mean()}
    else:
        total, parts = _body_loss(out["logits"].float(), masks, cfg)
    w_iou = iou_head_weight(cfg)
    if w_iou > 0 and "iou" in out:
        low = torch.nn.functional.interpolate(masks, size=out["low_res_logits"].shape[-2:], mode="area")
        iou = iou_head_loss(out["iou"].float(), out["low_res_logits"].float(), low)
        total, parts = total + w_iou * iou, {**parts, "iou_head": iou}
    if "edge_logits" in out and cfg.loss.edge > 0:
        edge = edge_loss(out["edge_logits"], masks)
        total, parts = total + cfg.loss.edge * edge, {**parts, "edge": edge}
    return total, {k: float(v.detach()) for k, v in parts.items()}


def multiscale_sizes(model: torch.nn.Module, cfg: TrainConfig) -> list[int]:
    """Training sizes for multi-scale training: `data.multiscale`, else the model's paper sizes
    (`TRAIN_SIZES`, e.g. F3Net), else none. SAM2 methods need their fixed input size."""
    from sam2sod.models import SAM2SOD

    sizes = cfg.data.multiscale if cfg.data.multiscale is not None else list(getattr(model, "TRAIN_SIZES", []))
    if sizes and isinstance(model, SAM2SOD):
        raise SodError(f"data.multiscale {sizes} needs a model that takes any input size; "
                       f"{cfg.model.method} runs at model.image_size={cfg.model.image_size}")
    bad = [s for s in sizes if s <= 0 or s % 32]
    if bad:
        raise SodError(f"data.multiscale sizes must be positive multiples of 32, got {bad}")
    return list(sizes)


def rescale_batch(images: torch.Tensor, masks: torch.Tensor, sizes: list[int],
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize a batch to one of `sizes`, chosen by a generator seeded from (run seed, step)."""
    gen = torch.Generator().manual_seed(seed)
    s = sizes[int(torch.randint(len(sizes), (1,), generator=gen))]
    if images.shape[-1] == s and images.shape[-2] == s:
        return images, masks
    resize = torch.nn.functional.interpolate
    return (resize(images, size=(s, s), mode="bilinear", align_corners=False),
            resize(masks, size=(s, s), mode="bilinear", align_corners=False))
