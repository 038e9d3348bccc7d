"""Bad inputs are one line (exit 2) with no output left: unreadable predict inputs, broken symlinks, huge
synthetic sets, a dataset root as --gt, a bad benchmark seed, a file as weights folder, an evaluation that
excludes every image; predict says when it falls back to last.pt; killed score sets are cleaned up."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from sam2sod.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _predict(ckpt: Path, src: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--checkpoint", str(ckpt), "--input", str(src), "--out", str(out), "--device", "cpu",
                 *extra])


def test_predict_one_zero_byte_file(ckpt, tmp_path, capsys, one_error_line) -> None:
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    out = tmp_path / "out"
    assert _predict(ckpt, bad, out) == 2
    err = capsys.readouterr().err
    assert "cannot read the image in --input" in one_error_line(err) and "skipped:" in err
    assert not out.exists()


def test_predict_folder_of_bad_files(ckpt, ds, tmp_path, capsys, one_error_line) -> None:
    src = tmp_path / "bad"
    src.mkdir()
    (src / "a.png").write_bytes(b"not an image")
    good = sorted((ds / "images").iterdir())[0]
    (src / "b.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 3])  # header reads, pixels do not
    out = tmp_path / "out"
    assert _predict(ckpt, src, out) == 2
    assert "cannot read any of the 2 images" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_predict_mixed_inputs_skip_and_exit_3(ckpt, ds, tmp_path, capsys) -> None:
    src = tmp_path / "mixed"
    src.mkdir()
    shutil.copy(sorted((ds / "images").iterdir())[0], src / "good.jpg")
    (src / "bad.jpg").write_bytes(b"")
    out = tmp_path / "out"
    assert _predict(ckpt, src, out) == 3
    assert (out / "good.png").is_file() and not (out / "bad.png").exists()


def test_broken_symlinks_and_loops_are_reported(ckpt, ds, tmp_path, capsys) -> None:
    src = tmp_path / "links"
    src.mkdir()
    shutil.copy(sorted((ds / "images").iterdir())[0], src / "good.jpg")
    (src / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (src / "loop1.jpg").symlink_to(src / "loop2.jpg")
    (src / "loop2.jpg").symlink_to(src / "loop1.jpg")
    assert _predict(ckpt, src, tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert f"skipped: {src / 'gone.jpg'}: a broken symbolic link" in err
    assert f"skipped: {src / 'loop1.jpg'}: a symbolic link loop" in err
    assert f"skipped: {src / 'loop2.jpg'}: a symbolic link loop" in err


def test_predict_says_when_it_uses_last_pt(ckpt, ds, tmp_path, caplog) -> None:
    run = tmp_path / "run"
    shutil.copytree(ckpt, run)
    (run / "best.pt").unlink()
    with caplog.at_level(logging.INFO, logger="sam2sod.checkpoint"):
        assert _predict(run, sorted((ds / "images").iterdir())[0], tmp_path / "out") == 0
    assert f"{run} has no best.pt: using its last.pt" in caplog.text


def test_make_synthetic_too_big_for_memory(tmp_path, capsys, one_error_line) -> None:
    out = tmp_path / "syn"
    assert main(["make-synthetic", str(out), "--image-size", "1000000"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--image-size 1000000 needs about" in line and "of memory" in line
    assert "use an --image-size up to about" in line
    assert main(["make-synthetic", str(out), "--n", "100000000000"]) == 2
    assert "use an --n up to about" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_make_synthetic_too_big_for_the_disk(tmp_path, monkeypatch, capsys, one_error_line) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 50_000, 50_000))
    out = tmp_path / "syn"
    assert main(["make-synthetic", str(out), "--n", "1000", "--image-size", "64"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "needs at least" in line and "is free" in line and "--n 55 pairs" in line
    assert not out.exists()


def test_score_gt_dataset_root_suggests_masks(ds, preds, tmp_path, capsys, one_error_line) -> None:
    assert main(["score", "--pred", str(preds), "--gt", str(ds)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "looks like a dataset root" in line and f"did you mean --gt {ds / 'masks'}?" in line
    assert "--recursive" not in line


def test_killed_score_staging_set_is_removed(ds, preds, tmp_path) -> None:
    out = tmp_path / "scores"
    assert main(["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out)]) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".scores.score-{dead}-abc123.tmp"
    stale.mkdir()
    (stale / ".sam2sod-output").write_text("score\n")
    (stale / "metrics.json").write_text("{}")
    (tmp_path / f".scores.score-{dead}-zzz999.tmp").mkdir()  # killed before its marker was written
    assert main(["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out)]) == 0
    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scores.")]


def test_benchmark_negative_seed(ds, preds, tmp_path, capsys, one_error_line) -> None:
    out = tmp_path / "bench"
    assert main(["benchmark", "--pred", f"m={preds}", "--data", f"d={ds}", "--out", str(out), "--seed", "-1"]) == 2
    assert "--seed must be an integer >= 0" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_weights_dir_that_is_a_file_names_the_option(tmp_path, monkeypatch, capsys, one_error_line) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["weights", "download", "sam2.1_hiera_tiny", "--dir", str(afile)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: --dir {afile} is a file, not a folder") and "--out" not in line
    monkeypatch.setenv("SAM2SOD_WEIGHTS_DIR", str(afile / "sub"))
    assert main(["weights", "download", "sam2.1_hiera_tiny"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"SAM2SOD_WEIGHTS_DIR={afile / 'sub'} cannot be created: {afile} is a file" in line
    assert "--out" not in line


def test_exclude_overlap_of_every_image(ckpt, tmp_path, capsys, one_error_line) -> None:
    copy = tmp_path / "same"
    shutil.copytree(ckpt.parent / "ds", copy)  # the run's own training data under another name
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(copy), "--out", str(out), "--device", "cpu",
                 "--exclude-overlap"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "nothing is left to score" in line and "--exclude-overlap" in line
    assert not out.exists()

