"""Batched prompt-free (or oracle-prompted) inference at each image's original size.

Used by validation during training, `sam2sod evaluate` and `sam2sod predict`, so all three see the
same preprocessing: bilinear (antialiased) resize to the model's square input, SAM2 mean/std.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from sam2sod.data.io import load_image, load_mask
from sam2sod.data.transforms import SAM2_MEAN, SAM2_STD

ORACLE_LABEL = "oracle prompt (uses ground truth)"


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 HxWx3 -> float32 3xSxS, resized (bilinear, antialias) and normalised with SAM2's mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    mean = torch.tensor(SAM2_MEAN).view(3, 1, 1)
    std = torch.tensor(SAM2_STD).view(3, 1, 1)
    return (x - mean) / std


class ImageListDataset(Dataset):
    """Images (and optionally masks, for oracle prompts) by path; returns model-ready tensors."""

    def __init__(self, items: Sequence[tuple[str, Path, Path | None]], size: int):
        self.items = list(items)
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        name, image_path, mask_path = self.items[i]
        image = load_image(image_path)
        out = {"image": preprocess(image, self.size), "name": name, "orig_size": torch.tensor(image.shape[:2])}
        if mask_path is not None:
            m = torch.from_numpy(load_mask(mask_path)).float().div_(255.0)[None, None]
            out["mask"] = F.interpolate(m, size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        return out


def logits_to_uint8(logits: torch.Tensor, size_hw: tuple[int, int]) -> np.ndarray:
    """Logits 1xhxw -> saliency uint8 HxW at the original size (bilinear upsampling of the logits)."""
    up = F.interpolate(logits[None].float(), size=tuple(size_hw), mode="bilinear", align_corners=False)[0, 0]
    return (torch.sigmoid(up) * 255).round().clamp_(0, 255).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def predict_items(model: torch.nn.Module, items: Sequence[tuple[str, Path, Path | None]], image_size: int,
                  device: torch.device, batch_size: int = 8, oracle: str | None = None, workers: int = 0,
                  multimask: bool = False, autocast_dtype: torch.dtype | None = None,
                  refine: int = 0, tta: str | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (name, uint8 saliency map at the original size) for each item, in order.

    `oracle` in {None, "box", "points", "mask"}: prompts derived from the GT mask (an upper bound that
    leaks the answer; callers must label such results with `ORACLE_LABEL`). `refine` / `tta`: self-prompted
    refinement passes and flip TTA (`sam2sod.refine.run_model`; no ground truth is read for them).
    """
    from sam2sod.data.prompts import collate_prompts, oracle_prompts
    from sam2sod.errors import SodError
    from sam2sod.refine import check_refine, run_model

    tta = check_refine(refine, tta, model)
    if refine and oracle is not None:
        raise SodError("--refine starts prompt-free; it cannot be combined with an oracle --prompt")

    was_training = model.training
    model.eval()
    loader = DataLoader(ImageListDataset(items, image_size), batch_size=batch_size, num_workers=workers)
    try:
        for batch in loader:
            images = batch["image"].to(device)
            prompts = None
            if oracle is not None:
                prompts = collate_prompts([oracle_prompts(m, oracle) for m in batch["mask"]], image_size)
                prompts = prompts.to(device) if prompts is not None else None
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = run_model(model, images, prompts, multimask, refine=refine, tta=tta)
            for j, name in enumerate(batch["name"]):
                yield name, logits_to_uint8(out["logits"][j], tuple(batch["orig_size"][j].tolist()))
    finally:
        model.train(was_training)
