"""Training-memory and recipe tools for SAM2-based models: activation checkpointing, EMA, layer-wise LR decay.

* `enable_grad_checkpoint(model)`: the Hiera blocks (with the LoRA / adapter modules inside them) recompute their
  activations in the backward pass instead of storing them (``torch.utils.checkpoint``, non-reentrant); the
  first stage's blocks also checkpoint their attention and MLP apart (nested); the last stage's blocks, the
  smallest and freed first, are left as they are.
  Parameter names and the forward's values are unchanged; only training mode with gradients is affected.
* `ModelEMA`: an exponential moving average of the trainable weights, ``ema = decay * ema + (1 - decay) * w``
  after each optimiser step; `swapped(model)` runs validation with the averaged weights.
* `layer_decay_groups`: optimiser parameter groups whose learning rate shrinks by ``decay`` per Hiera block
  from the top: block i of n gets ``lr * decay ** (n - i)``, the patch / position embeddings
  ``lr * decay ** (n + 1)``, everything outside the trunk (neck, decoder, adapters between blocks) ``lr``.
  This is the rule of sam2's own training (`get_layer_id` + `layer_decay_value`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["ModelEMA", "enable_grad_checkpoint", "hiera_blocks", "layer_decay_groups", "layer_id"]


def hiera_blocks(model: nn.Module) -> nn.ModuleList:
    """The Hiera trunk's blocks of a SAM2SOD model (sam2's Hiera or a `HieraWrapper`, same names)."""
    trunk = getattr(getattr(model, "image_encoder", None), "trunk", None)
    blocks = getattr(trunk, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no Hiera trunk (image_encoder.trunk.blocks)")
    return blocks


_CHECKPOINTED: dict[type, type] = {}


def _checkpointed_class(cls: type) -> type:
    """A subclass of the block class whose forward runs under ``torch.utils.checkpoint`` while training."""
    if cls not in _CHECKPOINTED:
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            parent = super(sub, self).forward
            if self.training and torch.is_grad_enabled():
                return checkpoint(parent, x, use_reentrant=False)
            return parent(x)

        sub = type(f"Checkpointed{cls.__name__}", (cls,), {"forward": forward, "_sam2sod_checkpointed": True})
        _CHECKPOINTED[cls] = sub
    return _CHECKPOINTED[cls]


def enable_grad_checkpoint(model: nn.Module) -> int:
    """Checkpoint the Hiera blocks of `model` (idempotent); returns the number of blocks wrapped.

    Every block but those of the last stage is checkpointed (every block when the trunk has no
    `stage_ends`): the last stage's activations are the smallest (a quarter of the tokens of the stage
    before) and the backward pass frees them first, so keeping them costs no peak memory and saves their
    recomputation. The blocks of the first stage (the highest resolution, whose recomputation at the end of
    the backward pass is the peak of the whole step) also checkpoint their attention and their MLP apart, so
    only one of the two is held in full at a time. Each module's class is swapped for a checkpointing
    subclass, so parameter names, `deepcopy` and `state_dict` behave as before.
    """
    blocks = hiera_blocks(model)
    ends = list(getattr(model.image_encoder.trunk, "stage_ends", None) or [])
    # without known stages (one stage): every block, whole
    first_end, last_start = (ends[0], ends[-2] + 1) if len(ends) > 1 else (-1, len(blocks))
    for i, block in enumerate(blocks[:last_start]):
        inner = [getattr(block, name, None) for name in ("attn", "mlp")] if i <= first_end else []
        for module in [block, *(m for m in inner if isinstance(m, nn.Module))]:
            if not getattr(module, "_sam2sod_checkpointed", False):
                module.__class__ = _checkpointed_class(type(module))
    return len(blocks[:last_start])


class ModelEMA:
    """EMA of a model's trainable tensors (float copies on the model's device).

    `state_dict()` / `load_state_dict()` make it part of a checkpoint, so a resumed run continues the same
    average bit for bit.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``ema = decay * ema + (1 - decay) * w`` for every tracked tensor."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach(), 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block `model` holds the averaged weights; its own weights come back afterwards."""
        params = dict(model.named_parameters())
        saved = {n: params[n].detach().clone() for n in self.shadow}
        with torch.no_grad():
            for n, t in self.shadow.items():
                params[n].copy_(t)
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, t in saved.items():
                    params[n].copy_(t)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": {n: t.clone() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} tensors, e.g. {missing[0]}")
        self.decay = float(state["decay"])
        for n in self.shadow:
            self.shadow[n].copy_(state["shadow"][n])


_BLOCK_RE = re.compile(r"(?:^|\.)image_encoder\.trunk\.blocks\.(\d+)\.")
_EMBED_RE = re.compile(r"(?:^|\.)image_encoder\.trunk\.(patch_embed|pos_embed)")


def layer_id(name: str, n_blocks: int) -> int:
    """0 for the trunk's embeddings, i + 1 for block i, n_blocks + 1 for everything else."""
    m = _BLOCK_RE.search(name)
    if m:
        return int(m.group(1)) + 1
    if _EMBED_RE.search(name):
        return 0
    return n_blocks + 1


def layer_decay_groups(model: nn.Module, lr: float, decay: float, weight_decay: float = 0.0,
                       no_decay_1d: bool = True) -> list[dict[str, Any]]:
    """Parameter groups for layer-wise LR decay over the Hiera blocks (see the module docstring).

    Groups carry ``lr``, ``weight_decay`` and ``lr_scale`` (so a scheduler can rescale); 1-D tensors (norms,
    biases) get no weight decay when `no_decay_1d`.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer decay must be in (0, 1], got {decay}")
    n = len(hiera_blocks(model))
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, n)
        flat = no_decay_1d and p.ndim <= 1
        scale = decay ** (n + 1 - lid)
        g = groups.setdefault((lid, flat), {"params": [], "lr": lr * scale, "lr_scale": scale,
                                            "weight_decay": 0.0 if flat else weight_decay})
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)]
