"""Method `lora`: low-rank updates of the Hiera blocks' linear layers (Hu et al. 2021, LoRA).

Every targeted `nn.Linear` (W: out x in, bias b) of every Hiera block becomes a `LoRALinear`:

    y = x W^T + b + (alpha / rank) * dropout(x) A^T B^T,   A: rank x in,  B: out x rank

W and b stay frozen; A (Kaiming-uniform, like nn.Linear) and B (zeros) train. B = 0 makes the
model start *exactly* equal to the frozen one. `LoRALinear` keeps the base tensors as its own
`weight` / `bias` parameters, so official keys such as `image_encoder.trunk.blocks.3.attn.qkv.weight`
are unchanged and the LoRA factors add `...attn.qkv.lora_A` / `...attn.qkv.lora_B`.

Targets (comma-separated `targets` option): `qkv` (attn.qkv), `proj` (attn.proj: the attention
output projection, not the block's stage-change shortcut `proj`) and `mlp` (both MLP linears,
mlp.layers.0 / mlp.layers.1). Trainable: LoRA factors, prompt encoder and mask decoder.

`merge_lora(model)` folds W <- W + (alpha / rank) B A into plain nn.Linear layers for export.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError

TARGETS = {"qkv": ("attn.qkv",), "proj": ("attn.proj",), "mlp": ("mlp.layers.0", "mlp.layers.1")}


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update; (..., in) -> (..., out)."""

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.rank, self.alpha = int(rank), float(alpha)
        self.scaling = self.alpha / self.rank
        ref = base.weight
        self.lora_A = nn.Parameter(torch.empty(self.rank, self.in_features, device=ref.device, dtype=ref.dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.rank, device=ref.device, dtype=ref.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        return y + F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scaling

    def merged_linear(self) -> nn.Linear:
        """A plain nn.Linear with W + scaling * B A (same requires_grad as the base weight)."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            delta = (self.lora_B.double() @ self.lora_A.double()) * self.scaling
            lin.weight.copy_((self.weight.double() + delta).to(self.weight.dtype))
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        lin.requires_grad_(self.weight.requires_grad)
        return lin

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, alpha={self.alpha}"


def parse_targets(targets: str) -> list[str]:
    """'qkv,proj' -> ['attn.qkv', 'attn.proj']; SodError on an unknown or empty target list."""
    names = [t.strip() for t in str(targets).split(",") if t.strip()]
    bad = [t for t in names if t not in TARGETS]
    if bad or not names:
        raise SodError(f"lora targets must be a comma-separated subset of {', '.join(TARGETS)}, got {targets!r}")
    return [path for t in dict.fromkeys(names) for path in TARGETS[t]]


def _set_child(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def lora_modules(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight (in place) and return `model`.

    Afterwards no LoRALinear remains and the state dict has only SAM2 keys. `model.method` becomes
    "lora_merged" (not a registered method): a merged model is for inference / export, and a tuned
    state saved from it cannot be rebuilt by `create_model` (save the unmerged model instead).
    """
    found = lora_modules(model)
    for name, mod in found:
        _set_child(model, name, mod.merged_linear())
    if found and hasattr(model, "method"):
        model.method = "lora_merged"
    return model


def apply_lora(model: nn.Module, *, rank: int = 4, alpha: float = 4.0, dropout: float = 0.0,
               targets: str = "qkv,proj") -> None:
    """Inject LoRA into every Hiera block of a SAM2SOD in place and set trainability.

    rank: r of A (r x in) and B (out x r); alpha: scaling alpha / r; dropout: on the LoRA input;
    targets: comma-separated subset of qkv, proj, mlp. Frozen: image encoder, no_mem_embed.
    Trainable: LoRA factors, prompt encoder, mask decoder.
    """
    from sam2sod.models.freeze import freeze, unfreeze

    paths = parse_targets(targets)
    if int(rank) < 1 or float(alpha) <= 0 or not 0 <= float(dropout) < 1:
        raise SodError(f"lora needs rank >= 1, alpha > 0 and 0 <= dropout < 1 (got {rank}, {alpha}, {dropout})")
    freeze(model)
    blocks = model.image_encoder.trunk.blocks
    for blk in blocks:
        for path in paths:
            base = blk.get_submodule(path)
            if not isinstance(base, nn.Linear):
                raise TypeError(f"lora target {path} is a {type(base).__name__}, expected nn.Linear")
            _set_child(blk, path, LoRALinear(base, int(rank), float(alpha), float(dropout)))
    for _, mod in lora_modules(model):
        unfreeze([mod.lora_A, mod.lora_B])
    unfreeze(model.sam_prompt_encoder)
    unfreeze(model.sam_mask_decoder)
