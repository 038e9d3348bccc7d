"""Run checkpoints (`best.pt`, `last.pt`): tuned model state, optimizer, scheduler, scaler, config, step, RNG.

The model part holds only what the method changed (see `sam2sod.models.state_for_checkpoint`) plus the
base checkpoint's identity; rebuilding the model needs the same base checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sam2sod.atomic import atomic_torch_save
from sam2sod.engine.config import ModelConfig, TrainConfig, from_dict, to_dict
from sam2sod.errors import SodError

FORMAT = "sam2sod-run-v1"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): an interrupted save never leaves a broken file."""
    atomic_torch_save({"format": FORMAT, **state}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a run checkpoint (a file, or a run directory -> its best.pt), with clear errors."""
    p = Path(path)
    if p.is_dir():
        p = p / "best.pt" if (p / "best.pt").is_file() else p / "last.pt"
    if not p.is_file():
        raise SodError(f"checkpoint {p} not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        raise SodError(f"cannot read checkpoint {p}: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SodError(f"{p} is not a sam2sod run checkpoint (an official SAM2 file goes into "
                       f"model.checkpoint in the config instead)")
    ckpt["path"] = str(p)
    return ckpt


def config_of(ckpt: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, ckpt["config"])


def model_from_config(m: ModelConfig, device: torch.device | str = "cpu", seed: int = 0,
                      checkpoint: str | None = None) -> torch.nn.Module:
    """`create_model` for a `ModelConfig` (SAM2 method or classical baseline), optionally another base file."""
    from sam2sod.models import create_model

    extra = {"backbone_weights": m.backbone_weights} if m.backbone_weights else {}
    return create_model(m.method, version=m.version, size=m.size, image_size=m.image_size,
                        checkpoint=checkpoint or m.checkpoint, device=str(device), seed=seed, **extra, **m.args)


def build_model_from_checkpoint(ckpt: dict[str, Any], device: torch.device,
                                base_checkpoint: str | None = None) -> torch.nn.Module:
    """Rebuild the tuned model of a run checkpoint on `device` (the base weights are re-read)."""
    from sam2sod.models import load_tuned_state

    cfg = config_of(ckpt)
    model = model_from_config(cfg.model, device, cfg.seed, base_checkpoint)
    load_tuned_state(model, ckpt["model"])
    return model.to(device).eval()


__all__ = ["FORMAT", "build_model_from_checkpoint", "config_of", "model_from_config", "read_checkpoint",
           "save_checkpoint", "to_dict"]
