"""atomic.py: files honour the umask, a full disk is one clear error with no partial or temp file left,
and `remove_stale_tmp` deletes only sam2sod's own stale temp files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

import sam2sod.atomic as atomic
from sam2sod.atomic import atomic_open, atomic_write_text, current_umask, remove_stale_tmp
from sam2sod.cli import main
from sam2sod.errors import SodError


@pytest.fixture()
def umask():
    """set(mask): change the process umask for this test only."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_files_honour_the_umask(mask, umask, tmp_path):
    umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "a.txt", "x")
    assert mode(tmp_path / "a.txt") == 0o666 & ~mask


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_command_outputs_honour_the_umask(mask, umask, tmp_path, ds, preds, capsys):
    umask(mask)
    assert main(["make-synthetic", str(tmp_path / "s"), "--n", "2", "--size", "16"]) == 0
    assert main(["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(tmp_path / "o"),
                 "--workers", "1", "--no-progress"]) == 0
    files = [*(tmp_path / "s").rglob("*"), *(tmp_path / "o").iterdir()]
    for p in files:
        want = (0o777 if p.is_dir() else 0o666) & ~mask
        assert mode(p) == want, (p, oct(mode(p)))
    assert mode(tmp_path / "o") == 0o777 & ~mask


def no_tmp_left(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("where", ["body", "fsync", "mkstemp"])
def test_full_disk_is_one_clear_error_and_leaves_nothing(where, tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old run\n")
    full = OSError(errno.ENOSPC, "No space left on device")

    def fail(*a, **k):
        raise full

    if where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", fail)
    if where == "mkstemp":
        monkeypatch.setattr(atomic.tempfile, "mkstemp", fail)
    with pytest.raises(SodError, match="no space left on the disk") as info:
        with atomic_open(target, "w") as f:
            f.write("new")
            if where == "body":
                raise full
    assert str(target) in str(info.value)
    assert target.read_text() == "old run\n", "the previous file must stay intact"
    assert no_tmp_left(tmp_path)


def test_other_errors_in_the_callers_block_pass_through(tmp_path):
    with pytest.raises(ValueError):
        with atomic_open(tmp_path / "x", "w"):
            raise ValueError("caller's bug")
    with pytest.raises(OSError) as info:
        with atomic_open(tmp_path / "y", "w"):
            raise OSError(errno.EIO, "input/output error reading something else")
    assert not isinstance(info.value, SodError)
    assert no_tmp_left(tmp_path) and not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["make-synthetic", "score"])
def test_full_disk_during_a_command(command, tmp_path, ds, preds, monkeypatch, capsys, one_error_line,
                                    tree_hash):
    before = tree_hash(ds)
    out = tmp_path / "out"
    argv = {"make-synthetic": ["make-synthetic", str(out), "--n", "3", "--size", "16"],
            "score": ["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out),
                      "--workers", "1", "--no-progress"]}[command]
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_fills_up(fd):
        calls["n"] += 1
        if calls["n"] > 2:  # the marker gets through, a later output does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync_fills_up)
    assert main(argv) == 2
    assert "no space left on the disk" in one_error_line(capsys.readouterr().err)
    assert no_tmp_left(tmp_path) and tree_hash(ds) == before
    if command == "score":
        assert not out.exists(), "no partial score set, and no folder left holding only the marker"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")], "temp set left behind"


def test_remove_stale_tmp_only_removes_our_old_temp_files(tmp_path):
    keep = ["notes.tmp", ".notes.tmp", ".a.png.short.tmp", "a.png", ".a.png.ABCDEFGH.tmp"]
    for name in keep:
        (tmp_path / name).write_text("user")
    stale = [tmp_path / ".metrics.json.abcd_123.tmp", tmp_path / "sub" / ".last.pt.x1y2z3w4.tmp"]
    young = tmp_path / ".best.pt.qwertyui.tmp"
    (tmp_path / "sub").mkdir()
    for p in [*stale, young]:
        p.write_text("half written")
    for p in stale:
        os.utime(p, (1, 1))
    link_target = tmp_path / "target"
    link_target.write_text("t")
    link = tmp_path / ".x.png.linkedtm.tmp"
    link.symlink_to(link_target)
    os.utime(link, (1, 1), follow_symlinks=False)
    assert remove_stale_tmp(tmp_path) == 1
    assert not stale[0].exists() and stale[1].exists()
    assert remove_stale_tmp(tmp_path, recursive=True) == 1
    assert not stale[1].exists() and young.exists() and link.is_symlink()
    assert all((tmp_path / n).read_text() == "user" for n in keep)
    assert remove_stale_tmp(tmp_path / "missing") == 0


def test_commands_remove_stale_tmp_in_their_output(tmp_path, ds, preds, capsys):
    out = tmp_path / "o"
    argv = ["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out), "--workers", "1",
            "--no-progress"]
    assert main(argv) == 0
    killed = out / ".per_image.csv.k1ll3d00.tmp"
    killed.write_text("half")
    os.utime(killed, (1, 1))
    assert main(argv) == 0
    assert not killed.exists()
