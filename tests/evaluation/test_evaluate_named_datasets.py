"""`evaluate` takes (name, folder) pairs: two folders called `test` are evaluated side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sam2sod.cli import main
from sam2sod.data import make_synthetic
from sam2sod.data.datasets.resolve import DATASETS_ENV
from sam2sod.errors import SodError
from sam2sod.evaluation.evaluate import _named_datasets


@pytest.fixture()
def run_dir(tiny_run: Path) -> Path:
    return tiny_run


def test_named_datasets_keep_plain_paths_working(tmp_path):
    assert _named_datasets([tmp_path / "x" / "test", ("b", "y/test")]) == [("test", tmp_path / "x/test"),
                                                                         ("b", Path("y/test"))]
    with pytest.raises(SodError, match="distinct names.*NAME=DIR"):
        _named_datasets([tmp_path / "x" / "test", tmp_path / "y" / "test"])
    with pytest.raises(SodError, match="invalid dataset name"):
        _named_datasets([("a/b", tmp_path)])


def test_two_folders_called_test_by_name_and_from_a_file(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATASETS_ENV, raising=False)
    make_synthetic(tmp_path / "x" / "test", n=3, size=32, seed=5)
    make_synthetic(tmp_path / "y" / "test", n=2, size=32, seed=6)
    (tmp_path / "sets.yaml").write_text(f"second: {tmp_path / 'y' / 'test'}\n")
    out = tmp_path / "ev"
    argv = ["evaluate", "--checkpoint", str(run_dir), "--out", str(out), "--device", "cpu", "--workers", "1",
            "--data", f"a={tmp_path / 'x' / 'test'}", "--data", "second", "--datasets", str(tmp_path / "sets.yaml")]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(list((out / "a" / "pred").glob("*.png"))) == 3
    assert len(list((out / "second" / "pred").glob("*.png"))) == 2
    assert set(json.loads((out / "summary.json").read_text())["datasets"]) == {"a", "second"}
