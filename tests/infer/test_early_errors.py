"""Usage errors of the model argument come before torch is imported (issue 21): a fresh interpreter answers a
missing model path or a `.pt` file that is no checkpoint with the loader's one line, exit 2, torch unimported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_CHILD = ("import sys\nfrom sam2sod.cli import main\ncode = main(sys.argv[1:])\n"
          "sys.stderr.write('TORCH=%d\\n' % ('torch' in sys.modules))\nsys.exit(code)\n")


def _run(args: list[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_missing_model_path_before_torch(tmp_path: Path, command: str) -> None:
    extra = {"predict": ["--input", "x"], "evaluate": ["--data", "x"], "export": []}[command]
    code, err = _run([command, "--checkpoint", "runs/nope", *extra, "--out", "y"], tmp_path)
    assert code == 2
    assert err.splitlines()[0] == ("error: model runs/nope not found (give a run folder, its best.pt / last.pt, "
                                   "or an export folder)")
    assert "TORCH=0" in err and not (tmp_path / "y").exists()


def test_damaged_checkpoint_before_torch(tmp_path: Path) -> None:
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    code, err = _run(["predict", "--checkpoint", "broken.pt", "--input", ".", "--out", "y"], tmp_path)
    assert code == 2 and "TORCH=0" in err
    assert err.splitlines()[0] == ("error: cannot read checkpoint broken.pt: not a PyTorch checkpoint (neither a zip "
                                   "archive nor a pickle)")


def test_a_real_model_path_passes_the_early_check(tmp_path: Path) -> None:
    from sam2sod.cli.early import check_model_early

    (tmp_path / "run").mkdir()
    check_model_early(str(tmp_path / "run"))  # the loader judges a folder's contents
    check_model_early("hf://user/repo")
    check_model_early(None)
