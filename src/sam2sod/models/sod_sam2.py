"""`SAM2SOD`: the still-image part of SAM2 (image encoder, prompt encoder, mask decoder) for SOD.

The prediction path replicates `SAM2ImagePredictor.set_image` + `_predict` (sam2 1.1.0):
encoder -> conv_s0/conv_s1 on the stride-4/8 maps -> `no_mem_embed` added to the stride-16 map
-> prompt encoder (points with `boxes=None`, so SAM pads one "not a point" token; rows of a batch grouped by
their real point count, so a row never sees another row's padding) -> mask decoder
with `repeat_image=False` -> bilinear upsampling of the low-res logits to the input size.
Unlike `SAM2Base._forward_sam_heads` (the video path) there is no hard object-score gating of
the masks (which would set them to -1024 and block gradients); the object score is returned
as `object_score_logits` instead. Feature sizes come from the input, never from 1024.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models.freeze import frozen_norms_to_eval
from sam2sod.models.pos_cache import cache_position_embedding
from sam2sod.models.sam2_backbone import base_info


class PromptBatchLike(Protocol):
    """The prompt contract (see `sam2sod.data.prompts.PromptBatch`); any field may be None.

    points (B,N,2) float32 xy in input pixels; labels (B,N) int64: 1 fg, 0 bg, 2/3 box corners,
    -1 padding; mask_input (B,1,H/4,W/4) logits; has_mask (B,) bool.
    """

    points: torch.Tensor | None
    labels: torch.Tensor | None
    mask_input: torch.Tensor | None
    has_mask: torch.Tensor | None


class SAM2SOD(nn.Module):
    """SAM2 for still images. Submodule names equal SAM2Base's, so base keys load unchanged.

    The memory modules (memory_attention, memory_encoder, obj_ptr heads...) are dropped: a
    SAM2SOD state dict is the subset of the official one that images use, plus tuning modules.
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder
        cache_position_embedding(self.image_encoder.trunk)  # reused at inference, recomputed in training
        self.sam_prompt_encoder = sam.sam_prompt_encoder
        self.sam_mask_decoder = sam.sam_mask_decoder
        self.no_mem_embed = sam.no_mem_embed  # (1,1,256) added to the stride-16 map
        self.image_size: int = int(sam.image_size)
        self.directly_add_no_mem_embed: bool = bool(sam.directly_add_no_mem_embed)
        self.use_high_res_features: bool = bool(sam.use_high_res_features_in_sam)
        self.base_info: dict[str, Any] = base_info(sam)
        self.method: str | None = None
        self.method_cfg: dict[str, Any] = {}

    @property
    def model_is_pretrained(self) -> bool:
        """False when the base SAM2 weights are random (put this into every result file)."""
        return bool(self.base_info.get("pretrained", False))

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    def train(self, mode: bool = True) -> SAM2SOD:
        """Like nn.Module.train, but norm layers whose weights are frozen stay in eval mode."""
        super().train(mode)
        if mode:
            frozen_norms_to_eval(self)
        return self

    def _check_images(self, images: torch.Tensor) -> None:
        s = self.image_size
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (s, s):
            raise SodError(f"SAM2SOD expects images of shape (B,3,{s},{s}) (the model's image_size), "
                           f"got {tuple(images.shape)}")

    def encode_image(self, images: torch.Tensor) -> dict[str, Any]:
        """Image embedding, cacheable for re-prompting.

        images (B,3,S,S), normalised with SAM2 mean/std -> {"image_embed": (B,256,S/16,S/16),
        "high_res_feats": [(B,32,S/4,S/4), (B,64,S/8,S/8)]}.
        """
        self._check_images(images)
        out = self.image_encoder(images)
        fpn = list(out["backbone_fpn"])
        high_res: list[torch.Tensor] | None = None
        if self.use_high_res_features:
            high_res = [self.sam_mask_decoder.conv_s0(fpn[0]), self.sam_mask_decoder.conv_s1(fpn[1])]
        embed = fpn[-1]
        if self.directly_add_no_mem_embed:
            embed = embed + self.no_mem_embed.view(1, -1, 1, 1)
        return {"image_embed": embed, "high_res_feats": high_res}

    def prompt_groups(self, prompts: PromptBatchLike | None, batch_size: int) -> list[tuple[torch.Tensor, int]]:
        """Rows that share a sparse-token count: [(row indices (G,), real point count n)], n = 0 prompt-free.

        A row's real points are its labels up to the last one >= 0 (trailing -1 labels are batch padding,
        interior ones are kept). Decoding each group with exactly its own points makes every row's output
        independent of what else is in the batch: a prompt-free row gets zero sparse tokens, as at test time.
        """
        labels = getattr(prompts, "labels", None) if prompts is not None else None
        if labels is None or labels.shape[1] == 0:
            return [(torch.arange(batch_size), 0)]
        if labels.shape[0] != batch_size:
            raise ValueError(f"prompt labels {tuple(labels.shape)} do not fit batch {batch_size}")
        pos = torch.arange(1, labels.shape[1] + 1, device=labels.device)
        counts = ((labels >= 0) * pos).amax(1).cpu()
        return [((counts == n).nonzero().squeeze(1), int(n)) for n in torch.unique(counts).tolist()]

    def embed_prompts(
        self, prompts: PromptBatchLike | None, batch_size: int, rows: torch.Tensor | None = None, n_points: int = -1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> sparse (G,N',256) and dense (G,256,S/16,S/16) prompt embeddings of batch rows `rows` (all if None).

        `n_points`: how many leading points the rows use (-1: all columns; 0: none). No points -> sparse
        (G,0,256) (SAM's prompt-free path); N points -> N+1 tokens (SAM pads one "not a point" token, as
        SAM2ImagePredictor does). Dense: per row mask_downscaling(mask_input) where has_mask else
        no_mask_embed; has_mask None with a mask_input means every row has one.
        """
        pe = self.sam_prompt_encoder
        h, w = pe.image_embedding_size
        points = getattr(prompts, "points", None) if prompts is not None else None
        labels = getattr(prompts, "labels", None) if prompts is not None else None
        mask_input = getattr(prompts, "mask_input", None) if prompts is not None else None
        has_mask = getattr(prompts, "has_mask", None) if prompts is not None else None
        if points is not None and (labels is None or labels.shape != points.shape[:2] or points.shape[0] != batch_size):
            raise ValueError(f"prompt points {tuple(points.shape)} / labels "
                             f"{None if labels is None else tuple(labels.shape)} do not fit batch {batch_size}")
        if mask_input is not None and tuple(mask_input.shape) != (batch_size, 1, *pe.mask_input_size):
            raise ValueError(f"mask_input must be (B,1,{pe.mask_input_size[0]},{pe.mask_input_size[1]}) "
                             f"logits, got {tuple(mask_input.shape)}")

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return t if t is None or rows is None else t[rows.to(t.device)]

        g = batch_size if rows is None else int(rows.numel())
        points, labels, mask_input, has_mask = pick(points), pick(labels), pick(mask_input), pick(has_mask)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(g, -1, h, w)
        if points is not None and n_points != 0 and points.shape[1] > 0:
            n = points.shape[1] if n_points < 0 else n_points
            sparse, _ = pe(points=(points[:, :n].float(), labels[:, :n]), boxes=None, masks=None)
        else:
            sparse = torch.empty((g, 0, pe.embed_dim), device=no_mask.device, dtype=no_mask.dtype)

        dense = no_mask
        if mask_input is not None:
            if has_mask is None:
                has_mask = torch.ones(g, dtype=torch.bool, device=mask_input.device)
            if bool(has_mask.any()):
                mask_embed = pe.mask_downscaling(mask_input.to(no_mask.dtype))
                dense = torch.where(has_mask.view(-1, 1, 1, 1).to(torch.bool), mask_embed, no_mask)
        return sparse, dense

    def decode(
        self, features: dict[str, Any], prompts: PromptBatchLike | None = None, multimask: bool = False
    ) -> dict[str, torch.Tensor]:
        """Run prompt encoder + mask decoder on cached `encode_image` features, per prompt group.

        Returns logits (B,1,S,S) (with multimask: the mask with the highest predicted IoU),
        low_res_logits (B,K,S/4,S/4), iou (B,K), object_score_logits (B,1), and with multimask
        also all_logits (B,K,S,S) and best_index (B,). K = 3 if multimask else 1.
        """
        embed = features["image_embed"]
        b = embed.shape[0]
        high_res = features["high_res_feats"]
        groups = self.prompt_groups(prompts, b)
        parts = []
        for rows, n in groups:
            whole = len(groups) == 1
            sparse, dense = self.embed_prompts(prompts, b, None if whole else rows, n)
            idx = rows.to(embed.device)
            parts.append(self.sam_mask_decoder(
                image_embeddings=embed if whole else embed[idx],
                image_pe=self.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=False,
                high_res_features=high_res if whole or high_res is None else [f[idx] for f in high_res],
            ))
        if len(parts) == 1:
            low_res, iou, _, obj_score = parts[0]
        else:  # back to batch order
            order = torch.argsort(torch.cat([r for r, _ in groups])).to(embed.device)
            low_res, iou, obj_score = (torch.cat([p[i] for p in parts])[order] for i in (0, 1, 3))
        low_res = low_res.float()
        size = (self.image_size, self.image_size)
        out: dict[str, torch.Tensor] = {"low_res_logits": low_res, "iou": iou, "object_score_logits": obj_score}
        if multimask:
            best = torch.argmax(iou, dim=-1)
            all_logits = F.interpolate(low_res, size=size, mode="bilinear", align_corners=False)
            idx = torch.arange(b, device=low_res.device)
            out.update(all_logits=all_logits, best_index=best, logits=all_logits[idx, best].unsqueeze(1))
        else:
            out["logits"] = F.interpolate(low_res, size=size, mode="bilinear", align_corners=False)
        return out

    def forward(
        self, images: torch.Tensor, prompts: PromptBatchLike | None = None, multimask: bool = False
    ) -> dict[str, torch.Tensor]:
        """images (B,3,S,S) normalised with SAM2 mean/std; prompts None = prompt-free (SOD default).

        See `decode` for the returned tensors.
        """
        return self.decode(self.encode_image(images), prompts, multimask)
