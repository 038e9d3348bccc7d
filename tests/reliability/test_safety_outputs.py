"""Issue 22: output names never collide, export stays out of the run folder, and a failed command leaves
no new --out folder holding only its marker and lock."""

from __future__ import annotations

import shutil

import pytest

from sam2sod.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_recursive_formats_that_would_collide_are_refused_before_writing(ds, tmp_path, capsys, one_error_line):
    """`a.jpg` + `mask/a.jpg`: the mask of a and the map of mask/a are both OUT/mask/a.png."""
    src = tmp_path / "in"
    (src / "mask").mkdir(parents=True)
    first = sorted((ds / "images").iterdir())[0]
    shutil.copy(first, src / "a.jpg")
    shutil.copy(first, src / "mask" / "a.jpg")
    out = tmp_path / "out"
    (tmp_path / "nope").mkdir()  # exists, so only the checks before the model is opened can answer
    assert main(["predict", "--checkpoint", str(tmp_path / "nope"), "--input", str(src), "--recursive",
                 "--format", "map", "--format", "mask", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "two outputs would be written to one file" in line and "mask/a.png" in line, line
    assert not out.exists()


def test_distinct_recursive_names_pass_the_collision_check():
    from sam2sod.errors import SodError
    from sam2sod.infer.formats import check_output_names

    check_output_names(["a", "sub/a", "mask2/a"], ["map", "mask", "alpha", "overlay"])
    with pytest.raises(SodError, match="overlay/a.png"):
        check_output_names(["a", "overlay/a"], ["map", "overlay"])
    check_output_names(["overlay/a", "a"], ["map"], ["overlay/{name}.jpg"])  # --overlay's JPEG: no clash
    with pytest.raises(SodError, match="cannot name an output file"):
        check_output_names(["-rf"], ["map"])


def test_export_into_the_run_folder_is_refused(ckpt, tmp_path, capsys, one_error_line, tree_hash):
    before = tree_hash(ckpt)
    for out in (ckpt / "export", ckpt, ckpt / "a" / "b"):
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
        assert "never writes into its inputs" in one_error_line(capsys.readouterr().err)
    assert main(["export", "--checkpoint", str(ckpt / "best.pt"), "--out", str(ckpt / "export"),
                 "--overwrite"]) == 2
    assert "never writes into its inputs" in one_error_line(capsys.readouterr().err)
    assert tree_hash(ckpt) == before and not (ckpt / "export").exists()


def test_failed_predict_leaves_no_new_out(ds, tmp_path, capsys, one_error_line):
    out = tmp_path / "new" / "out"
    assert main(["predict", "--checkpoint", str(tmp_path / "no-such-run"), "--input", str(ds / "images"),
                 "--out", str(out)]) == 2
    one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists(), "the folders the command created are removed again"


def test_failed_score_on_a_truncated_prediction_leaves_no_new_out(ds, preds, tmp_path, capsys, one_error_line):
    victim = sorted(preds.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-40])  # truncated: its header reads, its pixels do not
    out = tmp_path / "scores"
    assert main(["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out), "--workers", "1",
                 "--no-progress"]) == 2
    one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_folder_the_user_made_is_kept_after_a_failure(ds, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    assert main(["predict", "--checkpoint", str(tmp_path / "no-such-run"), "--input", str(ds / "images"),
                 "--out", str(out)]) == 2
    assert out.is_dir(), "only folders the failed command created are removed"


def test_failed_train_with_a_bad_value_found_late_leaves_no_new_out(ds, tmp_path, capsys, monkeypatch):
    import sam2sod.train.stages as stages_mod
    from sam2sod.errors import SodError

    def late(*a, **k):
        raise SodError("data.root: a problem found after the output folder was prepared")

    monkeypatch.setattr(stages_mod, "run_training", late)
    out = tmp_path / "runs" / "r1"
    assert main(["train", "--out", str(out), "--set", f"data.root={ds}", "--set", "device=cpu"]) == 2
    assert not (tmp_path / "runs").exists()
