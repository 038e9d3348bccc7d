"""Reading a SAM2 state dict in sam2's names from a pickled checkpoint (`{"model": sd}`, `{"state_dict": sd}` or a
bare state dict), with one-line errors; shared by `sam2sod.models.sam2_backbone` and `sam2sod.hf_format`."""

from __future__ import annotations

import os

import torch

from sam2sod.errors import SodError
from sam2sod.safe_load import load_weights_file

__all__ = ["read_state_dict"]


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SAM2 checkpoint (`{"model": sd}`, `{"state_dict": sd}` or a bare state dict) on CPU."""
    path = os.fspath(path)
    obj = load_weights_file(path, "SAM2 checkpoint")
    if isinstance(obj, dict) and str(obj.get("format", "")).startswith("sam2sod-"):
        raise SodError(f"{path} is a sam2sod fine-tuned checkpoint, not a SAM2 base checkpoint: "
                       "open it with sam2sod.load_model (a run folder, best.pt / last.pt), or start a run from "
                       "it with model.init_from in the config")
    sd = obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                sd = obj[key]
                break
    if not isinstance(sd, dict) or not sd or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
    ):
        raise SodError(f"{path} is not a SAM2 checkpoint: expected {{'model': state_dict}} or a state dict")
    return sd
