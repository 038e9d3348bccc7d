"""Method `sam_adapter` (report 002; Chen et al. 2023, SAM-Adapter / explicit visual prompting) on Hiera.

Frozen image encoder; trainable prompt generator, prompt encoder and mask decoder. With c the
small prompt width (`last stage width // scale_factor`, e.g. 768 // 32 = 24 for hiera tiny):

- handcrafted knowledge: the image's high-frequency component (`fft_high_pass`: centred FFT,
  the low-frequency square holding a fraction `freq_ratio` of the spectrum zeroed, inverse FFT,
  absolute value as in the SAM-Adapter code), patch-embedded to c channels by a 7x7 stride-4 conv
  (the geometry of Hiera's own patch embedding) -> (B,S/4,S/4,c);
- embedding knowledge: Hiera's patch embedding (before its position embedding) projected by a
  Linear C0 -> c -> (B,S/4,S/4,c);
- F = handcrafted + embedding (the report's F_i = sum_j w_j F_j with unit weights).

Hiera changes width and resolution between stages (a ViT does not), so F is brought to each
block's *input* geometry (see `hiera_wrap`): resolution by average pooling F over 2^k x 2^k
cells for an input at stage k (stride 4 * 2^k; the q-pool block that opens stage k+1 still takes
stage-k input), width by a shared `MLP_up` per stage width (one Linear c -> C_k per stage, shared
by every block whose input is at that stage). Per block i:

    P_i = MLP_up[k(i)](GELU(MLP_tune_i(pool_k(i)(F))))   and block i runs on  x + P_i.

`MLP_up` weights and biases start at zero, so P_i = 0 and the model starts exactly equal to the
frozen one. Parameters depend on no image size, so any multiple of 32 works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models.peft.hiera_wrap import HieraWrapper


def low_freq_mask(h: int, w: int, ratio: float, device: torch.device | None = None) -> torch.Tensor:
    """(h,w) bool, True on the low frequencies (unshifted FFT layout) to remove.

    The region is the square |f_y| < sqrt(ratio) * h / 2 and |f_x| < sqrt(ratio) * w / 2 in integer
    frequencies, symmetric under f -> -f (so a real image stays real) and covering about `ratio`
    of the spectrum (SAM-Adapter masks a centred square of area ratio * h * w). ratio 0: nothing.
    """
    fy = torch.fft.fftfreq(h, d=1.0 / h, device=device).abs()
    fx = torch.fft.fftfreq(w, d=1.0 / w, device=device).abs()
    r = math.sqrt(ratio)
    return (fy < r * h / 2)[:, None] & (fx < r * w / 2)[None, :]


def fft_high_pass(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """High-frequency component of real images (..., H, W): remove `low_freq_mask` frequencies.

    Returns the real inverse FFT (no absolute value), same shape and dtype as `x`.
    """
    h, w = x.shape[-2:]
    spec = torch.fft.fft2(x if x.dtype == torch.float64 else x.float())
    spec = spec.masked_fill(low_freq_mask(h, w, ratio, x.device), 0)
    return torch.fft.ifft2(spec).real.to(x.dtype)


class PromptGenerator(nn.Module):
    """Builds the per-block prompts P_i (channels-last, the block's input geometry)."""

    def __init__(self, c0: int, width: int, block_dims: list[int], block_stages: list[int], stage_dims: list[int],
                 freq_ratio: float) -> None:
        super().__init__()
        self.freq_ratio = float(freq_ratio)
        self.block_stages = list(block_stages)
        self.handcrafted = nn.Conv2d(3, width, kernel_size=7, stride=4, padding=3)
        self.embedding = nn.Linear(c0, width)
        self.tune = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in block_dims)
        if any(d != stage_dims[k] for d, k in zip(block_dims, block_stages, strict=True)):
            raise ValueError("block input widths do not match their stage widths")
        self.up = nn.ModuleList(nn.Linear(width, stage_dims[k]) for k in range(max(block_stages) + 1))
        for up in self.up:
            nn.init.zeros_(up.weight)
            nn.init.zeros_(up.bias)

    def features(self, images: torch.Tensor, patch_tokens: torch.Tensor) -> torch.Tensor:
        """F: images (B,3,S,S) + patch embedding (B,S/4,S/4,C0) -> (B,width,S/4,S/4)."""
        hand = self.handcrafted(fft_high_pass(images, self.freq_ratio).abs())
        emb = self.embedding(patch_tokens).permute(0, 3, 1, 2)
        return hand + emb

    def pyramid(self, feats: torch.Tensor) -> list[torch.Tensor]:
        """F average-pooled to every used stage: [(B,S/4/2^k,S/4/2^k,width)] channels-last."""
        out = [feats]
        for _ in range(1, len(self.up)):
            out.append(F.avg_pool2d(out[-1], kernel_size=2, stride=2))
        return [f.permute(0, 2, 3, 1) for f in out]

    def prompt(self, i: int, pyramid: list[torch.Tensor]) -> torch.Tensor:
        """P_i (B,h,w,C) for block i."""
        k = self.block_stages[i]
        return self.up[k](self.tune[i](pyramid[k]))


class SAMAdapterHiera(HieraWrapper):
    """Hiera with SAM-Adapter prompts added to every block's input tokens."""

    def __init__(self, trunk: nn.Module, scale_factor: int = 32, freq_ratio: float = 0.25) -> None:
        super().__init__(trunk)
        dims = self.stage_dims()
        width = max(1, dims[-1] // int(scale_factor))
        stages = [self.input_stage(i) for i in range(self.depth)]
        self.prompt_generator = PromptGenerator(int(self.blocks[0].dim), width,
                                                [self.input_dim(i) for i in range(self.depth)], stages,
                                                dims, freq_ratio)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        images = x
        emb, x = self.tokens(images)
        pyr = self.prompt_generator.pyramid(self.prompt_generator.features(images, emb))
        outputs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x + self.prompt_generator.prompt(i, pyr))
            if self.is_output(i):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


def apply_sam_adapter(model: nn.Module, *, scale_factor: int = 32, freq_ratio: float = 0.25) -> None:
    """Inject SAM-Adapter prompting into a SAM2SOD in place and set trainability.

    scale_factor: prompt width = last Hiera stage width // scale_factor; freq_ratio: fraction of
    the spectrum (low frequencies) removed from the image. Frozen: image encoder, no_mem_embed.
    Trainable: the prompt generator, the prompt encoder and the mask decoder.
    """
    from sam2sod.models.freeze import freeze, unfreeze

    if int(scale_factor) < 1 or not 0.0 <= float(freq_ratio) < 1.0:
        raise SodError(f"sam_adapter needs scale_factor >= 1 and 0 <= freq_ratio < 1 "
                       f"(got {scale_factor}, {freq_ratio})")
    enc = model.image_encoder
    freeze(model)
    enc.trunk = SAMAdapterHiera(enc.trunk, int(scale_factor), float(freq_ratio)).to(model.no_mem_embed.device)
    unfreeze(enc.trunk.prompt_generator)
    unfreeze(model.sam_prompt_encoder)
    unfreeze(model.sam_mask_decoder)
