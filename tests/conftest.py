"""Fixtures shared by the test packages: tiny datasets, THE tiny trained run (`tiny_run`), a point-trained tiny
model, two-square scenes, folder hashes and the one-`error:`-line check."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sam2sod.data.synthetic import make_synthetic

torch.set_num_threads(1)  # tiny models: one thread is faster on a shared CPU
S = 64


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
def ckpt(tiny_run: Path) -> Path:
    """The tiny trained run (`tiny_run`), under the name the data-safety tests use."""
    return tiny_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """Run dir after 2 training steps of random-init adapter_cbam (hiera-tiny, 64 px) on synthetic data."""
    from sam2sod.runs.config import load_config
    from sam2sod.train.stages import run_training

    root = tmp_path_factory.mktemp("pred_run")
    make_synthetic(root / "ds", n=6, size=48, seed=4)
    overrides = {"model.method": "adapter_cbam", "model.image_size": str(S), "data.root": str(root / "ds"),
                 "data.train_count": "4", "optim.batch_size": "2", "optim.epochs": "1", "optim.max_steps": "2",
                 "optim.warmup_steps": "1", "device": "cpu", "val_batch_size": "2", "log_every": "1"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_training(load_config(None, [f"{k}={v}" for k, v in overrides.items()]), root / "run")
    return root / "run"


def two_squares(rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 64x64 RGB scene with two bright squares (left half, right half) on dark noise, and their masks."""
    img = (rng.random((S, S, 3)) * 60 + 40).astype(np.uint8)
    masks = []
    for cx in (int(rng.integers(10, 22)), int(rng.integers(42, 54))):
        cy, r = int(rng.integers(12, 52)), int(rng.integers(6, 10))
        m = np.zeros((S, S), bool)
        m[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = True
        img[m] = rng.integers(150, 255, 3)
        masks.append(m)
    return img, masks


@pytest.fixture(name="two_squares")
def _two_squares_fixture():
    return two_squares


@pytest.fixture(scope="session")
def point_model() -> torch.nn.Module:
    """Random-init adapter_cbam (64 px) whose prompt encoder + mask decoder learnt, on cached embeddings of
    two-square scenes, to segment the square under a foreground click (250 Adam steps, a few seconds)."""
    from sam2sod.data.prompts import Prompts, collate_prompts
    from sam2sod.infer.inference import preprocess
    from sam2sod.models import create_model

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("adapter_cbam", version="sam2.1", size="tiny", image_size=S, seed=0)
    scenes = [two_squares(rng) for _ in range(32)]
    with torch.no_grad():
        feats = model.encode_image(torch.stack([preprocess(im, S) for im, _ in scenes]))
    params = [*model.sam_prompt_encoder.parameters(), *model.sam_mask_decoder.parameters()]
    opt = torch.optim.Adam(params, lr=3e-4)
    for _ in range(250):
        idx = rng.choice(len(scenes), 8, replace=False)
        prompts, targets = [], []
        for i in idx:
            m = scenes[i][1][int(rng.integers(2))]
            ys, xs = np.nonzero(m)
            j = int(rng.integers(len(ys)))
            prompts.append(Prompts(points=torch.tensor([[xs[j], ys[j]]], dtype=torch.float32),
                                   labels=torch.tensor([1])))
            targets.append(torch.from_numpy(m).float())
        f = {"image_embed": feats["image_embed"][idx], "high_res_feats": [h[idx] for h in feats["high_res_feats"]]}
        out = model.decode(f, collate_prompts(prompts, S))
        loss = F.binary_cross_entropy_with_logits(out["logits"][:, 0], torch.stack(targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def point_run(tiny_run: Path, point_model: torch.nn.Module, tmp_path_factory) -> Path:
    """A run dir holding `point_model` (tiny_run's checkpoint with the model state swapped; same seed-0 base)."""
    from sam2sod.models import state_for_checkpoint
    from sam2sod.runs.checkpoints import read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(tiny_run)
    ckpt.pop("path")
    ckpt.pop("format")
    ckpt["model"] = state_for_checkpoint(point_model)
    run = tmp_path_factory.mktemp("point_run") / "run"
    save_checkpoint(run / "best.pt", ckpt)
    return run


@pytest.fixture(scope="session")
def squares_ds(tmp_path_factory) -> Path:
    """A 4-pair dataset of two-square scenes (images/ *.png, masks/ both squares)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("squares") / "squares"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(11)
    for i in range(4):
        img, masks = two_squares(rng)
        Image.fromarray(img).save(root / "images" / f"sq{i}.png")
        Image.fromarray(((masks[0] | masks[1]) * 255).astype(np.uint8)).save(root / "masks" / f"sq{i}.png")
    return root
