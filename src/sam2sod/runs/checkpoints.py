"""Run checkpoints (`best.pt`, `last.pt`): tuned model state, optimizer, scheduler, scaler, config, step, RNG.

The model part holds only what the method changed (see `sam2sod.models.state_for_checkpoint`) plus the
base checkpoint's identity; rebuilding the model needs the same base checkpoint (a random-init base is
rebuilt from the seed the state records and checked against its fingerprint). Unreadable files give one
line with the reason (`sam2sod.safe_load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sam2sod.atomic import atomic_torch_save
from sam2sod.runs.config import ModelConfig, TrainConfig, from_dict, to_dict
from sam2sod.errors import SodError
from sam2sod.safe_load import load_weights_file

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
    ckpt = load_weights_file(p, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SodError(f"{p} is not a sam2sod run checkpoint (an official SAM2 file goes into "
                       f"model.checkpoint in the config instead)")
    ckpt["path"] = str(p)
    return ckpt


def config_of(ckpt: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, ckpt["config"])


def model_from_config(m: ModelConfig, device: torch.device | str = "cpu", seed: int = 0,
                      checkpoint: str | None = None) -> torch.nn.Module:
    """`create_model` for a `ModelConfig` (SAM2 method or classical baseline), optionally another base file.

    An official name as the base (e.g. sam2.1_hiera_tiny) is read from the weights cache (`sam2sod.weights`).
    """
    from sam2sod.models import create_model
    from sam2sod.weights import resolve_checkpoint

    base = checkpoint or m.checkpoint
    base = resolve_checkpoint(base) if base else None
    extra = {"backbone_weights": m.backbone_weights} if m.backbone_weights else {}
    return create_model(m.method, version=m.version, size=m.size, image_size=m.image_size,
                        checkpoint=base, device=str(device), seed=seed, **extra, **m.args)


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
