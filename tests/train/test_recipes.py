"""Training recipes (issue 21): optim.grad_checkpoint, optim.ema, optim.layer_decay through `train`.

Each option trains 2 steps; grad checkpointing gives the same first-step loss and update as without; an EMA
run validates and saves the averaged weights and resumes bit for bit; layer decay keeps each group's lr
scale under the schedule; out-of-range values fail in one line naming the range."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import torch

from sam2sod.data.synthetic import make_synthetic
from sam2sod.errors import SodError
from sam2sod.runs.config import load_config
from sam2sod.train import trainer as trainer_mod
from sam2sod.train.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipes") / "ds"
    make_synthetic(root, n=10, size=64, seed=7)
    return root


def _cfg(root: Path, **extra: str):
    base = {"model.method": "adapter_cbam", "model.image_size": "64", "data.root": str(root),
            "data.train_count": "8", "optim.batch_size": "2", "optim.epochs": "2", "optim.warmup_steps": "1",
            "optim.lr": "1e-3", "optim.max_steps": "2", "device": "cpu", "val_batch_size": "2", "log_every": "1"}
    base.update(extra)
    return load_config(None, [f"{k}={v}" for k, v in base.items()])


def _last(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


def _loss(run: Path) -> float:
    return float(next(csv.DictReader((run / "metrics.csv").open()))["train_loss"])


def test_grad_checkpoint_same_first_step(data_root, tmp_path) -> None:
    cfg = {"optim.max_steps": "1", "optim.grad_clip": "0"}
    train(_cfg(data_root, **cfg), tmp_path / "plain")
    train(_cfg(data_root, **cfg, **{"optim.grad_checkpoint": "true"}), tmp_path / "ckpt")
    assert _loss(tmp_path / "plain") == pytest.approx(_loss(tmp_path / "ckpt"), abs=1e-6)
    a, b = _last(tmp_path / "plain")["model"]["state_dict"], _last(tmp_path / "ckpt")["model"]["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    assert _last(tmp_path / "ckpt")["step"] == 1


def test_grad_checkpoint_trains_two_steps(data_root, tmp_path) -> None:
    summary = train(_cfg(data_root, **{"optim.grad_checkpoint": "true"}), tmp_path / "r")
    assert summary["step"] == 2


def test_ema_validates_and_saves_the_average(data_root, tmp_path) -> None:
    summary = train(_cfg(data_root, **{"optim.ema": "0.5"}), tmp_path / "ema")
    assert summary["step"] == 2
    last = _last(tmp_path / "ema")
    assert set(last) >= {"model", "train_model", "ema"} and last["ema"]["decay"] == 0.5
    shadow, raw = last["ema"]["shadow"], last["train_model"]["state_dict"]
    saved = last["model"]["state_dict"]
    moved = [k for k in shadow if k in saved and not torch.equal(shadow[k], raw[k])]
    assert moved, "the EMA equals the raw weights after 2 steps"
    for k in moved:  # the saved model (what predict / evaluate load) is the average, not the raw weights
        assert torch.equal(saved[k], shadow[k]) and not torch.equal(saved[k], raw[k])


def test_ema_resume_is_bit_exact(data_root, tmp_path, monkeypatch) -> None:
    extra = {"optim.ema": "0.7", "optim.max_steps": "6", "data.train_count": "8"}
    ref = tmp_path / "ref"
    train(_cfg(data_root, **extra), ref)
    run, real, calls = tmp_path / "run", trainer_mod.compute_loss, []

    def interrupting(out, masks, cfg, model=None):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(out, masks, cfg, model)

    monkeypatch.setattr(trainer_mod, "compute_loss", interrupting)
    with pytest.raises(SodError, match="stopped by SIGINT at step 3"):
        train(_cfg(data_root, **extra), run)
    monkeypatch.setattr(trainer_mod, "compute_loss", real)
    train(None, run, resume=True)
    a, b = _last(ref), _last(run)
    assert a["step"] == b["step"] == 6
    for part in ("model", "train_model"):
        for k, v in a[part]["state_dict"].items():
            assert torch.equal(v, b[part]["state_dict"][k]), (part, k)
    for k, v in a["ema"]["shadow"].items():
        assert torch.equal(v, b["ema"]["shadow"][k]), k


def test_layer_decay_groups_keep_their_scale(data_root, tmp_path, monkeypatch) -> None:
    seen = []
    real = trainer_mod.save_checkpoint
    monkeypatch.setattr(trainer_mod, "save_checkpoint", lambda p, s: seen.append(s["optimizer"]) or real(p, s))
    summary = train(_cfg(data_root, **{"optim.layer_decay": "0.5", "model.method": "lora"}), tmp_path / "ld")
    assert summary["step"] == 2
    groups = seen[-1]["param_groups"]
    scales = sorted({g["lr_scale"] for g in groups})
    assert len(scales) >= 2 and scales[-1] == 1.0
    ratios = {round(g["lr"] / g["initial_lr"], 9) for g in groups}
    assert len(ratios) == 1  # one schedule factor for all groups: each keeps lr = factor * 1e-3 * lr_scale
    for g in groups:
        assert g["initial_lr"] == pytest.approx(1e-3 * g["lr_scale"])


@pytest.mark.parametrize(("key", "value", "msg"), [
    ("optim.ema", "1.0", r"optim\.ema: 1\.0 is out of range \(must be 0 \(off\) or a number in \(0, 1\)\)"),
    ("optim.ema", "-0.1", r"optim\.ema"),
    ("optim.layer_decay", "0", r"optim\.layer_decay: 0(\.0)? is out of range \(must be a number in \(0, 1\]\)"),
    ("optim.layer_decay", "1.5", r"optim\.layer_decay"),
])
def test_out_of_range_values_fail_in_one_line(data_root, tmp_path, key, value, msg) -> None:
    with pytest.raises(SodError, match=msg) as err:
        train(_cfg(data_root, **{key: value}), tmp_path / "bad")
    assert "\n" not in str(err.value) and not (tmp_path / "bad").exists()
