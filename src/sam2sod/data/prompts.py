"""Prompts for SAM2 simulated from the ground truth (training), oracle prompts, and the batch format.

Report 000 trains SAM2 with prompts derived from the GT mask: a random foreground point, a jittered
box and a noisy low-resolution mask. Such prompts leak the answer, so evaluation is prompt-free by
default; :func:`oracle_prompts` exists only for the clearly labelled ``--prompt oracle-*`` upper bound.

Conventions (SAM2's):

* The GT ``mask`` is a float tensor ``1,H,W`` or ``H,W`` in ``[0, 1]``, binarised at ``> 0.5``, already
  at the model input size (after augmentation and resizing): prompt coordinates are then input-image
  pixel coordinates. Everything here runs on the CPU (dataloader workers) and returns CPU tensors.
* Points are ``(x, y)`` = (column, row) integer pixel indices as float32; SAM2's prompt encoder adds
  0.5 itself to reach pixel centres. Labels: 1 foreground, 0 background, 2 / 3 box top-left /
  bottom-right corner, -1 padding.
* A box is ``(x0, y0, x1, y1)`` float32, inclusive pixel indices of the extreme pixels (as SAM2's
  ``mask_to_box``), clamped to ``[0, W-1] x [0, H-1]``.
* A mask prompt is low-resolution *logits* ``1,H/4,W/4``: ``+logit_scale`` inside, ``-logit_scale``
  outside (default 10, SAM2's ``20 * mask - 10`` scale for masks used as logits).
* Randomness only comes from the explicit ``torch.Generator``: same generator state, same prompts.

Batch format consumed by the SAM2 model wrapper (:func:`collate_prompts` -> :class:`PromptBatch`),
``None`` when no sample in the batch has a prompt:

* ``points (B,N,2) float32`` and ``labels (B,N) int64``: per sample the box (if any) first, as two
  points labelled 2 and 3, then the clicked points (labels 1 / 0); shorter rows are padded with
  point ``(0, 0)`` label -1. A prompt-free row is all padding, which is how SAM2 itself encodes "no
  prompt" (one ``(0, 0)`` point labelled -1). Pass as ``prompt_encoder(points=(points, labels),
  boxes=None, masks=...)``.
* ``mask_input (B,1,S/4,S/4) float32``: the low-res logits, zeros where a sample has none, and
  ``has_mask (B,) bool``. The wrapper must use SAM2's ``no_mask_embed`` dense embedding where
  ``has_mask`` is False (a zero mask is *not* "no mask").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

__all__ = [
    "OracleKind",
    "PromptBatch",
    "PromptConfig",
    "Prompts",
    "collate_prompts",
    "jitter_box",
    "lowres_logits",
    "noisy_lowres_mask",
    "oracle_prompts",
    "sample_points",
    "simulate_prompts",
    "tight_box",
]

OracleKind = Literal["box", "points", "mask"]
LABEL_BG, LABEL_FG, LABEL_BOX_TL, LABEL_BOX_BR, LABEL_PAD = 0, 1, 2, 3, -1


# ---------------------------------------------------------------- containers
@dataclass
class Prompts:
    """One sample's prompts; every field is optional.

    ``points (N,2) float32`` with ``labels (N,) int64`` (1 fg / 0 bg), ``box (4,) float32`` xyxy,
    ``mask_input (1,h,w) float32`` low-res logits.
    """

    points: Tensor | None = None
    labels: Tensor | None = None
    box: Tensor | None = None
    mask_input: Tensor | None = None

    def __post_init__(self) -> None:
        if (self.points is None) != (self.labels is None):
            raise ValueError("points and labels must be given together")
        if self.points is not None and self.labels is not None:
            if self.points.dim() != 2 or self.points.shape[1] != 2 or self.labels.shape != self.points.shape[:1]:
                raise ValueError(f"points must be N,2 and labels N, got {self.points.shape}, {self.labels.shape}")
        if self.box is not None and self.box.shape != (4,):
            raise ValueError(f"box must have shape (4,), got {tuple(self.box.shape)}")
        if self.mask_input is not None and (self.mask_input.dim() != 3 or self.mask_input.shape[0] != 1):
            raise ValueError(f"mask_input must be 1,h,w, got {tuple(self.mask_input.shape)}")

    @property
    def num_points(self) -> int:
        return 0 if self.points is None else int(self.points.shape[0])

    @property
    def kinds(self) -> tuple[str, ...]:
        """Which prompt types are present, e.g. ``("points", "box")``; ``()`` when prompt-free."""
        present = (
            ("points", self.num_points > 0),
            ("box", self.box is not None),
            ("mask", self.mask_input is not None),
        )
        return tuple(name for name, ok in present if ok)

    @property
    def is_empty(self) -> bool:
        return not self.kinds


@dataclass
class PromptBatch:
    """Collated prompts for a batch (see the module docstring for the exact meaning)."""

    points: Tensor  # B,N,2 float32
    labels: Tensor  # B,N int64
    mask_input: Tensor  # B,1,h,w float32
    has_mask: Tensor  # B bool

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    @property
    def has_points(self) -> Tensor:
        """``(B,) bool``: the row holds at least one real point or box corner."""
        return (self.labels >= 0).any(1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PromptBatch:
        return PromptBatch(
            *(
                t.to(device, non_blocking=non_blocking)
                for t in (self.points, self.labels, self.mask_input, self.has_mask)
            )
        )


@dataclass(frozen=True)
class PromptConfig:
    """How training prompts are simulated.

    A sample is prompt-free with probability ``p_prompt_free``; otherwise points, box and mask are
    each used independently with ``p_points`` / ``p_box`` / ``p_mask`` (so a sample can still end
    up prompt-free: see :attr:`effective_prompt_free`). ``k_fg`` / ``k_bg`` points are drawn;
    ``box_jitter`` is the max side shift as a fraction of the box side (at least
    ``box_min_shift_px``); ``mask_kernel`` is the inclusive range of odd erosion/dilation kernel
    sizes in low-res pixels; the mask prompt is ``S/lowres_factor`` with logits ``+-logit_scale``.
    """

    p_prompt_free: float = 0.5
    p_points: float = 0.5
    p_box: float = 0.5
    p_mask: float = 0.5
    k_fg: int = 1
    k_bg: int = 0
    box_jitter: float = 0.1
    box_min_shift_px: float = 2.0
    mask_kernel: tuple[int, int] = (3, 7)
    lowres_factor: int = 4
    logit_scale: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask_kernel", tuple(int(k) for k in self.mask_kernel))
        for name in ("p_prompt_free", "p_points", "p_box", "p_mask"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PromptConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.k_fg < 0 or self.k_bg < 0:
            raise ValueError("PromptConfig.k_fg and k_bg must be >= 0")
        if self.box_jitter < 0 or self.box_min_shift_px < 0:
            raise ValueError("PromptConfig.box_jitter and box_min_shift_px must be >= 0")
        _check_kernel_range(*self.mask_kernel)
        if self.lowres_factor < 1 or self.logit_scale <= 0:
            raise ValueError("PromptConfig.lowres_factor must be >= 1 and logit_scale > 0")

    @property
    def effective_prompt_free(self) -> float:
        """Probability that a non-empty mask yields no prompt at all."""
        none_drawn = (1 - self.p_points) * (1 - self.p_box) * (1 - self.p_mask)
        if self.k_fg + self.k_bg == 0:
            none_drawn = (1 - self.p_box) * (1 - self.p_mask)
        return self.p_prompt_free + (1 - self.p_prompt_free) * none_drawn


def _check_kernel_range(lo: int, hi: int) -> None:
    if lo < 1 or hi < lo or lo % 2 == 0 or hi % 2 == 0:
        raise ValueError(f"mask kernel range must be odd sizes 1 <= lo <= hi, got ({lo}, {hi})")


# ---------------------------------------------------------------- helpers
def _binary(mask: Tensor) -> Tensor:
    """``1,H,W`` or ``H,W`` float mask -> ``H,W`` bool on the CPU (``> 0.5``)."""
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.dim() != 2:
        raise ValueError(f"mask must be 1,H,W or H,W, got shape {tuple(mask.shape)}")
    return mask.detach().to("cpu") > 0.5


def _rand(gen: torch.Generator, n: int = 1) -> Tensor:
    return torch.rand(n, generator=gen, device=gen.device).cpu()


def _pick(idx: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """Up to ``k`` distinct entries of ``idx`` in random order."""
    if k <= 0 or idx.numel() == 0:
        return idx[:0]
    return idx[torch.randperm(idx.numel(), generator=gen, device=gen.device).cpu()[:k]]


def tight_box(mask: Tensor) -> Tensor | None:
    """Tight ``(4,)`` xyxy box of the object (inclusive pixel indices), ``None`` for an empty mask."""
    m = _binary(mask)
    rows, cols = m.any(1).nonzero().squeeze(1), m.any(0).nonzero().squeeze(1)
    if rows.numel() == 0:
        return None
    return torch.stack([cols[0], rows[0], cols[-1], rows[-1]]).float()


def lowres_logits(mask: Tensor, out_size: int | tuple[int, int], logit_scale: float = 10.0) -> Tensor:
    """GT as low-res logits ``(1,h,w)``: area-downsampled to ``out_size``, cells more than half covered
    are inside (for an object too small for any such cell: every cell it touches)."""
    low = _lowres_binary(_binary(mask), _size2(out_size))
    return _to_logits(low, logit_scale)


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _lowres_binary(m: Tensor, size: tuple[int, int]) -> Tensor:
    """Area-downsample and keep cells at least half covered; cells with any coverage if none is."""
    area = F.interpolate(m.float()[None, None], size=size, mode="area")[0, 0]
    low = area > 0.5
    return low if low.any() else area > 0


def _to_logits(m: Tensor, logit_scale: float) -> Tensor:
    return ((m.float() * 2.0 - 1.0) * logit_scale)[None]


# ---------------------------------------------------------------- random prompts
def sample_points(mask: Tensor, k_fg: int, k_bg: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw up to ``k_fg`` distinct object pixels and ``k_bg`` distinct background pixels.

    Returns ``points (N,2) float32`` as ``(x, y)`` and ``labels (N,) int64`` (fg first, label 1;
    then bg, label 0). ``N < k_fg + k_bg`` when fewer pixels are available.
    """
    m = _binary(mask)
    w = m.shape[1]
    flat = m.flatten()
    fg = _pick(flat.nonzero().squeeze(1), k_fg, gen)
    bg = _pick((~flat).nonzero().squeeze(1), k_bg, gen)
    idx = torch.cat([fg, bg])
    points = torch.stack([idx % w, idx // w], 1).float()
    labels = torch.cat([torch.full((fg.numel(),), LABEL_FG), torch.full((bg.numel(),), LABEL_BG)]).long()
    return points, labels


def jitter_box(
    mask: Tensor,
    gen: torch.Generator,
    max_shift: float = 0.1,
    min_shift_px: float = 2.0,
    max_shift_px: float | None = None,
) -> Tensor:
    """Tight box of the object with each side moved independently and uniformly.

    Side shifts are in ``[-d, d]`` with ``d = clip(max_shift * side, min_shift_px, max_shift_px)``
    (side = box width for x0/x1, height for y0/y1, in pixels). SAM2's ``sample_box_points`` uses
    ``max_shift=0.1`` with a 20 px cap (``max_shift_px=20``); the floor keeps tiny objects jittered.
    The result is clamped to the image and kept ordered (``x0 <= x1``, ``y0 <= y1``). ``-> (4,) xyxy``.
    """
    box = tight_box(mask)
    if box is None:
        raise ValueError("jitter_box needs a non-empty mask")
    h, w = _binary(mask).shape
    side = torch.stack([box[2] - box[0] + 1, box[3] - box[1] + 1])
    d = (max_shift * side).clamp(min=min_shift_px, max=max_shift_px)
    noise = (2.0 * _rand(gen, 4) - 1.0) * torch.stack([d[0], d[1], d[0], d[1]])
    x0, y0, x1, y1 = (box + noise).unbind()
    x0, x1 = torch.minimum(x0, x1).clamp(0, w - 1), torch.maximum(x0, x1).clamp(0, w - 1)
    y0, y1 = torch.minimum(y0, y1).clamp(0, h - 1), torch.maximum(y0, y1).clamp(0, h - 1)
    return torch.stack([x0, y0, x1, y1])


def noisy_lowres_mask(
    mask: Tensor,
    gen: torch.Generator,
    out_size: int | tuple[int, int],
    min_kernel: int = 3,
    max_kernel: int = 7,
    logit_scale: float = 10.0,
) -> Tensor:
    """GT degraded into a SAM2 mask prompt: low-res logits ``(1,h,w)``.

    The mask is area-downsampled to ``out_size`` and binarised (as :func:`lowres_logits`), then
    eroded or dilated (50/50) by a square max-pool with a random odd kernel in
    ``[min_kernel, max_kernel]`` (low-res pixels); an erosion that would erase the object becomes a
    dilation. Output logits are ``+logit_scale`` inside, ``-logit_scale`` outside.
    """
    _check_kernel_range(min_kernel, max_kernel)
    low = _lowres_binary(_binary(mask), _size2(out_size)).float()[None, None]
    n_sizes = (max_kernel - min_kernel) // 2 + 1
    k = min_kernel + 2 * int(torch.randint(n_sizes, (1,), generator=gen, device=gen.device).item())
    erode = bool(_rand(gen).item() < 0.5)
    dilated = F.max_pool2d(low, k, stride=1, padding=k // 2)
    noisy = dilated
    if erode:
        eroded = 1.0 - F.max_pool2d(1.0 - low, k, stride=1, padding=k // 2)
        if eroded.any():
            noisy = eroded
    return _to_logits(noisy[0, 0] > 0.5, logit_scale)


def simulate_prompts(mask: Tensor, cfg: PromptConfig, gen: torch.Generator) -> Prompts:
    """Random training prompts for one GT mask (``1,H,W`` or ``H,W``) following ``cfg``.

    Empty masks always give prompt-free samples. The mask prompt is ``(H // f, W // f)`` with
    ``f = cfg.lowres_factor``. The result depends only on the mask, ``cfg`` and the generator's state
    (seed each sample's generator from e.g. ``(seed, epoch, index)`` for reproducible runs).
    """
    m = _binary(mask)
    if not m.any():
        return Prompts()
    u = _rand(gen, 4)  # prompt-free, points, box, mask
    if u[0] < cfg.p_prompt_free:
        return Prompts()
    points = labels = box = mask_input = None
    if u[1] < cfg.p_points and cfg.k_fg + cfg.k_bg > 0:
        points, labels = sample_points(m, cfg.k_fg, cfg.k_bg, gen)
        if points.shape[0] == 0:
            points = labels = None
    if u[2] < cfg.p_box:
        box = jitter_box(m, gen, cfg.box_jitter, cfg.box_min_shift_px)
    if u[3] < cfg.p_mask:
        size = (m.shape[0] // cfg.lowres_factor, m.shape[1] // cfg.lowres_factor)
        mask_input = noisy_lowres_mask(m, gen, size, *cfg.mask_kernel, logit_scale=cfg.logit_scale)
    return Prompts(points, labels, box, mask_input)


# ---------------------------------------------------------------- oracle prompts
def oracle_prompts(
    mask: Tensor,
    kind: OracleKind,
    lowres_factor: int = 4,
    logit_scale: float = 10.0,
) -> Prompts:
    """Deterministic GT prompts for the labelled ``oracle-*`` upper bound (never for real results).

    * ``"box"``: the tight box.
    * ``"points"``: the object pixel farthest from the object's boundary (the image frame counts as
      boundary), label 1, plus the background pixel farthest from the object, label 0 (omitted when
      the object fills the image). Euclidean distance transform; among tied pixels the one nearest
      their centroid (then the first in row-major order).
    * ``"mask"``: the GT as low-res logits (:func:`lowres_logits`, size ``H // lowres_factor``).

    An empty mask gives an empty :class:`Prompts`.
    """
    m = _binary(mask)
    if kind not in ("box", "points", "mask"):
        raise ValueError(f"oracle prompt kind must be 'box', 'points' or 'mask', got {kind!r}")
    if not m.any():
        return Prompts()
    if kind == "box":
        return Prompts(box=tight_box(m))
    if kind == "mask":
        size = (m.shape[0] // lowres_factor, m.shape[1] // lowres_factor)
        return Prompts(mask_input=lowres_logits(m, size, logit_scale))
    arr = m.numpy()
    coords = [_farthest(ndimage.distance_transform_edt(np.pad(arr, 1))[1:-1, 1:-1])]
    labels = [LABEL_FG]
    if not arr.all():
        coords.append(_farthest(ndimage.distance_transform_edt(~arr)))
        labels.append(LABEL_BG)
    points = torch.tensor([[float(c), float(r)] for r, c in coords], dtype=torch.float32)
    return Prompts(points=points, labels=torch.tensor(labels, dtype=torch.int64))


def _farthest(dist: np.ndarray) -> tuple[int, int]:
    """``(row, col)`` of the maximum of a distance map; among ties, the one nearest their centroid
    (then the first in row-major order), so e.g. a full-image object gets a central point."""
    rows, cols = np.nonzero(dist >= dist.max() - 1e-9)
    d2 = (rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2
    i = int(np.argmin(d2))
    return int(rows[i]), int(cols[i])


# ---------------------------------------------------------------- batching
def collate_prompts(
    prompts: Sequence[Prompts], image_size: int | tuple[int, int], lowres_factor: int = 4
) -> PromptBatch | None:
    """Stack per-sample prompts into a :class:`PromptBatch`; ``None`` if every sample is prompt-free.

    ``image_size``: the model input size ``S`` (or ``(H, W)``); mask prompts must be
    ``(1, H // lowres_factor, W // lowres_factor)`` (SAM2: factor 4).
    """
    if all(p.is_empty for p in prompts):
        return None
    h, w = _size2(image_size)
    low = (h // lowres_factor, w // lowres_factor)
    rows: list[tuple[Tensor, Tensor]] = []
    for p in prompts:
        pts, lbl = [torch.zeros(0, 2)], [torch.zeros(0, dtype=torch.int64)]
        if p.box is not None:
            pts.append(p.box.float().view(2, 2))
            lbl.append(torch.tensor([LABEL_BOX_TL, LABEL_BOX_BR]))
        if p.points is not None and p.labels is not None:
            pts.append(p.points.float())
            lbl.append(p.labels.long())
        rows.append((torch.cat(pts), torch.cat(lbl)))
    n = max(1, max(r[1].numel() for r in rows))
    b = len(prompts)
    points = torch.zeros(b, n, 2)
    labels = torch.full((b, n), LABEL_PAD, dtype=torch.int64)
    mask_input = torch.zeros(b, 1, *low)
    has_mask = torch.zeros(b, dtype=torch.bool)
    for i, ((pt, lb), p) in enumerate(zip(rows, prompts, strict=True)):
        points[i, : lb.numel()] = pt
        labels[i, : lb.numel()] = lb
        if p.mask_input is not None:
            if tuple(p.mask_input.shape[-2:]) != low:
                raise ValueError(f"mask prompt {tuple(p.mask_input.shape)} does not match (1, {low[0]}, {low[1]})")
            mask_input[i] = p.mask_input.float()
            has_mask[i] = True
    return PromptBatch(points, labels, mask_input, has_mask)
