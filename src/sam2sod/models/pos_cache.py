"""Hiera's position embedding, cached at inference.

`Hiera._get_pos_embed` resizes the learned embedding (bicubic) and tiles the window embedding on every
forward: about 4% of a hiera-tiny forward at 352 px on a 2-core CPU. In eval mode without autograd the
result depends only on the token grid and the two parameters, so it is kept and reused until a parameter
changes (their version counters move with every optimizer step and in-place edit) or the grid, device,
dtype or autocast state differs. Training, tracing, ONNX export and torch.compile take sam2's own path.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn


def _key(module: nn.Module, hw: tuple[int, int]) -> tuple[Any, ...]:
    p, w = module.pos_embed, module.pos_embed_window
    autocast = torch.is_autocast_enabled(p.device.type)
    return (int(hw[0]), int(hw[1]), p.data_ptr(), p._version, w.data_ptr(), w._version, p.device, p.dtype,
            autocast, torch.get_autocast_dtype(p.device.type) if autocast else None,
            torch.is_inference_mode_enabled())


def cached_pos_embed(module: nn.Module, hw: tuple[int, int]) -> torch.Tensor:
    """`Hiera._get_pos_embed(module, hw)` -> (1,H,W,C), reused while the cache key holds (inference only).

    `module` is a Hiera or anything with its `pos_embed` / `pos_embed_window` (e.g. `HieraWrapper`).
    """
    from sam2.modeling.backbones.hieradet import Hiera

    if (module.training or torch.is_grad_enabled() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling()):
        return Hiera._get_pos_embed(module, hw)
    key = _key(module, hw)
    cached = module.__dict__.get("_sam2sod_pos_cache")
    if cached is None or cached[0] != key:
        cached = (key, Hiera._get_pos_embed(module, hw))
        module.__dict__["_sam2sod_pos_cache"] = cached
    return cached[1]


def cache_position_embedding(trunk: nn.Module) -> None:
    """Make a plain sam2 `Hiera` trunk use `cached_pos_embed` (a bound method on the instance, which
    `copy.deepcopy` rebinds to the copy); other trunks are left alone."""
    from sam2.modeling.backbones.hieradet import Hiera

    if type(trunk) is Hiera:
        trunk._get_pos_embed = types.MethodType(cached_pos_embed, trunk)
