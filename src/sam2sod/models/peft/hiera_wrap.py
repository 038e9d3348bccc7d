"""Shared plumbing for methods that change how SAM2's Hiera trunk runs its blocks.

`HieraWrapper` re-registers the original trunk's `patch_embed`, `pos_embed`, `pos_embed_window` and
`blocks` under the same names (official checkpoint keys stay valid) and exposes what Hiera's
stages look like, so a subclass can re-implement `Hiera.forward` with its own insertions.

Hiera layout (sam2 1.1.0): the patch embedding gives channels-last tokens (B, S/4, S/4, C0).
Stage k (k = 0..3) works at stride 4 * 2^k with width C0 * 2^k. The first block of stages 1..3 is
a "q-pool" block: its *input* still has the previous stage's width and resolution, and it pools
and widens inside. Hence a block's input geometry is that of the previous block's output.
"""

from __future__ import annotations

import torch
from torch import nn

HIERA_CHILDREN = {"patch_embed", "pos_embed", "pos_embed_window", "blocks"}


def check_hiera(trunk: nn.Module) -> None:
    """TypeError unless `trunk` is sam2's Hiera with the layout these wrappers re-register."""
    from sam2.modeling.backbones.hieradet import Hiera

    if not isinstance(trunk, Hiera):
        raise TypeError(f"expected sam2's Hiera trunk, got {type(trunk).__name__}")
    own = {n for n, _ in trunk.named_children()} | {n for n, _ in trunk.named_parameters(recurse=False)}
    own |= {n for n, _ in trunk.named_buffers(recurse=False)}
    if own != HIERA_CHILDREN:
        raise TypeError(f"unexpected Hiera layout (this sam2 version is not supported): {sorted(own)}")


class HieraWrapper(nn.Module):
    """A Hiera trunk with the same parameter names; `forward` equals `Hiera.forward`.

    Input (B,3,S,S) -> list of stage features (B,C_k,S/(4*2^k),S/(4*2^k)), k = 0..3.
    """

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        from sam2sod.models.pos_cache import cached_pos_embed

        check_hiera(trunk)
        self.patch_embed = trunk.patch_embed
        self.pos_embed = trunk.pos_embed
        self.pos_embed_window = trunk.pos_embed_window
        self.blocks = trunk.blocks
        self.stage_ends: list[int] = list(trunk.stage_ends)
        self.return_interm_layers: bool = trunk.return_interm_layers
        self.channel_list = trunk.channel_list  # read by ImageEncoder/FpnNeck
        self.window_spec = trunk.window_spec
        self._hiera_pos_embed = cached_pos_embed  # Hiera's, reused at inference

    # ---- geometry
    @property
    def depth(self) -> int:
        return len(self.blocks)

    def output_stage(self, i: int) -> int:
        """Stage (0..3) of block i's output."""
        return sum(1 for e in self.stage_ends if e < i)

    def input_stage(self, i: int) -> int:
        """Stage (0..3) whose width/resolution block i's *input* has (block i-1's output stage)."""
        return self.output_stage(i - 1) if i > 0 else 0

    def input_dim(self, i: int) -> int:
        """Channel width of block i's input."""
        return int(self.blocks[i].dim)

    def stage_dims(self) -> list[int]:
        """Output width of each stage, e.g. [96, 192, 384, 768] for hiera tiny."""
        return [int(self.blocks[e].dim_out) for e in self.stage_ends]

    def stage_blocks(self, stage: int) -> list[int]:
        """Indices of the blocks whose *output* belongs to `stage`."""
        start = 0 if stage == 0 else self.stage_ends[stage - 1] + 1
        return list(range(start, self.stage_ends[stage] + 1))

    # ---- forward pieces
    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,S,S) -> (patch embedding without / with Hiera's position embedding), both (B,S/4,S/4,C0)."""
        emb = self.patch_embed(x)
        return emb, emb + self._hiera_pos_embed(self, emb.shape[1:3])

    def is_output(self, i: int) -> bool:
        """Whether block i's output is one of the returned stage features."""
        return i == self.stage_ends[-1] or (i in self.stage_ends and self.return_interm_layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _, x = self.tokens(x)
        outputs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if self.is_output(i):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


def spread(n: int, total: int) -> list[int]:
    """n indices spread evenly over range(total): floor(k * total / n), k = 0..n-1 (starts at 0).

    total 12: n=12 -> 0..11; n=6 -> 0,2,4,6,8,10; n=9 -> 0,1,2,4,5,6,8,9,10.
    """
    if not 0 <= n <= total:
        raise ValueError(f"cannot place {n} items over {total} positions")
    return [k * total // n for k in range(n)]
