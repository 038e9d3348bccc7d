"""Method `tuned_sam` (report 001): Tuned Blocks side network, Multi-scale Refiner, Feature Aggregation Decoder.

`conv1x1` = 1x1 conv (no bias) + BatchNorm + GELU. GELU rather than ReLU because the expand
convs start with BN gamma = beta = 0 and ReLU'(0) = 0 would leave them without gradient.

Tuned Blocks (TB, eqs. 9-10), `tuned_blocks` = n of them over Hiera's N blocks (tiny 12, small 16,
base_plus 24, large 48), tuned block k sitting at the *input* of Hiera block j_k = floor(k * N / n)
(`hiera_wrap.spread`; N=12: n=12 -> every block, 6 -> 0,2,..,10, 9 -> 0,1,2,4,5,6,8,9,10; "all" = N):

    x_{j_k}     <- x_{j_k} + expand_k(resample(F_tb^k))     (eq. 9, expand to the block's input width)
    F_tb^{k+1}  =  compress_k(x_{j_k})                      (eq. 10, width round(tb_ratio * width))

F_tb^0 = stem(x_0), a compress conv1x1 of block 0's input (patch + position embedding, stride 4).
Hiera's stages change width and resolution: each expand maps the incoming F_tb width to its block's input width and each
compress maps that width down again (widths follow the stage), and `resample` average-pools F_tb
by the integer stride ratio when a stage change (q-pool) lies between two tuned blocks. The last
tuned block has no compress (nothing would read it). expand's BN gamma and beta start at 0, so
the encoder stream is unchanged at init.

Multi-scale Refiner (MSR, eqs. 6-8), `use_msr`: `msr_taps` units read the Hiera stream after
blocks of the stride-16 stage (evenly spaced, the stage's last block included; this is the stage
matching SAM's stride-16 ViT, so 2x / 4x deconvolutions give strides 8 / 4 as in the report).
Unit i: F^ = conv1x1(x) to `msr_dim`; for scale s in {8, 4}: F^_s = deconv_s(F^) (ConvTranspose
kernel = stride = 16/s) to the width of SAM2's high-res feature at that stride (64 / 32);
F~_s = tanh(W2 ReLU(W1 F^_s)) * F^_s (pixel-wise gate, 1x1 convs); F_msr_s += F~_s (eq. 8, F_msr
starts at 0). The result is added to SAM2's high-res features (conv_s0 / conv_s1 outputs) that the
mask decoder (and FAD) read. W2 starts at 0: the MSR adds exactly 0 at init.

Feature Aggregation Decoder (FAD), `use_fad`: fuses the high-res features (strides 8 and 4,
including the MSR's when on) with the SAM2 decoder's mask logits (the chosen mask, stride 4),
upsamples by a 2x deconvolution and predicts a stride-2 residual logit map (last 1x1 conv zero at
init): logits = up(SAM logits) + up(residual). Identity at init: TB, MSR and FAD all start at
exactly 0 contribution, so the whole model starts equal to the frozen SAM2 (`decoder_only`).

Trainable: TB, MSR, FAD, and the prompt encoder + mask decoder when `tune_mask_decoder` (None =
`not use_fad`: the report's parameter counts, 4.0M without FAD, 1.3M with FAD alone, imply a
frozen SAM decoder with FAD). Table 1(a): neither = (tuned_blocks=0, use_msr=False, use_fad=False),
+TB = (12, False, False), +FAD = (0, True, True), both = (12, True, True).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models.peft.hiera_wrap import HieraWrapper, spread
from sam2sod.models.sod_sam2 import SAM2SOD, PromptBatchLike


class Conv1x1(nn.Sequential):
    """conv1x1 + BN + GELU on (B,C,H,W); `zero=True` sets BN gamma = beta = 0 (output exactly 0)."""

    def __init__(self, cin: int, cout: int, zero: bool = False) -> None:
        super().__init__(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU())
        if zero:
            nn.init.zeros_(self[1].weight)
            nn.init.zeros_(self[1].bias)


def _pool_to(f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average-pool (B,C,h,w) by the integer factor h / size[0]."""
    if tuple(f.shape[-2:]) == tuple(size):
        return f
    factor = f.shape[-2] // size[0]
    if factor < 1 or f.shape[-2] != size[0] * factor or f.shape[-1] != size[1] * factor:
        raise ValueError(f"cannot pool {tuple(f.shape[-2:])} to {tuple(size)}")
    return F.avg_pool2d(f, factor)


class TunedBlock(nn.Module):
    """Eq. 9 + 10 on channels-last x (B,H,W,dim) and F_tb (B,cin,h,w) -> (x', F_tb' or None)."""

    def __init__(self, cin: int, dim: int, cout: int | None) -> None:
        super().__init__()
        self.expand = Conv1x1(cin, dim, zero=True)
        self.compress = Conv1x1(dim, cout) if cout is not None else None

    def forward(self, x: torch.Tensor, f_tb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.expand(_pool_to(f_tb, x.shape[1:3])).permute(0, 2, 3, 1)
        nxt = self.compress(x.permute(0, 3, 1, 2)) if self.compress is not None else None
        return x, nxt


class SideNetwork(nn.Module):
    """The tuned blocks: `stem` + `blocks.{k}` at Hiera block inputs `positions[k]`."""

    def __init__(self, c0: int, dims: list[int], positions: list[int], ratio: float) -> None:
        super().__init__()
        width = [max(1, round(d * ratio)) for d in dims]
        self.positions = list(positions)
        self.stem = Conv1x1(c0, max(1, round(c0 * ratio)))
        cin = max(1, round(c0 * ratio))
        blocks = []
        for k, j in enumerate(positions):
            last = k == len(positions) - 1
            blocks.append(TunedBlock(cin, dims[j], None if last else width[j]))
            cin = width[j]
        self.blocks = nn.ModuleList(blocks)


class RefinerUnit(nn.Module):
    """One MSR unit: stream (B,h,w,dim) at stride 16 -> gated features at strides 8 and 4."""

    def __init__(self, dim: int, width: int, out8: int, out4: int) -> None:
        super().__init__()
        self.compress = Conv1x1(dim, width)
        self.up8 = nn.ConvTranspose2d(width, out8, 2, stride=2)
        self.up4 = nn.ConvTranspose2d(width, out4, 4, stride=4)
        self.gate8 = self._gate(out8)
        self.gate4 = self._gate(out4)

    @staticmethod
    def _gate(c: int) -> nn.Sequential:
        gate = nn.Sequential(nn.Conv2d(c, max(1, c // 4), 1), nn.ReLU(inplace=True), nn.Conv2d(max(1, c // 4), c, 1),
                             nn.Tanh())
        nn.init.zeros_(gate[2].weight)
        nn.init.zeros_(gate[2].bias)
        return gate

    def forward(self, x: torch.Tensor, prev: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """-> [F_msr at stride 4 (B,out4,4h,4w), F_msr at stride 8 (B,out8,2h,2w)] (eq. 8)."""
        f = self.compress(x.permute(0, 3, 1, 2))
        f4, f8 = self.up4(f), self.up8(f)
        new = [self.gate4(f4) * f4, self.gate8(f8) * f8]
        return new if prev is None else [p + n for p, n in zip(prev, new, strict=True)]


class Refiner(nn.Module):
    """MSR units `units.{i}` reading the stream after Hiera blocks `taps[i]`."""

    def __init__(self, dims: list[int], taps: list[int], width: int, out8: int, out4: int) -> None:
        super().__init__()
        self.taps = list(taps)
        self.units = nn.ModuleList(RefinerUnit(dims[j], width, out8, out4) for j in taps)


class TunedHiera(HieraWrapper):
    """Hiera + tuned blocks (+ refiner taps). `forward` keeps Hiera's contract (stage features)."""

    def __init__(self, trunk: nn.Module, n_tuned: int, tb_ratio: float, msr_taps: int, msr_dim: int,
                 out8: int, out4: int) -> None:
        super().__init__(trunk)
        self.tuned_blocks = (SideNetwork(self.input_dim(0), [self.input_dim(i) for i in range(self.depth)],
                                         spread(n_tuned, self.depth), tb_ratio) if n_tuned else None)
        self.refiner = None
        if msr_taps:
            dims_out = [int(b.dim_out) for b in self.blocks]
            self.refiner = Refiner(dims_out, refiner_taps(self.stage_blocks(2), msr_taps), msr_dim, out8, out4)

    def forward_with_refiner(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """images (B,3,S,S) -> (stage features as Hiera, [MSR stride-4, stride-8 features] or None)."""
        _, x = self.tokens(x)
        side, ref = self.tuned_blocks, self.refiner
        tb_at = {j: k for k, j in enumerate(side.positions)} if side is not None else {}
        tap_at = {j: k for k, j in enumerate(ref.taps)} if ref is not None else {}
        f_tb = side.stem(x.permute(0, 3, 1, 2)) if side is not None else None
        msr: list[torch.Tensor] | None = None
        outputs = []
        for i, blk in enumerate(self.blocks):
            if i in tb_at:
                x, f_tb = side.blocks[tb_at[i]](x, f_tb)
            x = blk(x)
            if i in tap_at:
                msr = ref.units[tap_at[i]](x, msr)
            if self.is_output(i):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs, msr

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_with_refiner(x)[0]


def refiner_taps(stage_blocks: list[int], n: int) -> list[int]:
    """n blocks of a stage, evenly spaced, ending at its last block."""
    if not 1 <= n <= len(stage_blocks):
        raise SodError(f"msr_taps must be in 1..{len(stage_blocks)} (blocks of the stride-16 stage), got {n}")
    return [stage_blocks[(k + 1) * len(stage_blocks) // n - 1] for k in range(n)]


def _cbg(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class FeatureAggregationDecoder(nn.Module):
    """high-res feats [(B,c4,S/4,S/4), (B,c8,S/8,S/8)] + mask logits (B,1,S/4,S/4) -> residual (B,1,S/2,S/2)."""

    def __init__(self, c4: int, c8: int, width: int = 32) -> None:
        super().__init__()
        half = max(1, width // 2)
        self.in8, self.in4 = _cbg(c8, width), _cbg(c4, width)
        self.mix4 = _cbg(width + 1, width)
        self.up = nn.Sequential(nn.ConvTranspose2d(width, half, 2, stride=2), nn.BatchNorm2d(half), nn.GELU())
        self.mix2 = _cbg(half + 1, half)
        self.out = nn.Conv2d(half, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, high_res: list[torch.Tensor], logits4: torch.Tensor) -> torch.Tensor:
        h4, h8 = high_res
        a = self.in4(h4) + F.interpolate(self.in8(h8), size=h4.shape[-2:], mode="bilinear", align_corners=False)
        a = self.up(self.mix4(torch.cat([a, logits4.to(a.dtype)], dim=1)))
        logits2 = F.interpolate(logits4.to(a.dtype), size=a.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.mix2(torch.cat([a, logits2], dim=1)))


class TunedSAMSOD(SAM2SOD):
    """SAM2SOD with the MSR features added to the high-res features and the FAD on the logits."""

    fad: FeatureAggregationDecoder | None

    def encode_image(self, images: torch.Tensor) -> dict[str, Any]:
        """As SAM2SOD.encode_image, plus the MSR features (when on) added to high_res_feats."""
        self._check_images(images)
        enc = self.image_encoder
        feats, msr = enc.trunk.forward_with_refiner(images)
        fpn, _ = enc.neck(feats)
        if enc.scalp > 0:
            fpn = fpn[: -enc.scalp]
        dec = self.sam_mask_decoder
        high_res = [dec.conv_s0(fpn[0]), dec.conv_s1(fpn[1])]
        if msr is not None:
            high_res = [h + m.to(h.dtype) for h, m in zip(high_res, msr, strict=True)]
        embed = fpn[-1]
        if self.directly_add_no_mem_embed:
            embed = embed + self.no_mem_embed.view(1, -1, 1, 1)
        return {"image_embed": embed, "high_res_feats": high_res}

    def decode(self, features: dict[str, Any], prompts: PromptBatchLike | None = None,
               multimask: bool = False) -> dict[str, torch.Tensor]:
        """SAM2SOD.decode; with the FAD, `logits` = SAM logits + upsampled FAD residual."""
        out = super().decode(features, prompts, multimask)
        if self.fad is None:
            return out
        low = out["low_res_logits"]
        if multimask:
            low = low[torch.arange(low.shape[0], device=low.device), out["best_index"]].unsqueeze(1)
        delta = self.fad(features["high_res_feats"], low)
        size = (self.image_size, self.image_size)
        out["logits"] = out["logits"] + F.interpolate(delta.float(), size=size, mode="bilinear", align_corners=False)
        return out


def parse_tuned_blocks(value: int | str, depth: int) -> int:
    """'all' -> depth; an int (or digit string) in 0..depth; SodError otherwise."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return depth
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if isinstance(value, bool) or not 0 <= n <= depth:
        raise SodError(f"tuned_blocks must be 'all' or an integer in 0..{depth} (Hiera blocks), got {value!r}")
    return n


def apply_tuned_sam(model: SAM2SOD, *, tuned_blocks: int | str = 12, tb_ratio: float = 0.5, use_msr: bool = True,
                    msr_taps: int = 4, msr_dim: int = 64, use_fad: bool = True, fad_dim: int = 32,
                    tune_mask_decoder: bool | None = None) -> None:
    """Turn a SAM2SOD into a TunedSAMSOD in place (see the module docstring for every option)."""
    from sam2sod.models.freeze import freeze, unfreeze

    enc, dec = model.image_encoder, model.sam_mask_decoder
    n = parse_tuned_blocks(tuned_blocks, len(enc.trunk.blocks))
    if float(tb_ratio) <= 0 or int(msr_dim) < 1 or int(fad_dim) < 2:
        raise SodError(f"tuned_sam needs tb_ratio > 0, msr_dim >= 1, fad_dim >= 2 (got {tb_ratio}, {msr_dim}, "
                       f"{fad_dim})")
    if not dec.use_high_res_features:
        raise SodError("tuned_sam needs SAM2's high-resolution decoder features (use_high_res_features_in_sam)")
    tune_dec = (not use_fad) if tune_mask_decoder is None else bool(tune_mask_decoder)
    if not (n or use_msr or use_fad or tune_dec):
        raise SodError("tuned_sam with no tuned blocks, MSR, FAD or mask decoder tuning has nothing to train")
    device = model.no_mem_embed.device
    c4, c8 = dec.conv_s0.out_channels, dec.conv_s1.out_channels
    freeze(model)
    enc.trunk = TunedHiera(enc.trunk, n, float(tb_ratio), int(msr_taps) if use_msr else 0, int(msr_dim),
                           c8, c4).to(device)
    model.__class__ = TunedSAMSOD  # same instance, overridden encode_image / decode (no state is copied)
    model.fad = FeatureAggregationDecoder(c4, c8, int(fad_dim)).to(device) if use_fad else None
    for part in (enc.trunk.tuned_blocks, enc.trunk.refiner, model.fad):
        if part is not None:
            unfreeze(part)
    if tune_dec:
        unfreeze(model.sam_prompt_encoder)
        unfreeze(dec)
