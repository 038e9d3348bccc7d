"""Messages a new user reads: counts in the singular for 1, `datasets check --help`, one random-init line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sam2sod.cli import main
from sam2sod.wording import plural


def test_plural():
    assert [plural(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert plural(1, "image/mask pair") == "1 image/mask pair" and plural(3, "entry", "entries") == "3 entries"


def test_make_synthetic_says_one_pair(tmp_path, capsys):
    assert main(["make-synthetic", str(tmp_path / "syn"), "--n", "1", "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 image/mask pair to" in out and "pairs" not in out


def test_datasets_check_help_is_its_own(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["datasets", "check", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sam2sod datasets check") and "--near-distance BITS" in out
    assert "--threshold" not in out and "{check}" not in out


def test_random_init_warning_printed_once(tmp_path):
    """A random-init SAM2 build prints its notice once, as one `warning:` line without a source line."""
    code = ("import sys; from sam2sod.cli import _one_line_warnings; _one_line_warnings();"
            "import logging; logging.basicConfig(level=logging.INFO);"
            "from sam2sod.models import build_sam2_model; build_sam2_model('sam2.1', 'tiny', 64, None)")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    lines = [line for line in err.splitlines() if "random init" in line.lower()]
    assert len(lines) == 1, err
    assert lines[0].startswith("warning: random init: no SAM2 weights loaded"), err
    assert ".py:" not in err, err


def test_setup_installs_skip_the_torchvision_conflict_check():
    """`make setup` installs sam2 without deps; later pip installs must not print its torchvision ERROR."""
    from pathlib import Path

    make = (Path(__file__).parents[2] / "Makefile").read_text()
    assert "NO_TV_WARNING := --no-warn-conflicts" in make
    lines = [line for line in make.splitlines() if "$(PIP) install" in line]
    after = lines[[i for i, line in enumerate(lines) if "sam2==" in line][0] + 1:]
    assert after and all("$(NO_TV_WARNING)" in line for line in after), after


def test_info_says_random_init_once():
    err = subprocess.run([sys.executable, "-m", "sam2sod.cli", "info", "--set", "model.image_size=64"],
                         capture_output=True, text=True, check=True).stderr
    lines = [line for line in err.splitlines() if "random init" in line.lower()]
    assert lines == [lines[0]] and lines[0].startswith("warning: random init: no SAM2 weights loaded"), err
