"""Save / restore fine-tuned SAM2SOD weights.

A tuned state holds the trainable parameters and all buffers (small) of the model, plus the
identity of the base weights (checkpoint path + sha256). When the base is a random init
(no official weights), the tuned state holds the FULL state dict instead, since the frozen
random weights could not be rebuilt reliably otherwise (`full_state: True`).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from sam2sod.atomic import atomic_torch_save
from sam2sod.errors import SodError
from sam2sod.models.sam2_backbone import state_dict_mismatch
from sam2sod.models.sod_sam2 import SAM2SOD

FORMAT = "sam2sod-tuned/1"


def model_config(model: SAM2SOD) -> dict[str, Any]:
    """Arguments that `create_model` needs to rebuild this model's architecture."""
    info = model.base_info
    return {"method": model.method, "version": info["version"], "size": info["size"],
            "image_size": model.image_size, "method_cfg": dict(model.method_cfg)}


def tuned_keys(model: SAM2SOD) -> list[str]:
    """State-dict keys of the trainable parameters and of all buffers."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    return [k for k in model.state_dict() if k in trainable or k in buffers]


def state_for_checkpoint(model: SAM2SOD) -> dict[str, Any]:
    """{"format", "model_config", "base", "full_state", "state_dict"} (tensors on CPU)."""
    full = not model.model_is_pretrained
    sd = model.state_dict()
    keys = list(sd) if full else tuned_keys(model)
    return {
        "format": FORMAT,
        "model_config": model_config(model),
        "base": dict(model.base_info),
        "full_state": full,
        "state_dict": {k: sd[k].detach().cpu().clone() for k in keys},
    }


def load_tuned_state(model: SAM2SOD, state: dict[str, Any]) -> SAM2SOD:
    """Load a `state_for_checkpoint` dict strictly (same keys and shapes); SodError on mismatch."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SodError(f"not a sam2sod tuned state (expected format {FORMAT!r})")
    cfg, mine = state["model_config"], model_config(model)
    for key in ("method", "version", "size", "method_cfg"):
        if cfg.get(key) != mine[key]:
            raise SodError(f"tuned checkpoint was made for {key}={cfg.get(key)!r}, the model has {mine[key]!r}")
    base = state["base"]
    if not state["full_state"]:
        if not model.model_is_pretrained:
            raise SodError(f"tuned checkpoint needs the base SAM2 weights it was trained on "
                           f"({base.get('checkpoint')}, sha256 {base.get('sha256')}), but the model has random init")
        if base.get("sha256") != model.base_info.get("sha256"):
            raise SodError(f"tuned checkpoint was trained on base {base.get('checkpoint')} (sha256 "
                           f"{base.get('sha256')}), the model was built from {model.base_info.get('checkpoint')} "
                           f"(sha256 {model.base_info.get('sha256')})")
    current = model.state_dict()
    expected = current if state["full_state"] else {k: current[k] for k in tuned_keys(model)}
    problem = state_dict_mismatch(expected, state["state_dict"])
    if problem:
        raise SodError(f"tuned checkpoint does not fit the model: {problem}")
    model.load_state_dict(state["state_dict"], strict=state["full_state"])
    if state["full_state"]:
        model.base_info = dict(base)
    return model


def save_tuned_checkpoint(model: SAM2SOD, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
    """Atomically write `state_for_checkpoint(model)` (+ `extra`: plain values only) to `path`."""
    state = state_for_checkpoint(model)
    if extra:
        state["extra"] = extra
    atomic_torch_save(state, path)


def load_tuned_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by `save_tuned_checkpoint` (weights_only); SodError naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SodError(f"tuned checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SodError(f"cannot read tuned checkpoint {path}: {type(e).__name__}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SodError(f"{path} is not a sam2sod tuned checkpoint")
    return state


def create_model_from_state(
    state: dict[str, Any], *, checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu", image_size: int | None = None,
) -> SAM2SOD:
    """Rebuild the model a tuned state came from and load it.

    Partial states need the base checkpoint (`checkpoint`, else the path recorded at save time).
    `image_size` may differ from training (no weight depends on it).
    """
    from sam2sod.models.registry import create_model

    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SodError(f"not a sam2sod tuned state (expected format {FORMAT!r})")
    cfg, base = state["model_config"], state["base"]
    if not state["full_state"]:
        checkpoint = checkpoint or base.get("checkpoint")
        if checkpoint is None:
            raise SodError("tuned checkpoint needs its base SAM2 checkpoint; pass checkpoint=...")
    else:
        checkpoint = None  # the full state replaces every weight
    model = create_model(cfg["method"], version=cfg["version"], size=cfg["size"],
                         image_size=image_size or cfg["image_size"], checkpoint=checkpoint,
                         device=device, seed=base.get("seed"), **cfg["method_cfg"])
    return load_tuned_state(model, state)
