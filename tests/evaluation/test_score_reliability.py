"""`score`: its output set appears whole, workers die with their parent, inputs are named correctly, and
--recursive includes sub-folders (without it one warning gives the count skipped)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sam2sod.evaluation.score as score_mod
from sam2sod.cli import main
from sam2sod.outputs import MARKER


def run_score(preds: Path, gt: Path, out: Path, *extra: str) -> int:
    return main(["score", "--pred", f"m={preds}", "--gt", str(gt), "--out", str(out), "--workers", "1",
                 "--no-progress", *extra])


def check_set(out: Path) -> dict:
    """The folder holds exactly one complete score set whose manifest matches its files."""
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*score_mod.SCORE_FILES, score_mod.MANIFEST, MARKER]), names
    manifest = json.loads((out / score_mod.MANIFEST).read_text())
    for name, digest in manifest["files"].items():
        assert score_mod._sha256(out / name) == digest, name
    return manifest


@pytest.mark.parametrize("swap", ["exchange", "two_renames"])
def test_output_set_is_replaced_whole(swap, ds, preds, tmp_path, monkeypatch, write_preds, tree_hash):
    if swap == "two_renames":
        monkeypatch.setattr(score_mod, "_exchange", lambda a, b: False)
    out = tmp_path / "scores"
    assert run_score(preds, ds / "masks", out) == 0
    first = tree_hash(out)
    check_set(out)

    write_preds(ds / "masks", preds, seed=9)  # new predictions; the next run dies half-way

    def killed(results, folder):
        raise KeyboardInterrupt

    monkeypatch.setattr("sam2sod.report.plots.plot_curves", killed)
    assert run_score(preds, ds / "masks", out) == 130
    assert tree_hash(out) == first, "a reader would see files of two runs"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scores.")], "temp set left behind"

    monkeypatch.undo()
    if swap == "two_renames":
        monkeypatch.setattr(score_mod, "_exchange", lambda a, b: False)
    assert run_score(preds, ds / "masks", out) == 0
    check_set(out)
    assert tree_hash(out)["metrics.json"] != first["metrics.json"]


def test_stale_sets_of_killed_runs_are_removed(ds, preds, tmp_path):
    out = tmp_path / "scores"
    assert run_score(preds, ds / "masks", out) == 0
    ours, users = tmp_path / ".scores.score-abc123.tmp", tmp_path / ".scores.score-mine.tmp"
    for d in (ours, users):
        d.mkdir()
    (ours / MARKER).write_text("score\n")
    os.utime(ours, (1, 1))
    os.utime(users, (1, 1))
    assert run_score(preds, ds / "masks", out) == 0
    assert not ours.exists() and users.exists()


def test_out_with_other_files_is_written_in_place_manifest_last(ds, preds, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    assert run_score(preds, ds / "masks", out, "--overwrite") == 0
    assert (out / "keep.txt").read_text() == "keep"
    manifest = json.loads((out / score_mod.MANIFEST).read_text())
    assert set(manifest["files"]) == set(score_mod.SCORE_FILES)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


DRIVER = """
import sys, time
import sam2sod.evaluation.score as s
real = s._score_one
def slow(item):  # 'enough data' without writing it: each pair takes 0.3 s
    time.sleep(0.3)
    return real(item)
s._score_one = slow
if __name__ == "__main__":
    from sam2sod.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_score_leaves_no_orphan_workers(ds, preds, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    cmd = [sys.executable, str(driver), "score", "--pred", str(preds), "--gt", str(ds / "masks"),
           "--workers", "2", "--no-progress"]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.time() + 60
        while len(workers) < 2 and time.time() < deadline and parent.poll() is None:
            workers = [c for c in _descendants(parent.pid) if _alive(c)]
            time.sleep(0.05)
        assert len(workers) >= 2, "score did not start its worker processes"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 5
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.05)
        survivors = [w for w in workers if _alive(w)]
        assert not survivors, f"worker processes {survivors} outlived their killed parent"
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()


def test_bad_prediction_is_called_a_prediction(ds, preds, tmp_path, capsys, one_error_line):
    victim = sorted(preds.glob("*.png"))[3]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert run_score(preds, ds / "masks", tmp_path / "o") == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"prediction {victim}" in line and "mask" not in line.replace(str(ds / "masks"), "")


def test_pred_given_as_a_file(ds, preds, tmp_path, capsys, one_error_line):
    f = sorted(preds.glob("*.png"))[0]
    assert run_score(f, ds / "masks", tmp_path / "o") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is a file, not a folder" in line and "does not exist" not in line
    assert not (tmp_path / "o").exists(), "inputs are checked before the output folder is made"


def test_error_starts_on_its_own_line_after_the_progress_bar(ds, preds, tmp_path, capsys, one_error_line):
    sorted(preds.glob("*.png"))[-1].write_bytes(b"broken")
    assert main(["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--workers", "1"]) == 2
    one_error_line(capsys.readouterr().err)  # the line starts with "error: ", not with the bar


def nest(folder: Path, sub: str = "sub") -> Path:
    """Move the last image of `folder` into `folder/sub/`; returns its new path."""
    last = sorted(p for p in folder.iterdir() if p.is_file())[-1]
    (folder / sub).mkdir()
    return last.rename(folder / sub / last.name)


def test_recursive_includes_subfolders_else_one_warning(ds, preds, tmp_path, capsys):
    moved = nest(ds / "masks")
    nest(preds)
    assert run_score(preds, ds / "masks", tmp_path / "flat") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 2 and all("1 " in w and "--recursive" in w for w in warnings), warnings
    rows = list(csv.DictReader((tmp_path / "flat" / "per_image.csv").open()))
    assert len(rows) == 7

    assert run_score(preds, ds / "masks", tmp_path / "tree", "--recursive") == 0
    assert "warning" not in capsys.readouterr().err
    names = [r["name"] for r in csv.DictReader((tmp_path / "tree" / "per_image.csv").open())]
    assert len(names) == 8 and f"sub/{moved.stem}" in names
