"""Long runs survive interruptions: SIGINT mid-epoch saves last.pt and resumes exactly, periodic step
checkpoints, metrics.csv cut back on resume, broken files found before step 1."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import torch

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic
from sam2sod.errors import SodError
from sam2sod.runs.config import load_config
from sam2sod.train import trainer as trainer_mod
from sam2sod.train.trainer import train
from tiny_train import tiny_overrides

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupt") / "ds"
    make_synthetic(root, n=12, size=64, seed=6)
    return root


def _cfg(root: Path, **extra: str):
    defaults = {"optim.epochs": "2", "optim.warmup_steps": "1", "optim.lr": "1e-3", "log_every": "1"}
    return load_config(None, tiny_overrides(root, "decoder_only", **{**defaults, **extra}))


def _state(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


def test_sigint_mid_epoch_saves_and_resumes_exactly(data_root, tmp_path, monkeypatch, capsys) -> None:
    ref = tmp_path / "ref"
    train(_cfg(data_root, **{"optim.max_steps": "6"}), ref)
    run = tmp_path / "run"
    real, calls = trainer_mod.compute_loss, []

    def interrupting(out, masks, cfg, model=None):
        calls.append(1)
        if len(calls) == 3:  # during step 3 of the first epoch (4 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return real(out, masks, cfg, model)

    monkeypatch.setattr(trainer_mod, "compute_loss", interrupting)
    with pytest.raises(SodError, match=r"stopped by SIGINT at step 3: .*last\.pt saved; continue with: sam2sod "
                                       r"train --resume"):
        train(_cfg(data_root, **{"optim.max_steps": "6"}), run)
    assert _state(run)["step"] == 3 and not (run / "metrics.csv").exists()  # mid-epoch: no epoch row yet
    monkeypatch.setattr(trainer_mod, "compute_loss", real)
    assert main(["train", "--resume", str(run)]) == 0
    a, b = _state(ref), _state(run)
    assert a["step"] == b["step"] == 6
    for k, v in a["model"]["state_dict"].items():
        assert torch.equal(v, b["model"]["state_dict"][k]), k
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_periodic_step_checkpoints(data_root, tmp_path, monkeypatch) -> None:
    saved = []
    real = trainer_mod.save_checkpoint
    monkeypatch.setattr(trainer_mod, "save_checkpoint", lambda p, s: saved.append((p.name, s["step"])) or real(p, s))
    train(_cfg(data_root, **{"optim.max_steps": "6", "optim.checkpoint_every_steps": "2"}), tmp_path / "r")
    # every 2 steps mid-epoch, plus best/last at each epoch end (4 steps per epoch)
    assert [s for s in saved if s[0] == "last.pt"] == [("last.pt", 2), ("last.pt", 4), ("last.pt", 6)]
    saved.clear()
    train(_cfg(data_root, **{"optim.max_steps": "3", "optim.checkpoint_every_steps": "0"}), tmp_path / "r0")
    assert [s for s in saved if s[0] == "last.pt"] == [("last.pt", 3)]


def test_resume_cuts_metrics_back_to_the_checkpoint(data_root, tmp_path) -> None:
    run = tmp_path / "cut"
    train(_cfg(data_root, **{"optim.max_steps": "4"}), run)
    path = run / "metrics.csv"
    lines = path.read_text().splitlines()
    # an interrupted later save: a row for step 8 written, last.pt still at step 4
    path.write_text("\n".join([*lines, lines[-1].replace(",4,", ",8,", 1).replace("1,", "2,", 1)]) + "\n")
    stale = run / ".last.pt.abcd1234.tmp"
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (1, 1))
    assert main(["train", "--resume", str(run), "--set", "optim.max_steps=8"]) == 0
    rows = list(csv.DictReader(path.open()))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "4"), ("2", "8")]
    assert not stale.exists()


def test_truncated_val_image_is_found_before_training(data_root, tmp_path) -> None:
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(data_root, root)
    victim = sorted((root / "images").iterdir())[-1]  # in the val split
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    with pytest.raises(SodError, match=victim.name):
        train(_cfg(root, **{"optim.max_steps": "2"}), tmp_path / "never")
    assert not (tmp_path / "never" / "metrics.csv").exists() and not (tmp_path / "never" / "last.pt").exists()
