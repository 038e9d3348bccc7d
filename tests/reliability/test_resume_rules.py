"""`train --resume` continues the same training: --out and config changes are refused (or recorded with
--allow-config-change), a finished run says so at once, a run that never saved says how to restart, and the
resumed epoch's train_loss equals the uninterrupted run's."""

from __future__ import annotations

import csv
import os
import signal
import time
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
    root = tmp_path_factory.mktemp("resume_rules") / "ds"
    make_synthetic(root, n=12, size=64, seed=6)
    return root


def _cfg(root: Path, **extra: str):
    defaults = {"optim.epochs": "2", "optim.warmup_steps": "1", "optim.lr": "1e-3", "log_every": "1"}
    return load_config(None, tiny_overrides(root, "decoder_only", **{**defaults, **extra}))


@pytest.fixture(scope="module")
def done_run(data_root, tmp_path_factory) -> Path:
    """A finished 2-step, 1-epoch run."""
    run = tmp_path_factory.mktemp("resume_done") / "run"
    train(_cfg(data_root, **{"optim.max_steps": "2", "optim.epochs": "1"}), run)
    return run


def test_resume_into_another_out_is_refused(done_run, tmp_path, capsys, one_error_line) -> None:
    other = tmp_path / "other"
    assert main(["train", "--resume", str(done_run), "--out", str(other)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"continues the run in {done_run}" in line and "drop --out" in line
    assert not other.exists()


def test_resume_with_other_data_is_refused_unless_allowed(done_run, data_root, tmp_path, capsys,
                                                          one_error_line) -> None:
    import shutil

    copy = tmp_path / "ds2"
    shutil.copytree(data_root, copy)
    before = (done_run / "last.pt").read_bytes()
    assert main(["train", "--resume", str(done_run), "--set", f"data.root={copy}",
                 "--set", "optim.max_steps=3"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "data.root" in line and "--allow-config-change" in line
    assert (done_run / "last.pt").read_bytes() == before  # nothing trained, nothing rewritten
    assert not (done_run / "config_changes.txt").exists()

    run = tmp_path / "allowed"
    shutil.copytree(done_run, run)
    assert main(["train", "--resume", str(run), "--set", f"data.root={copy}", "--set", "optim.max_steps=3",
                 "--allow-config-change"]) == 0
    log = (run / "config_changes.txt").read_text()
    assert f"data.root: '{data_root}' -> '{copy}'" in log and "optim.max_steps: 2 -> 3" in log
    assert torch.load(run / "last.pt", weights_only=True)["config"]["data"]["root"] == str(copy)


def test_resume_may_extend_training_without_the_flag(done_run, tmp_path) -> None:
    import shutil

    run = tmp_path / "longer"
    shutil.copytree(done_run, run)
    assert main(["train", "--resume", str(run), "--set", "optim.max_steps=3"]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 3
    assert "optim.max_steps: 2 -> 3" in (run / "config_changes.txt").read_text()


def test_resume_bad_set_value_is_one_line(done_run, capsys, one_error_line) -> None:
    assert main(["train", "--resume", str(done_run), "--set", "optim.lr=["]) == 2
    assert "not valid YAML" in one_error_line(capsys.readouterr().err)


def test_finished_run_says_complete_at_once(done_run, monkeypatch, capsys) -> None:
    monkeypatch.setattr(trainer_mod, "model_from_config", lambda *a, **k: pytest.fail("model built"))
    t0 = time.perf_counter()
    assert main(["train", "--resume", str(done_run)]) == 0
    assert time.perf_counter() - t0 < 5
    out = capsys.readouterr().out
    assert "is already complete" in out and "optim.max_steps 2" in out and "2 steps" in out


def test_run_that_never_saved_says_how_to_restart(data_root, tmp_path, monkeypatch, capsys,
                                                  one_error_line) -> None:
    run = tmp_path / "killed"
    monkeypatch.setattr(trainer_mod, "save_checkpoint", lambda p, s: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["train", "--out", str(run), "--set", "model.method=decoder_only", "--set", "model.image_size=64",
                 "--set", f"data.root={data_root}", "--set", "data.train_count=8", "--set", "optim.max_steps=1",
                 "--set", "device=cpu"]) == 130
    assert (run / "config.yaml").is_file() and not (run / "last.pt").exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "never saved a checkpoint" in line
    assert f"delete {run / 'metrics.csv'}, then run: sam2sod train --config {run / 'config.yaml'} --out {run}" in line
    monkeypatch.undo()
    (run / "metrics.csv").unlink()
    assert main(["train", "--config", str(run / "config.yaml"), "--out", str(run)]) == 0  # the advice works
    assert (run / "last.pt").is_file()


def test_mid_epoch_resume_keeps_the_epoch_train_loss(data_root, tmp_path, monkeypatch) -> None:
    ref = tmp_path / "ref"
    train(_cfg(data_root, **{"optim.max_steps": "4", "optim.epochs": "1"}), ref)
    run = tmp_path / "run"
    real, calls = trainer_mod.compute_loss, []

    def interrupting(out, masks, cfg, model=None):
        calls.append(1)
        if len(calls) == 2:  # during step 2 of the 4-step epoch
            os.kill(os.getpid(), signal.SIGINT)
        return real(out, masks, cfg, model)

    monkeypatch.setattr(trainer_mod, "compute_loss", interrupting)
    with pytest.raises(SodError, match="stopped by SIGINT at step 2"):
        train(_cfg(data_root, **{"optim.max_steps": "4", "optim.epochs": "1"}), run)
    monkeypatch.setattr(trainer_mod, "compute_loss", real)
    assert main(["train", "--resume", str(run)]) == 0
    ref_rows = list(csv.DictReader((ref / "metrics.csv").open()))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == ["4"]
    assert rows[0]["train_loss"] == ref_rows[0]["train_loss"]
