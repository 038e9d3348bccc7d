"""Training failures are one line: a full disk while saving a checkpoint, out of memory in a step, a bad
ablation cell (found before any cell trains), an empty config, a folder as --config, an impossible split."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
import torch

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic
from sam2sod.errors import SodError
from sam2sod.runs.checkpoints import save_checkpoint
from sam2sod.train import trainer as trainer_mod
from tiny_train import tiny_overrides

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("errors_training") / "ds"
    make_synthetic(root, n=12, size=64, seed=3)
    return root


def _tiny(root: Path, **extra: str) -> list[str]:
    defaults = {"optim.epochs": "1", "optim.max_steps": "1", "optim.warmup_steps": "1"}
    return [a for kv in tiny_overrides(root, "decoder_only", **{**defaults, **extra}) for a in ("--set", kv)]


class _FullDisk(io.RawIOBase):
    """A file that takes 1000 bytes, then fails as a full disk does."""

    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.n += len(b)
        if self.n > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(b)


def test_full_disk_while_saving_a_checkpoint(tmp_path, monkeypatch) -> None:
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, _FullDisk()))
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    with pytest.raises(SodError) as info:
        save_checkpoint(path, {"w": torch.zeros(10_000)})
    msg = str(info.value)
    assert msg.startswith(f"cannot write {path}: no space left on the disk") and "unexpected pos" not in msg
    assert list(path.parent.iterdir()) == []  # no partial file, no temp file


def test_full_disk_during_train_is_one_line(data_root, tmp_path, monkeypatch, capsys, one_error_line) -> None:
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, _FullDisk()))
    assert main(["train", "--out", str(tmp_path / "run"), *_tiny(data_root)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no space left on the disk" in line and ".pt" in line


def test_out_of_memory_in_a_step_names_the_sizes(data_root, tmp_path, monkeypatch, capsys, one_error_line) -> None:
    def oom(*_a, **_k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 123456789012 bytes.")

    monkeypatch.setattr(trainer_mod, "compute_loss", oom)
    assert main(["train", "--out", str(tmp_path / "run"), *_tiny(data_root)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "out of memory in training step 1 at model.image_size 64, optim.batch_size 2 on cpu" in line
    assert "123456789012 bytes" in line and "lower model.image_size" in line
    assert "DefaultCPUAllocator" not in line


def test_other_runtime_errors_are_not_called_out_of_memory(data_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(trainer_mod, "compute_loss", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape")))
    from sam2sod.runs.config import load_config
    from sam2sod.train.trainer import train

    overrides = _tiny(data_root)[1::2]
    with pytest.raises(RuntimeError, match="shape"):
        train(load_config(None, overrides), tmp_path / "run")


def test_ablate_checks_every_cell_before_training(data_root, tmp_path, monkeypatch, capsys, one_error_line) -> None:
    from sam2sod.train import stages

    monkeypatch.setattr(stages, "run_training", lambda *a, **k: pytest.fail("a cell trained"))
    out = tmp_path / "grid"
    assert main(["ablate", *_tiny(data_root), "--grid", "optim.lr=1e-3,-5", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "grid cell lr=-5" in line and "optim.lr" in line and "no cell was trained" in line
    assert not out.exists()
    assert main(["ablate", *_tiny(data_root), "--grid", "model.method=decoder_only,nosuch", "--out", str(out)]) == 2
    assert "model.method" in one_error_line(capsys.readouterr().err)
    assert main(["ablate", *_tiny(data_root), "--grid", "optim.lr=1e-3", "--grid", "optim.lr=1e-4",
                 "--out", str(out)]) == 2
    assert "optim.lr is given twice" in one_error_line(capsys.readouterr().err)
    assert main(["ablate", *_tiny(data_root), "--grid", "optim.lr=[", "--out", str(out)]) == 2
    assert "not valid YAML" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_empty_config_and_folder_config_are_refused(data_root, tmp_path, capsys, one_error_line) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(empty), "--out", str(out), *_tiny(data_root)]) == 2
    assert f"config file {empty} is empty" in one_error_line(capsys.readouterr().err)
    folder = tmp_path / "cfgdir"
    folder.mkdir()
    assert main(["train", "--config", str(folder), "--out", str(out), *_tiny(data_root)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is a folder, not a config file" in line and "not found" not in line
    assert not out.exists()


def test_quickstart_config_on_a_small_set_names_train_count(tmp_path, capsys, one_error_line) -> None:
    make_synthetic(tmp_path / "small", n=12, size=32, seed=0)
    out = tmp_path / "run"
    assert main(["train", "--config", "quickstart", "--set", f"data.root={tmp_path / 'small'}",
                 "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "cannot split 12 pairs into 100 train" in line
    assert "data.train_count is 100" in line and "--set data.train_count=10" in line
    assert not out.exists()
