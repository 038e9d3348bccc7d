"""Training loop end to end on tiny synthetic data: files, exact resume, non-finite stop, evaluate, predict, DDP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic
from sam2sod.errors import SodError
from sam2sod.runs.config import load_config
from sam2sod.train import trainer as trainer_mod
from sam2sod.train.trainer import train
from tiny_train import tiny_overrides as shared_tiny_overrides

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trainer") / "ds"
    make_synthetic(root, n=12, size=64, seed=5)
    return root


def tiny_overrides(root: Path, **extra: str) -> list[str]:
    defaults = {"optim.epochs": "2", "optim.warmup_steps": "2", "optim.lr": "1e-3", "log_every": "1"}
    return shared_tiny_overrides(root, "adapter_cbam", **{**defaults, **extra})


def model_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]["state_dict"]


@pytest.fixture(scope="module")
def full_run(data_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "full"
    train(load_config(None, tiny_overrides(data_root, **{"optim.max_steps": "4"})), run)
    return run


def test_run_dir_contents(full_run):
    for f in ("best.pt", "last.pt", "config.yaml", "metrics.csv"):
        assert (full_run / f).is_file(), f
    assert any((full_run / "tb").iterdir())
    rows = list(csv.DictReader((full_run / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["4"]
    assert 0.0 <= float(rows[0]["val_S"]) <= 1.0 and 0.0 <= float(rows[0]["val_MAE"]) <= 1.0
    ckpt = torch.load(full_run / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "config", "step", "rng", "best"):
        assert key in ckpt, key
    assert ckpt["step"] == 4 and ckpt["config"]["model"]["method"] == "adapter_cbam"
    assert not list(full_run.glob(".*.tmp"))


def test_resume_is_bit_exact(data_root, full_run, tmp_path):
    run = tmp_path / "split"
    train(load_config(None, tiny_overrides(data_root, **{"optim.max_steps": "2"})), run)
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    assert main(["train", "--resume", str(run), "--set", "optim.max_steps=4"]) == 0
    a, b = model_state(full_run), model_state(run)
    assert a.keys() == b.keys()
    changed = 0
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
            changed += 1
    assert changed > 0
    oa = torch.load(full_run / "last.pt", weights_only=True)["optimizer"]["state"]
    ob = torch.load(run / "last.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(oa[i]["exp_avg"], ob[i]["exp_avg"]) for i in oa)


def test_non_finite_losses_stop_training_and_keep_last_good(data_root, full_run, tmp_path, monkeypatch, capsys):
    run = tmp_path / "nan"
    train(load_config(None, tiny_overrides(data_root, **{"optim.max_steps": "4"})), run)
    before = (run / "last.pt").read_bytes()

    real = trainer_mod.compute_loss

    def nan_loss(out, masks, cfg, model=None):
        loss, parts = real(out, masks, cfg, model)
        return loss * float("nan"), parts

    monkeypatch.setattr(trainer_mod, "compute_loss", nan_loss)
    assert main(["train", "--resume", str(run), "--set", "optim.max_steps=8", "--set", "optim.max_bad_steps=2"]) == 2
    err = capsys.readouterr().err
    assert "2 non-finite losses in a row" in err and "last.pt" in err and "Traceback" not in err
    assert (run / "last.pt").read_bytes() == before


def test_train_cli_refuses_to_overwrite(full_run, capsys):
    assert main(["train", "--out", str(full_run), "--set", "data.root=x"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_evaluate_and_predict(data_root, full_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(full_run), "--data", str(data_root), "--out", str(out),
                 "--device", "cpu", "--workers", "1"]) == 0
    metrics = json.loads((out / "ds" / "metrics.json").read_text())
    (method, values), = metrics.items()
    assert method == "adapter_cbam" and "RANDOM INIT" in values["note"]
    assert len(list((out / "ds" / "pred").glob("*.png"))) == 12
    assert "RANDOM INIT" in (out / "WARNING.txt").read_text()

    oracle = tmp_path / "oracle"
    assert main(["evaluate", "--checkpoint", str(full_run / "best.pt"), "--data", str(data_root), "--out",
                 str(oracle), "--prompt", "oracle-box", "--device", "cpu", "--workers", "1"]) == 0
    summary = json.loads((oracle / "summary.json").read_text())
    assert any("oracle prompt (uses ground truth)" in n for n in summary["notes"])
    assert "oracle prompt (uses ground truth)" in next(iter(json.loads((oracle / "ds" / "metrics.json").read_text())))

    pred_out = tmp_path / "pred"
    img = sorted((data_root / "images").iterdir())[0]
    big = tmp_path / "in" / "big.png"
    big.parent.mkdir()
    Image.open(img).resize((90, 70)).save(big)
    assert main(["predict", "--checkpoint", str(full_run), "--input", str(big.parent), "--out", str(pred_out),
                 "--overlay", "--device", "cpu"]) == 0
    with Image.open(pred_out / "big.png") as p:
        assert p.size == (90, 70) and p.mode == "L"
    assert (pred_out / "overlay" / "big.jpg").is_file()
    assert main(["predict", "--checkpoint", str(tmp_path / "nope"), "--input", str(big), "--out", str(pred_out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_training_data_is_a_clear_error(tmp_path):
    with pytest.raises(SodError, match="no training data"):
        train(load_config(None, ["device=cpu"]), tmp_path / "r")


def test_ddp_two_cpu_processes(data_root, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "sam2sod.cli", "train", "--out", str(run)] + sum(
        (["--set", o] for o in tiny_overrides(data_root, **{"optim.max_steps": "2", "optim.epochs": "1"})), [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["step"] == 2
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 1  # rank 0 alone writes logs and checkpoints
