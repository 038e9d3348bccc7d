"""Method `sam2unet` (Xiong et al. 2024, SAM2-UNet): frozen Hiera + per-block adapters + RFB + U-Net decoder.

This method does NOT use SAM2's prompt encoder, FPN neck, mask decoder or `no_mem_embed`: they
are deleted (as SAM2-UNet does), so the model is prompt-free. `SAM2UNetSOD` is a SAM2SOD
subclass (the builder switches the instance's class in place) that keeps `method`, `method_cfg`,
`base_info`, `model_is_pretrained` and `image_encoder.trunk.*` key names.

- Adapter before every Hiera block (SAM2-UNet's code): x <- x + GELU(Linear_up(GELU(Linear_down(x))))
  with dim -> `adapter_dim` (32) -> dim, default PyTorch init (not identity at init, as in SAM2-UNet).
- RFB (receptive field block, the PraNet/SAM2-UNet "RFB_modified") reduces each of the four
  stage features (strides 4, 8, 16, 32) to `rfb_dim` (64) channels: four branches (1x1; 1x1 ->
  1xk -> kx1 -> 3x3 dilation k for k = 3, 5, 7), concatenated, fused by a 3x3 conv, plus a 1x1
  residual, ReLU. Convs are conv + BatchNorm (no ReLU inside, as in the reference code).
- U-Net decoder: three `Up` steps (bilinear x2 with align_corners=True, concat with the skip,
  two conv3x3-BN-ReLU) from stride 32 to stride 4, with 1x1 heads after each:
  side outputs at strides 16 and 8, the main output at stride 4; all upsampled bilinearly to S.

forward(images) -> {"logits": (B,1,S,S) main output, "low_res_logits": (B,1,S/4,S/4),
"aux_logits": [(B,1,S,S) from stride 16, (B,1,S,S) from stride 8]}. `compute_loss(out, target)`
sums F3Net's structure loss (weighted BCE + weighted IoU) over the three outputs.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models.peft.hiera_wrap import HieraWrapper
from sam2sod.models.sod_sam2 import SAM2SOD, PromptBatchLike


class BlockAdapter(nn.Module):
    """SAM2-UNet adapter on channels-last (..., C): x + GELU(up(GELU(down(x))))."""

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.up(F.gelu(self.down(x))))


class AdaptedHiera(HieraWrapper):
    """Hiera with a `BlockAdapter` before every block (`adapters.{i}`)."""

    def __init__(self, trunk: nn.Module, hidden: int = 32) -> None:
        super().__init__(trunk)
        self.adapters = nn.ModuleList(BlockAdapter(self.input_dim(i), hidden) for i in range(self.depth))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _, x = self.tokens(x)
        outputs = []
        for i, blk in enumerate(self.blocks):
            x = blk(self.adapters[i](x))
            if self.is_output(i):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


def conv_bn(cin: int, cout: int, kernel: int | tuple[int, int], padding: int | tuple[int, int] = 0,
            dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout))


class RFB(nn.Module):
    """Receptive field block: (B,cin,h,w) -> (B,cout,h,w)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn(cin, cout, 1)])
        for k in (3, 5, 7):
            self.branches.append(nn.Sequential(
                conv_bn(cin, cout, 1), conv_bn(cout, cout, (1, k), (0, k // 2)),
                conv_bn(cout, cout, (k, 1), (k // 2, 0)), conv_bn(cout, cout, 3, k, dilation=k)))
        self.fuse = conv_bn(4 * cout, cout, 3, 1)
        self.res = conv_bn(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat = torch.cat([b(x) for b in self.branches], dim=1)
        return F.relu(self.fuse(cat) + self.res(x))


class Up(nn.Module):
    """U-Net up step: x (B,c,h,w), skip (B,c,2h,2w) -> (B,cout,2h,2w)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin // 2
        self.conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self.conv(torch.cat([skip, x], dim=1))


class UNetDecoder(nn.Module):
    """Four stage features (strides 4..32) -> logits at strides 4 (main), 16 and 8 (side)."""

    def __init__(self, stage_dims: list[int], width: int = 64) -> None:
        super().__init__()
        self.rfbs = nn.ModuleList(RFB(c, width) for c in stage_dims)
        self.ups = nn.ModuleList(Up(2 * width, width) for _ in range(3))
        self.side16 = nn.Conv2d(width, 1, 1)
        self.side8 = nn.Conv2d(width, 1, 1)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x4, x8, x16, x32 = (rfb(f) for rfb, f in zip(self.rfbs, feats, strict=True))
        x = self.ups[0](x32, x16)
        side16 = self.side16(x)
        x = self.ups[1](x, x8)
        side8 = self.side8(x)
        x = self.ups[2](x, x4)
        return self.head(x), side16, side8


class SAM2UNetSOD(SAM2SOD):
    """SAM2SOD whose forward is SAM2-UNet's; no prompt path (see the module docstring)."""

    unet: UNetDecoder
    loss_weights: tuple[float, float, float]

    @property
    def device(self) -> torch.device:
        return self.image_encoder.trunk.pos_embed.device

    def encode_image(self, images: torch.Tensor) -> dict[str, Any]:
        raise SodError("sam2unet has no SAM2 mask decoder path: call the model itself")

    def decode(self, features: dict[str, Any], prompts: PromptBatchLike | None = None,
               multimask: bool = False) -> dict[str, torch.Tensor]:
        raise SodError("sam2unet has no SAM2 mask decoder path: call the model itself")

    def forward(self, images: torch.Tensor, prompts: PromptBatchLike | None = None,
                multimask: bool = False) -> dict[str, Any]:
        """images (B,3,S,S) -> logits (B,1,S,S), low_res_logits (B,1,S/4,S/4), aux_logits [2 x (B,1,S,S)].

        Prompts and multimask are ignored (warned once): SAM2-UNet is prompt-free.
        """
        self._check_images(images)
        if multimask or _has_prompt(prompts):
            warnings.warn("sam2unet is prompt-free: prompts / multimask are ignored", UserWarning, stacklevel=2)
        main, side16, side8 = self.unet(self.image_encoder.trunk(images))
        size = (self.image_size, self.image_size)
        up = [F.interpolate(t.float(), size=size, mode="bilinear", align_corners=False) for t in (main, side16, side8)]
        return {"logits": up[0], "low_res_logits": main.float(), "aux_logits": up[1:]}

    def compute_loss(self, out: dict[str, Any], target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Deep supervision: sum of structure losses of logits and both aux_logits; target (B,1,S,S)."""
        from sam2sod.losses import deep_supervision, structure_loss

        outs = [out["logits"], *out["aux_logits"]]
        return deep_supervision(structure_loss, outs, target, weights=self.loss_weights)


def _has_prompt(prompts: PromptBatchLike | None) -> bool:
    if prompts is None:
        return False
    pts = getattr(prompts, "points", None)
    return (pts is not None and pts.shape[1] > 0) or getattr(prompts, "mask_input", None) is not None


def apply_sam2unet(model: SAM2SOD, *, adapter_dim: int = 32, rfb_dim: int = 64) -> None:
    """Turn a SAM2SOD into a SAM2UNetSOD in place.

    adapter_dim: adapter bottleneck width; rfb_dim: RFB / decoder width. Frozen: Hiera.
    Trainable: adapters, RFBs and the U-Net decoder. Deleted: neck, prompt encoder, mask decoder,
    no_mem_embed.
    """
    from sam2sod.models.freeze import freeze, unfreeze

    if int(adapter_dim) < 1 or int(rfb_dim) < 1:
        raise SodError(f"sam2unet needs adapter_dim >= 1 and rfb_dim >= 1 (got {adapter_dim}, {rfb_dim})")
    device = model.no_mem_embed.device
    enc = model.image_encoder
    if not enc.trunk.return_interm_layers:
        raise SodError("sam2unet needs all four Hiera stage features (return_interm_layers)")
    freeze(model)
    enc.trunk = AdaptedHiera(enc.trunk, int(adapter_dim)).to(device)
    del enc.neck, model.sam_prompt_encoder, model.sam_mask_decoder, model.no_mem_embed
    model.__class__ = SAM2UNetSOD  # same instance, SAM2-UNet forward (no state is copied)
    model.unet = UNetDecoder(enc.trunk.stage_dims(), int(rfb_dim)).to(device)
    model.loss_weights = (1.0, 1.0, 1.0)
    unfreeze(enc.trunk.adapters)
    unfreeze(model.unet)
