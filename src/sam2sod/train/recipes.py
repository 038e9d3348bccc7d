"""Training recipes of `optim.*`: activation checkpointing, an EMA of the weights, layer-wise LR decay.

* ``optim.grad_checkpoint: true``: every Hiera block (and the adapters / LoRA inside it) recomputes its
  activations in the backward pass (`sam2sod.models.optim_tools.enable_grad_checkpoint`): same loss and
  gradients, less activation memory, a longer step.
* ``optim.ema: DECAY`` (0 = off, else in (0, 1)): an EMA of the trainable weights after each optimizer step.
  Validation runs with the EMA weights, and best.pt / last.pt hold them as the model (so predict / evaluate /
  export use them); the raw weights (``train_model``) and the EMA state (``ema``) are stored too, so a resumed
  run continues bit for bit.
* ``optim.layer_decay: D`` (1.0 = off, else in (0, 1)): block i of n Hiera blocks learns at ``lr * D**(n - i)``
  (`layer_decay_groups`, sam2's own rule); each group keeps its ``lr_scale`` under the warmup-cosine schedule
  because `LambdaLR` multiplies each group's own initial lr.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from sam2sod.errors import SodError
from sam2sod.models.optim_tools import ModelEMA, enable_grad_checkpoint, layer_decay_groups
from sam2sod.models.tuned_state import state_for_checkpoint
from sam2sod.runs.config import OptimConfig
from sam2sod.runs.runtime import param_groups

__all__ = ["apply_grad_checkpoint", "ema_state", "make_ema", "make_optimizer", "resume_weights", "validating"]


def apply_grad_checkpoint(model: torch.nn.Module, o: OptimConfig) -> int:
    """Checkpoint the Hiera blocks when ``optim.grad_checkpoint``; returns the blocks wrapped (0: off)."""
    if not o.grad_checkpoint:
        return 0
    try:
        return enable_grad_checkpoint(model)
    except TypeError:
        raise SodError(f"optim.grad_checkpoint needs a SAM2 method with a Hiera trunk; "
                       f"{getattr(model, 'method', type(model).__name__)} has none") from None


def make_optimizer(model: torch.nn.Module, trained: torch.nn.Module, o: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `trained` (the model, plus e.g. a video memory); with ``optim.layer_decay`` < 1 the model's
    groups come from `layer_decay_groups` (each with ``lr`` and ``lr_scale``), the rest from `param_groups`."""
    if o.layer_decay >= 1.0:
        return torch.optim.AdamW(param_groups(trained, o.weight_decay), lr=o.lr)
    try:
        groups = layer_decay_groups(model, o.lr, o.layer_decay, o.weight_decay)
    except TypeError:
        raise SodError(f"optim.layer_decay needs a SAM2 method with a Hiera trunk; "
                       f"{getattr(model, 'method', type(model).__name__)} has none") from None
    mine = {id(p) for g in groups for p in g["params"]}
    rest = [p for p in trained.parameters() if p.requires_grad and id(p) not in mine]
    if rest:
        rest_model = torch.nn.ParameterList(rest)
        groups += [{**g, "lr": o.lr, "lr_scale": 1.0} for g in param_groups(rest_model, o.weight_decay) if g["params"]]
    return torch.optim.AdamW(groups, lr=o.lr)


def resume_weights(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The tuned state a run resumes from: the raw weights of an EMA run (``train_model``), else ``model``."""
    return ckpt.get("train_model") or ckpt["model"]


def make_ema(model: torch.nn.Module, o: OptimConfig, ckpt: dict[str, Any] | None = None) -> ModelEMA | None:
    """`ModelEMA` of the model when ``optim.ema`` > 0 (its state restored from a resumed checkpoint)."""
    if not o.ema:
        return None
    ema = ModelEMA(model, o.ema)
    if ckpt is not None:
        if "ema" not in ckpt:
            raise SodError("optim.ema is set but the checkpoint to resume holds no EMA state (the run trained "
                           "without optim.ema): resume with optim.ema=0 or start a new run")
        ema.load_state_dict(ckpt["ema"])
    return ema


@contextlib.contextmanager
def validating(model: torch.nn.Module, ema: ModelEMA | None) -> Iterator[torch.nn.Module]:
    """Within the block the model holds the EMA weights (when there is an EMA)."""
    if ema is None:
        yield model
        return
    with ema.swapped(model):
        yield model


def ema_state(model: torch.nn.Module, ema: ModelEMA | None) -> dict[str, Any]:
    """Checkpoint entries: ``model`` (the EMA weights, what inference loads), ``train_model`` (the raw ones)
    and ``ema`` (`ModelEMA.state_dict`); without an EMA just ``model``."""
    raw = state_for_checkpoint(model)
    if ema is None:
        return {"model": raw}
    with ema.swapped(model):
        averaged = state_for_checkpoint(model)
    return {"model": averaged, "train_model": raw, "ema": ema.state_dict()}
