"""Shared fixtures for the "your data is safe" tests: tiny datasets, a 1-step checkpoint, folder hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.data.synthetic import make_synthetic


def tree_hash(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder` (symlinks by target name)."""
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(dirpath) / name
            key = str(p.relative_to(folder))
            out[key] = os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one `error: ...` line, no traceback; returns it."""
    assert "Traceback" not in err, err
    lines = [line for line in err.split("\n") if "error:" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), repr(lines[0])
    return lines[0]


def write_preds(masks: Path, out: Path, seed: int = 0) -> Path:
    """Noisy copies of the masks in `masks` as predictions in `out`."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted(masks.glob("*.png")):
        m = np.asarray(Image.open(p).convert("L")).astype(np.int16)
        noisy = np.clip(m + rng.integers(-60, 60, m.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(out / p.name)
    return out


@pytest.fixture(name="tree_hash")
def _tree_hash_fixture():
    """`tree_hash` as a fixture (test modules are imported with importlib, so they cannot import conftest)."""
    return tree_hash


@pytest.fixture(name="one_error_line")
def _one_error_line_fixture():
    return one_error_line


@pytest.fixture(name="write_preds")
def _write_preds_fixture():
    return write_preds


@pytest.fixture()
def ds(tmp_path: Path) -> Path:
    """A fresh 8-pair 32 px synthetic dataset (images/ + masks/) under tmp_path/ds."""
    make_synthetic(tmp_path / "ds", n=8, size=32, seed=1)
    return tmp_path / "ds"


@pytest.fixture()
def preds(ds: Path, tmp_path: Path) -> Path:
    return write_preds(ds / "masks", tmp_path / "preds")


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> Path:
    """A run directory after one training step of a tiny random-init adapter+CBAM (64 px)."""
    from sam2sod.engine.config import load_config
    from sam2sod.engine.trainer import train

    root = tmp_path_factory.mktemp("rel_ckpt")
    make_synthetic(root / "ds", n=6, size=32, seed=2)
    overrides = {"model.method": "adapter_cbam", "model.image_size": "64", "data.root": str(root / "ds"),
                 "data.train_count": "4", "optim.batch_size": "2", "optim.epochs": "1", "optim.max_steps": "1",
                 "optim.warmup_steps": "1", "device": "cpu", "val_batch_size": "2", "log_every": "1"}
    train(load_config(None, [f"{k}={v}" for k, v in overrides.items()]), root / "run")
    return root / "run"
