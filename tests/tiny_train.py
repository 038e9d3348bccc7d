"""Tiny training configs shared by the training tests (64 px, 8 training pairs, batch 2, CPU)."""

from __future__ import annotations

from pathlib import Path

BASE = {"model.image_size": "64", "data.train_count": "8", "optim.batch_size": "2", "device": "cpu",
        "val_batch_size": "4"}


def tiny_overrides(root: Path, method: str, **extra: str) -> list[str]:
    """`KEY=VALUE` overrides of a tiny run of `method` on the dataset at `root`; `extra` adds or replaces keys."""
    values = {"model.method": method, "data.root": str(root), **BASE, **extra}
    return [f"{k}={v}" for k, v in values.items()]
