"""One frame of SAM2's memory path on a tuned SAM2SOD: encode, detect, seed, track, write memory.

Shared by the streaming `VideoTracker` (no grad) and `forward_clip` (training). B is the batch of clips
(1 when tracking), S the model's image size, C = 256, H = W = S/16.

- `encode_frames`: the tuned model's own `encode_image` (adapters included), plus the neck's raw stride-16
  map and its position encoding, which SAM2's memory path reads (captured by a forward hook, so methods
  with their own `encode_image` such as Tuned SAM are covered).
- `detect`: the tuned model's prompt-free `decode` (exactly what image predict runs) and the decoder's
  output token for the object pointer (a forward hook).
- `seed` / `track` / `write_memory`: sam2's `_use_mask_as_output`, `_prepare_memory_conditioned_features` +
  `_forward_sam_heads` and `_encode_new_memory` through `SamView`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.models.memory import SamView

NO_OBJECT = -1024.0  # sam2's NO_OBJ_SCORE: the logits of a frame gated as "no object"
SEED_SCORE = 10.0  # +-: the object score sam2 gives a mask input (out_scale 20, out_bias -10)


@dataclass
class FrameFeatures:
    """Image features of B frames: `sod` for the tuned decode, `vision` / `pos` (HW,B,C) for memory."""

    sod: dict[str, Any]  # encode_image output: image_embed (B,C,H,W), high_res_feats [(B,32,4H,4W), (B,64,2H,2W)]
    vision: torch.Tensor  # (HW,B,C) raw stride-16 map (no no_mem_embed)
    pos: torch.Tensor  # (HW,B,C) its sine position encoding
    size: tuple[int, int]  # (H, W)

    def split(self, n: int) -> list[FrameFeatures]:
        """Cut a batch of n*B rows (frame-major: frame t holds rows t*B..t*B+B-1) into n frames."""
        b = self.vision.shape[1] // n

        def rows(x: torch.Tensor | None, t: int, dim: int = 0) -> torch.Tensor | None:
            return None if x is None else x.narrow(dim, t * b, b)

        out = []
        for t in range(n):
            sod = {"image_embed": rows(self.sod["image_embed"], t),
                   "high_res_feats": None if self.sod["high_res_feats"] is None
                   else [rows(h, t) for h in self.sod["high_res_feats"]]}
            out.append(FrameFeatures(sod, rows(self.vision, t, 1), rows(self.pos, t, 1), self.size))
        return out


@contextmanager
def _capture(module: nn.Module) -> Iterator[dict[str, Any]]:
    """{"out": the last output of `module.forward`} while the block runs."""
    box: dict[str, Any] = {}
    handle = module.register_forward_hook(lambda _m, _i, out: box.__setitem__("out", out))
    try:
        yield box
    finally:
        handle.remove()


def encode_frames(model: nn.Module, frames: torch.Tensor) -> FrameFeatures:
    """frames (N,3,S,S) normalised -> FrameFeatures of N rows (the image encoder runs once)."""
    enc = model.image_encoder
    with _capture(enc.neck) as box:
        sod = model.encode_image(frames)
    feats, pos = box["out"]
    level = len(feats) - 1 - int(enc.scalp)
    vision, vpos = feats[level], pos[level]
    size = (int(vision.shape[-2]), int(vision.shape[-1]))
    return FrameFeatures(sod, vision.flatten(2).permute(2, 0, 1), vpos.flatten(2).permute(2, 0, 1), size)


def object_pointer(view: SamView, token: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Decoder output token (B,C) -> object pointer (B,C), with sam2's no-object handling; present (B,1) 0/1."""
    ptr = view.obj_ptr_proj(token)
    if view.pred_obj_scores:
        lam = present.to(ptr.dtype)
        if view.fixed_no_obj_ptr:
            ptr = lam * ptr
        ptr = ptr + (1 - lam) * view.no_obj_ptr
    return ptr


def detect(model: nn.Module, ff: FrameFeatures, multimask: bool = False
           ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Prompt-free detection: (model.decode(ff.sod) -- image predict's output --, decoder token (B,C)).

    `multimask`: decode 3 masks and keep the one with the best predicted IoU, as image predict does for a run
    trained with ``model.multimask``; the token is that mask's (sam2's rule for the object pointer)."""
    with _capture(model.sam_mask_decoder) as box:
        out = model.decode(ff.sod, None, multimask)
    tokens = box["out"][2]
    if multimask and tokens.shape[1] > 1:
        return out, tokens[torch.arange(tokens.shape[0], device=tokens.device), out["best_index"]]
    return out, tokens[:, 0]


def detection_entry(view: SamView, ff: FrameFeatures, out: dict[str, torch.Tensor], token: torch.Tensor,
                    store_dtype: torch.dtype | None) -> dict[str, Any]:
    """Memory of a detection keyframe, treated as sam2 treats a mask input: the object is present where the
    mask has a positive pixel (score +-10), the mask written to memory is the detection's `logits`."""
    logits = out["logits"]
    present = (logits.flatten(1) > 0).any(1, keepdim=True).to(logits.dtype)
    score = SEED_SCORE * (2 * present - 1)
    gated = torch.where(present.view(-1, 1, 1, 1) > 0, logits, torch.full_like(logits, NO_OBJECT))
    ptr = object_pointer(view, token, present)
    return write_memory(view, ff, gated, score, ptr, from_mask=False, store_dtype=store_dtype)


def seed(view: SamView, ff: FrameFeatures, mask: torch.Tensor, store_dtype: torch.dtype | None
         ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """A given mask (B,1,S,S) as the frame's output, as sam2's `add_new_mask` + propagation preflight.

    -> (memory entry, low-res logits (B,1,S/4,S/4), object score (B,1): +10 if the mask is not empty, else -10).
    """
    hr = ff.sod["high_res_feats"]
    pix = ff.vision.permute(1, 2, 0).reshape(-1, view.hidden_dim, *ff.size)
    low, _, _, _, _, ptr, score = view._use_mask_as_output(pix, hr, mask.float())
    high = F.interpolate(low, size=(view.image_size, view.image_size), mode="bilinear", align_corners=False)
    entry = write_memory(view, ff, high, score, ptr, from_mask=True, store_dtype=store_dtype)
    return entry, low, score


def track(view: SamView, ff: FrameFeatures, output_dict: dict[str, dict[int, Any]], frame_idx: int,
          num_frames: int, multimask: bool) -> dict[str, torch.Tensor]:
    """sam2's tracking step on a non-conditioning frame: memory attention, then the (tuned) SAM heads.

    -> low_res (B,1,S/4,S/4) and logits (B,1,S,S) gated by the object score as sam2 gates them, raw_logits
    (B,1,S,S): the same mask before gating (for losses), object_score_logits (B,1), obj_ptr (B,C).
    """
    pix = view._prepare_memory_conditioned_features(
        frame_idx=frame_idx, is_init_cond_frame=False, current_vision_feats=[ff.vision],
        current_vision_pos_embeds=[ff.pos], feat_sizes=[ff.size], output_dict=output_dict, num_frames=num_frames)
    with _capture(view.sam_mask_decoder) as box:
        _, _, ious, low, high, ptr, score = view._forward_sam_heads(
            backbone_features=pix, high_res_features=ff.sod["high_res_feats"], multimask_output=multimask)
    raw = box["out"][0].float()
    if multimask:
        raw = raw[torch.arange(raw.shape[0], device=raw.device), ious.argmax(-1)].unsqueeze(1)
    size = (view.image_size, view.image_size)
    raw = F.interpolate(raw, size=size, mode="bilinear", align_corners=False)
    return {"low_res": low, "logits": high, "raw_logits": raw, "object_score_logits": score, "obj_ptr": ptr}


def write_memory(view: SamView, ff: FrameFeatures, high: torch.Tensor, score: torch.Tensor, ptr: torch.Tensor,
                 from_mask: bool, store_dtype: torch.dtype | None) -> dict[str, Any]:
    """sam2's memory encoder on a frame's mask logits (B,1,S,S) -> entry {maskmem_features (B,64,H,W),
    maskmem_pos_enc [(B,64,H,W)], obj_ptr (B,C)}; features cast to `store_dtype` (sam2 stores bfloat16)."""
    feats, pos = view._encode_new_memory(current_vision_feats=[ff.vision], feat_sizes=[ff.size],
                                         pred_masks_high_res=high, object_score_logits=score,
                                         is_mask_from_pts=from_mask)
    if store_dtype is not None:
        feats = feats.to(store_dtype)
    return {"maskmem_features": feats, "maskmem_pos_enc": pos, "obj_ptr": ptr}


class MemoryBank:
    """The bounded memory sam2 reads: at most `max_cond` conditioning frames (the most recent ones), and
    the recent non-conditioning frames sam2's memory attention can still reach -- spatial memories for the
    last stride*(num_maskmem-2)+1 frames, object pointers for the last max_ptrs-1. Nothing else is kept."""

    def __init__(self, view: SamView, max_cond: int, num_frames: int) -> None:
        self.max_cond = int(max_cond)
        n = int(view.num_maskmem)
        self.mem_window = int(view.memory_temporal_stride_for_eval) * max(n - 2, 0) if n > 1 else -1
        ptrs = min(num_frames, int(view.max_obj_ptrs_in_encoder)) if view.use_obj_ptrs_in_encoder else 0
        self.ptr_window = ptrs - 2
        self.cond: dict[int, dict[str, Any]] = {}
        self.non_cond: dict[int, dict[str, Any]] = {}
        self.pos_enc: list[torch.Tensor] | None = None

    def output_dict(self) -> dict[str, dict[int, dict[str, Any]]]:
        """sam2's `output_dict` layout (what `_prepare_memory_conditioned_features` reads)."""
        return {"cond_frame_outputs": self.cond, "non_cond_frame_outputs": self.non_cond}

    def add(self, frame_idx: int, entry: dict[str, Any], cond: bool) -> None:
        """Store frame `frame_idx`'s memory and drop whatever no later frame can read."""
        if self.pos_enc is None:  # the same for every frame: one copy (as sam2's `constants`)
            self.pos_enc = list(entry["maskmem_pos_enc"])
        entry = {**entry, "maskmem_pos_enc": self.pos_enc}
        (self.cond if cond else self.non_cond)[frame_idx] = entry
        while len(self.cond) > self.max_cond:  # the oldest keyframe becomes an ordinary recent frame
            oldest = min(self.cond)
            self.non_cond[oldest] = self.cond.pop(oldest)
        keep = max(self.ptr_window, self.mem_window)
        for t in list(self.non_cond):
            age = frame_idx - t
            if age > keep:
                del self.non_cond[t]
            elif age > self.mem_window and self.non_cond[t]["maskmem_features"] is not None:
                self.non_cond[t] = {**self.non_cond[t], "maskmem_features": None}

    def frames(self) -> dict[str, list[int]]:
        """Stored frame indices: {"cond": [...], "spatial": [...], "pointer_only": [...]}."""
        spatial = [t for t, e in self.non_cond.items() if e.get("maskmem_features") is not None]
        return {"cond": sorted(self.cond), "spatial": sorted(spatial),
                "pointer_only": sorted(t for t in self.non_cond if t not in spatial)}

    def nbytes(self) -> int:
        """Bytes of every tensor held (the shared position encoding once)."""
        seen: set[int] = set()
        total = 0
        for e in [*self.cond.values(), *self.non_cond.values()]:
            for key in ("maskmem_features", "obj_ptr"):
                t = e.get(key)
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
        return total + sum(p.numel() * p.element_size() for p in (self.pos_enc or []))
