"""Method 000: stage Adapters + per-block CBAM inside SAM2's (frozen) Hiera trunk.

Design (the report only says "with a residual"; we make every module start as the identity):
- Adapter after each Hiera stage: x + up(GELU(down(x))), hidden = round(dim * ratio); `up` is
  zero-initialised (weight and bias), so the adapter is exactly the identity at init.
- CBAM after each Hiera block (Woo et al. 2018, channel then spatial attention), each applied as
  a *gated residual*: x <- x + g_c * (M_c(x) * x), then x <- x + g_s * (M_s(x) * x), where
  M_c = sigmoid(MLP(avgpool x) + MLP(maxpool x)) (shared MLP, ReLU, dim -> dim/reduction -> dim),
  M_s = sigmoid(conv7x7([mean_c x, max_c x])), and g_c, g_s are per-channel gates initialised to 0
  (LayerScale/ReZero style). This is our reading of the report's "with a residual": each attention
  gets its own residual, so even with g = 1 it is x + M(x) * x per attention, not the original
  CBAM's plain product M(x) * x, and not exactly the report's listing. With g = 0 (init) the module is
  exactly the identity. No BatchNorm after the 7x7 conv (small batches).
- Hiera blocks work on channels-last (B,H,W,C) tensors; so do these modules.

Edge branch (`edge=True`; the report's text: the decoder predicts an object mask and an edge mask, BCE
on the body and Dice on the edges; its code listing is single-mask): `EdgeHead` reads the mask decoder's
stride-4 high-res feature (conv_s0 output) and the chosen low-res mask logits and predicts one edge
channel, returned as `edge_logits` (B,1,S,S); the trainer adds `loss.edge` x Dice against the mask's
morphological gradient (`sam2sod.losses.edge_target`). The saliency output is unchanged by it.

Injection: `AdapterCBAMHiera` replaces `image_encoder.trunk`. It re-registers the original
trunk's `patch_embed`, `pos_embed`, `pos_embed_window` and `blocks` under the same names (so
official checkpoint keys are unchanged) and adds `adapters.{stage}` and `cbams.{block}`; its
forward is Hiera.forward with the two insertions. sam2's source is not modified.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.models.peft.hiera_wrap import HieraWrapper
from sam2sod.models.sod_sam2 import SAM2SOD, PromptBatchLike


class Adapter(nn.Module):
    """Bottleneck adapter on (..., C) tensors: x + up(GELU(down(x))); identity at init."""

    def __init__(self, dim: int, ratio: float = 0.25) -> None:
        super().__init__()
        if ratio <= 0:
            raise ValueError(f"adapter ratio must be > 0, got {ratio}")
        hidden = max(1, round(dim * ratio))
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class ChannelAttention(nn.Module):
    """M_c(x) for channels-last x (B,H,W,C) -> (B,1,1,C) in (0,1)."""

    def __init__(self, dim: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(4, dim // reduction)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(1, 2))
        mx = x.amax(dim=(1, 2))
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))[:, None, None, :]


class SpatialAttention(nn.Module):
    """M_s(x) for channels-last x (B,H,W,C) -> (B,H,W,1) in (0,1)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"spatial attention kernel must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.stack([x.mean(dim=-1), x.amax(dim=-1)], dim=1)  # (B,2,H,W)
        return torch.sigmoid(self.conv(maps)).permute(0, 2, 3, 1)


class CBAM(nn.Module):
    """Gated residual CBAM on (B,H,W,C); gates start at 0 so the module starts as the identity."""

    def __init__(self, dim: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(dim, reduction)
        self.spatial = SpatialAttention(kernel_size)
        self.gate_channel = nn.Parameter(torch.zeros(dim))
        self.gate_spatial = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gate_channel * (self.channel(x) * x)
        return x + self.gate_spatial * (self.spatial(x) * x)


class AdapterCBAMHiera(HieraWrapper):
    """A Hiera trunk with a CBAM after every block and an Adapter after every stage.

    Input (B,3,S,S) -> list of stage features (B,C_i,S/4/2^i,S/4/2^i), like Hiera.forward.
    """

    def __init__(self, trunk: nn.Module, adapter_ratio: float = 0.25, cbam_reduction: int = 16,
                 cbam_kernel_size: int = 7) -> None:
        super().__init__(trunk)
        self.cbams = nn.ModuleList(CBAM(b.dim_out, cbam_reduction, cbam_kernel_size) for b in self.blocks)
        self.adapters = nn.ModuleList(Adapter(self.blocks[i].dim_out, adapter_ratio) for i in self.stage_ends)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _, x = self.tokens(x)  # (B,H,W,C) with Hiera's position embedding
        outputs = []
        for i, blk in enumerate(self.blocks):
            x = self.cbams[i](blk(x))
            if i in self.stage_ends:
                x = self.adapters[self.stage_ends.index(i)](x)
            if self.is_output(i):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


class EdgeHead(nn.Module):
    """high-res feature (B,C,S/4,S/4) + mask logits (B,1,S/4,S/4) -> edge logits (B,1,S/4,S/4)."""

    def __init__(self, cin: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin + 1, width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, 1, 1))

    def forward(self, feat: torch.Tensor, logits4: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([feat, logits4.to(feat.dtype)], dim=1))


class AdapterCBAMSOD(SAM2SOD):
    """SAM2SOD whose decode also returns `edge_logits` (B,1,S,S) when the edge head is on."""

    edge_head: EdgeHead | None

    def decode(self, features: dict[str, Any], prompts: PromptBatchLike | None = None,
               multimask: bool = False) -> dict[str, torch.Tensor]:
        out = super().decode(features, prompts, multimask)
        if self.edge_head is None:
            return out
        low = out["low_res_logits"]
        if multimask:
            low = low[torch.arange(low.shape[0], device=low.device), out["best_index"]].unsqueeze(1)
        edge = self.edge_head(features["high_res_feats"][0], low)
        size = (self.image_size, self.image_size)
        out["edge_logits"] = F.interpolate(edge.float(), size=size, mode="bilinear", align_corners=False)
        return out


def tuning_parameters(trunk: AdapterCBAMHiera) -> list[nn.Parameter]:
    return [*trunk.adapters.parameters(), *trunk.cbams.parameters()]


def apply_adapter_cbam(model: nn.Module, *, adapter_ratio: float = 0.25, cbam_reduction: int = 16,
                       cbam_kernel_size: int = 7, edge: bool = False) -> None:
    """Inject into a SAM2SOD in place and set trainability.

    Frozen: the image encoder (trunk + neck) and no_mem_embed. Trainable: adapters, CBAMs,
    the prompt encoder and the mask decoder (including its conv_s0/conv_s1 high-res projections),
    and with `edge` the edge head.
    """
    from sam2sod.models.freeze import freeze, unfreeze

    enc = model.image_encoder
    device = model.no_mem_embed.device
    freeze(model)
    enc.trunk = AdapterCBAMHiera(enc.trunk, adapter_ratio, cbam_reduction, cbam_kernel_size).to(device)
    unfreeze(tuning_parameters(enc.trunk))
    unfreeze(model.sam_prompt_encoder)
    unfreeze(model.sam_mask_decoder)
    model.__class__ = AdapterCBAMSOD  # same instance, decode also returns edge_logits when the head is on
    model.edge_head = None
    if edge:
        if not model.use_high_res_features:
            raise ValueError("adapter_cbam edge=True needs SAM2's high-resolution decoder features")
        model.edge_head = EdgeHead(model.sam_mask_decoder.conv_s0.out_channels).to(device)
