"""Self-prompting (no ground truth) and flip test-time augmentation around any sam2sod model.

Self-prompting (`refine=K`): the first pass is prompt-free; each of the K refinement passes decodes the
cached image embedding again with prompts derived only from the previous pass's own output
(:func:`self_prompts`): the box around the predicted object, its deepest point (farthest from the mask
boundary) as foreground, the pixel farthest from it as background, and the previous low-res logits as
the mask prompt (SAM's iterative refinement). No ground truth is involved, so this is not an oracle mode.

Flip TTA (`tta="flip"`): the model also runs on the horizontally mirrored image (prompts mirrored too);
the mirrored output is flipped back and the two probability maps are averaged (returned as logits).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from sam2sod.data.prompts import LABEL_BG, LABEL_BOX_BR, LABEL_BOX_TL, LABEL_FG, PromptBatch, Prompts, collate_prompts
from sam2sod.errors import SodError

__all__ = ["best_low_res", "count_refine_skips", "decode_refined", "flip_prompts", "record_refine_skips",
           "self_prompts"]

_MIN_PART = 0.05  # components smaller than this fraction of the largest one are ignored (speckle)
_SKIPS: ContextVar[list[int] | None] = ContextVar("sam2sod_refine_skips", default=None)


def record_refine_skips(skipped: Tensor | None) -> None:
    """Add the images of `skipped` (B,) bool (refinement found no object) to the `count_refine_skips` block's count."""
    counter = _SKIPS.get()
    if counter is not None and skipped is not None:
        counter[0] += int(skipped.sum())


@contextmanager
def count_refine_skips() -> Iterator[list[int]]:
    """Count the images whose refinement was skipped because the first pass found no object (nothing to
    prompt with: their map is the prompt-free one) in `run_model` calls inside the block; yields [count]."""
    box = [0]
    token = _SKIPS.set(box)
    try:
        yield box
    finally:
        _SKIPS.reset(token)


def self_prompts(logits: Tensor, low_res: Tensor) -> Prompts:
    """Prompts from one prediction of the model itself: logits (1,S,S) and low-res logits (1,S/4,S/4).

    The prediction is binarised at the metrics' adaptive threshold ``min(2 * mean(p), 1)``; connected
    parts under 5% of the largest are dropped. Returns box (4,), points (N,2) with labels (N,) (deepest
    pixel of the largest part, label 1; then the pixel farthest from the object, label 0, if any) and
    mask_input = `low_res`; an empty `Prompts` when nothing is predicted.
    """
    prob = torch.sigmoid(logits.detach().float())[0].cpu().numpy()
    thr = min(2.0 * float(prob.mean()), 1.0)
    mask = prob >= thr if thr > 0 else prob > 0
    parts, n = ndimage.label(mask)
    if n == 0:
        return Prompts()
    sizes = np.bincount(parts.ravel())[1:]
    keep = np.flatnonzero(sizes >= _MIN_PART * sizes.max()) + 1
    mask = np.isin(parts, keep)
    largest = parts == int(np.argmax(sizes)) + 1
    ys, xs = np.nonzero(mask)
    box = torch.tensor([xs.min(), ys.min(), xs.max(), ys.max()], dtype=torch.float32)
    points = [_deepest(ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1])]
    labels = [LABEL_FG]
    if not mask.all():
        points.append(_deepest(ndimage.distance_transform_edt(~mask)))
        labels.append(LABEL_BG)
    return Prompts(points=torch.tensor(points, dtype=torch.float32), labels=torch.tensor(labels),
                   box=box, mask_input=low_res.detach().float().cpu())


def _deepest(dist: np.ndarray) -> tuple[float, float]:
    """(x, y) of the maximum of a distance map; among ties the one nearest their centroid (row-major first)."""
    rows, cols = np.nonzero(dist >= dist.max() - 1e-9)
    i = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
    return float(cols[i]), float(rows[i])


def best_low_res(out: dict[str, Tensor]) -> Tensor:
    """(B,1,S/4,S/4): the low-res logits of the mask `logits` came from (the best one with multimask)."""
    low = out["low_res_logits"]
    if "best_index" in out and low.shape[1] > 1:
        idx = torch.arange(low.shape[0], device=low.device)
        return low[idx, out["best_index"]].unsqueeze(1)
    return low[:, :1]


def decode_refined(model: torch.nn.Module, features: dict[str, Any], prompts: PromptBatch | None = None,
                   multimask: bool = False, refine: int = 0) -> dict[str, Tensor]:
    """`model.decode(features, prompts)`, then `refine` self-prompted passes (prompt-free start only).

    Returns `decode`'s dict with low_res_logits (B,1,S/4,S/4) of the returned mask after refinement and
    refine_skipped (B,) bool: the images whose first pass found no object (not refined).
    """
    if refine and prompts is not None:
        raise SodError("--refine starts from the prompt-free prediction; it cannot be combined with prompts "
                       "(points, box or mask_input)")
    out = model.decode(features, prompts, multimask)
    size = int(out["logits"].shape[-1])
    skipped = None
    for _ in range(refine):
        low = best_low_res(out)
        own = [self_prompts(out["logits"][i], low[i]) for i in range(low.shape[0])]
        skipped = torch.tensor([p.is_empty for p in own]) if skipped is None else skipped
        batch = collate_prompts(own, size)
        if batch is None:
            break
        out = model.decode(features, batch.to(low.device), multimask)
    if refine:
        out = {**out, "low_res_logits": best_low_res(out), "refine_skipped": skipped}
    return out


def flip_prompts(prompts: PromptBatch | None, size: int) -> PromptBatch | None:
    """Mirror a `PromptBatch` left-right for an input of side `size` (box corners stay top-left/bottom-right)."""
    if prompts is None:
        return None
    labels = prompts.labels
    points = prompts.points.clone()
    real = labels >= 0
    points[..., 0] = torch.where(real, size - 1 - points[..., 0], points[..., 0])
    for b in range(labels.shape[0]):  # a box's x0 / x1 swap roles
        tl = (labels[b] == LABEL_BOX_TL).nonzero().flatten()
        br = (labels[b] == LABEL_BOX_BR).nonzero().flatten()
        for i, j in zip(tl.tolist(), br.tolist(), strict=False):
            points[b, i, 0], points[b, j, 0] = points[b, j, 0].clone(), points[b, i, 0].clone()
    return PromptBatch(points, labels, prompts.mask_input.flip(-1), prompts.has_mask)


