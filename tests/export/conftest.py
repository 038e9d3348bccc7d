"""Run folders for the export tests, made without training: a model with perturbed trainable weights saved as
a run checkpoint (best.pt) with the run's config, plus metrics.csv / result.json as a run writes them."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from sam2sod.models import create_model, state_for_checkpoint
from sam2sod.runs.checkpoints import save_checkpoint
from sam2sod.runs.config import ModelConfig, TrainConfig, to_dict

torch.set_num_threads(1)  # tiny models: one thread is faster, and the CPU is shared

METRICS_CSV = ("epoch,step,train_loss,val_S,val_MAE,lr,skipped_steps,time_s\n"
               "1,2,0.9,0.51,0.31,0.001,0,1.0\n2,4,0.8,0.6125,0.25,0.0005,0,2.0\n")


def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 1e-3) -> None:
    """Move every trainable tensor (LoRA's B included) and BatchNorm's running mean away from its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.add_(torch.randn(b.shape, generator=g) * 0.01)


def write_run(run: Path, method: str, checkpoint: str | None = None, args: dict[str, Any] | None = None,
              metrics: bool = True, **model_kw: Any) -> Path:
    """A one-stage run folder for `method` at 64 px: best.pt (+ metrics.csv, result.json)."""
    run.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(model=ModelConfig(method=method, image_size=64, checkpoint=checkpoint, args=dict(args or {}),
                                        **model_kw))
    cfg.data.root = "/data/DUTS-TR"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(method, image_size=64, seed=cfg.seed, checkpoint=checkpoint, **(args or {}))
    perturb(model)
    state = {"model": state_for_checkpoint(model), "config": to_dict(cfg), "step": 4, "epoch": 2,
             "best": {"S": 0.6125, "MAE": 0.25, "epoch": 2, "step": 4}, "pretrained": model.model_is_pretrained}
    save_checkpoint(run / "best.pt", state)
    if metrics:
        (run / "metrics.csv").write_text(METRICS_CSV)
        (run / "result.json").write_text(json.dumps({"S": 0.6, "maxE": 0.7, "wF": 0.4, "MAE": 0.26, "maxF": 0.55,
                                                     "split": "test", "n_images": 100}))
    return run


@pytest.fixture
def make_run(tmp_path) -> Callable[..., Path]:
    """make_run(method, name=..., **kw) -> a run folder under tmp_path (see `write_run`)."""

    def make(method: str, name: str | None = None, **kw: Any) -> Path:
        return write_run(tmp_path / (name or f"run_{method}"), method, **kw)

    return make


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
