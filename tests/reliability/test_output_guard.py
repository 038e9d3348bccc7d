"""The output-folder guard of every writing command: new/empty/own folder, --overwrite, inputs never written,
and pre-flight checks (under a file, read-only, full disk) as one `error:` line before any work starts."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sam2sod.cli import main
from sam2sod.errors import SodError
from sam2sod.outputs import MARKER, MIN_FREE_ENV, prepare_output_dir, read_marker

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

COMMANDS = ["score", "evaluate", "predict", "make-synthetic", "quickstart", "train", "ablate"]


def argv(command: str, ds: Path, preds: Path, out: Path, *extra: str) -> list[str]:
    """A command line that passes every input check, writing to `out` (checkpoints need not exist)."""
    nope = str(ds.parent / "not-a-run")  # made by `_not_a_run`: the early model-path check passes
    data = ["--set", f"data.root={ds}", "--set", "device=cpu"]
    return {
        "score": ["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out), "--workers", "1",
                  "--no-progress"],
        "evaluate": ["evaluate", "--checkpoint", nope, "--data", str(ds), "--out", str(out), "--device", "cpu"],
        "predict": ["predict", "--checkpoint", nope, "--input", str(ds / "images"), "--out", str(out)],
        "make-synthetic": ["make-synthetic", str(out), "--n", "3", "--size", "16"],
        "quickstart": ["quickstart", "--out", str(out), "--n", "12", "--size", "16"],
        "train": ["train", "--out", str(out), *data],
        "ablate": ["ablate", "--grid", "optim.lr=0.001", "--out", str(out), *data],
    }[command] + list(extra)


@pytest.fixture(autouse=True)
def _not_a_run(ds):
    """An empty folder as the model path: it exists, so only the checks before the model is opened answer."""
    (ds.parent / "not-a-run").mkdir(exist_ok=True)


@pytest.fixture()
def guarded(monkeypatch):
    """Make any command that gets past the guard fail loudly, so a test sees where it stopped."""
    import sam2sod.apps.quickstart as qs_mod
    import sam2sod.train.ablate as ablate_mod
    import sam2sod.train.stages as stages_mod
    import sam2sod.train.trainer as trainer_mod

    def boom(*a, **k):
        raise AssertionError("work started although the output folder should have been refused")

    monkeypatch.setattr(trainer_mod, "train", boom)
    monkeypatch.setattr(stages_mod, "run_training", boom)
    monkeypatch.setattr(ablate_mod, "ablate", boom)
    monkeypatch.setattr(qs_mod, "load_config", boom)


@pytest.fixture()
def check_refused(ds, preds, capsys, tree_hash, one_error_line):
    """check(command, out, *expected parts, extra=()): exit 2, one error line, no file under tmp_path changed."""

    def check(command: str, out: Path, *expect: str, extra: tuple[str, ...] = ()) -> str:
        before = tree_hash(ds.parent)
        assert main(argv(command, ds, preds, out, *extra)) == 2
        line = one_error_line(capsys.readouterr().err)
        for e in expect:
            assert e in line, line
        assert tree_hash(ds.parent) == before, "a user file changed"
        return line

    return check


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("problem", ["under_file", "is_file", "low_disk", "read_only_fs"])
def test_unusable_out_is_one_line_before_work(command, problem, ds, tmp_path, monkeypatch, check_refused,
                                              guarded):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("user data\n")
    out = {"under_file": blocker / "out", "is_file": blocker}.get(problem, tmp_path / "new" / "out")
    expect = {"under_file": "is a file, not a folder", "is_file": "is a file, not a folder",
              "low_disk": "not enough free disk space", "read_only_fs": "read-only file system"}[problem]
    if problem == "low_disk":
        monkeypatch.setenv(MIN_FREE_ENV, str(10**12))
    if problem == "read_only_fs":
        def ro_mkdir(self, *a, **k):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        monkeypatch.setattr(Path, "mkdir", ro_mkdir)
    check_refused(command, out, expect, str(out))
    assert not (tmp_path / "new").exists(), "a folder was left behind"
    assert blocker.read_text() == "user data\n"


@pytest.mark.parametrize("command", ["score", "make-synthetic", "predict"])
def test_read_only_folder(command, tmp_path, check_refused, guarded):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: chmod does not make a folder read-only")
        check_refused(command, ro / "out", "permission denied", str(ro / "out"))
        check_refused(command, ro, "permission denied", str(ro))
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("command", COMMANDS)
def test_foreign_non_empty_folder_is_refused(command, tmp_path, check_refused, guarded):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("do not touch\n")
    check_refused(command, out, "not empty", "--overwrite", "thesis.txt")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


@pytest.mark.parametrize("command", ["predict", "evaluate", "score"])
@pytest.mark.parametrize("where", ["input", "inside_input", "sibling_masks", "dataset_root", "parent"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_inputs_are_never_written(command, where, overwrite, ds, preds, tmp_path, check_refused, guarded):
    """Even with --overwrite: not the input folders, their dataset, a folder inside or around them."""
    first_input = {"predict": ds / "images", "evaluate": ds, "score": preds}[command]
    out = {"input": first_input, "inside_input": first_input / "out", "sibling_masks": ds / "masks",
           "dataset_root": ds, "parent": tmp_path}[where]
    if command == "score" and where in ("sibling_masks", "dataset_root"):
        out = ds / "masks" if where == "dataset_root" else ds / "masks" / "scores"  # --gt and inside it
    extra = ("--overwrite",) if overwrite else ()
    check_refused(command, out, str(out), extra=extra)


def test_predict_into_the_mask_folder_of_its_input(ds, capsys, tree_hash, one_error_line, guarded):
    """The issue's example: `predict --input X/images --out X/masks`, also for a single image file."""
    for source in (ds / "images", next((ds / "images").iterdir())):
        before = tree_hash(ds)
        assert main(["predict", "--checkpoint", str(ds.parent / "not-a-run"), "--input", str(source),
                     "--out", str(ds / "masks"),
                     "--overwrite"]) == 2
        assert "dataset" in one_error_line(capsys.readouterr().err)
        assert tree_hash(ds) == before


def test_other_datasets_folders_are_protected(tmp_path, capsys, check_refused, tree_hash, one_error_line,
                                              guarded):
    """A dataset that is not an input: its image/mask folders stay off limits; make-synthetic too."""
    from sam2sod.data.synthetic import make_synthetic

    other = tmp_path / "other"
    make_synthetic(other, n=2, size=16, seed=0)  # made without the CLI: no marker, so a user dataset
    for out in (other / "masks", other / "images" / "sub"):
        check_refused("score", out, "image/mask folder", extra=("--overwrite",))
    before = tree_hash(other)
    assert main(["make-synthetic", str(other), "--n", "2", "--size", "16", "--overwrite"]) == 2
    assert "is a dataset" in one_error_line(capsys.readouterr().err)
    assert tree_hash(other) == before


def test_marker_reuse_and_other_commands_marker(ds, preds, tmp_path, capsys, tree_hash, one_error_line):
    out = tmp_path / "scores"
    args = argv("score", ds, preds, out)
    assert main(args) == 0 and read_marker(out) == "score"
    first = tree_hash(out)
    assert main(args) == 0, "a folder sam2sod made must be reusable without --overwrite"
    assert set(tree_hash(out)) == set(first)
    other = prepare_output_dir(tmp_path / "exported", overwrite=False, inputs=[], command="export")
    (other / "config.json").write_text("{}\n")
    assert main(argv("score", ds, preds, other)) == 2
    assert "sam2sod export" in one_error_line(capsys.readouterr().err)
    assert main(argv("score", ds, preds, other, "--overwrite")) == 0
    assert (other / "config.json").read_text() == "{}\n", "the other command's file beside the scores is kept"
    synth = tmp_path / "synth"
    assert main(["make-synthetic", str(synth), "--n", "2", "--size", "16"]) == 0
    capsys.readouterr()
    for extra in ((), ("--overwrite",)):  # a dataset, even one sam2sod made, is never another command's output
        assert main(argv("score", ds, preds, synth, *extra)) == 2
        assert "is a dataset" in one_error_line(capsys.readouterr().err)
    assert len(list((synth / "images").iterdir())) == 2


def test_overwrite_writes_beside_foreign_files(ds, preds, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("keep\n")
    assert main(argv("score", ds, preds, out, "--overwrite")) == 0
    assert (out / "thesis.txt").read_text() == "keep\n"
    assert (out / "metrics.json").is_file() and read_marker(out) == "score"


def test_make_synthetic_overwrite_removes_only_its_stale_pairs(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["make-synthetic", str(out), "--n", "5", "--size", "16"]) == 0
    (out / "images" / "holiday.jpg").write_bytes(b"user photo")
    (out / "notes.txt").write_text("mine\n")
    assert main(["make-synthetic", str(out), "--n", "3", "--size", "16"]) == 0, "own folder: reusable"
    assert "removed 4 stale files" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["synth_0000.png", "synth_0001.png",
                                                                 "synth_0002.png"]
    assert (out / "images" / "holiday.jpg").read_bytes() == b"user photo"
    assert (out / "notes.txt").read_text() == "mine\n"

    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    assert main(["make-synthetic", str(foreign), "--n", "2", "--size", "16"]) == 2
    capsys.readouterr()
    (foreign / "images").mkdir()
    (foreign / "images" / "synth_0007.jpg").write_bytes(b"old")
    assert main(["make-synthetic", str(foreign), "--n", "2", "--size", "16", "--overwrite"]) == 0
    assert sorted(p.name for p in (foreign / "images").iterdir()) == ["synth_0000.jpg", "synth_0001.jpg"]
    assert (foreign / "keep.txt").read_text() == "x" and read_marker(foreign) == "make-synthetic"


def test_train_refuses_old_history_and_points_to_resume(tmp_path, check_refused, guarded):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step\n1,4\n")
    line = check_refused("train", run, "metrics.csv", "no last.pt", extra=("--overwrite",))
    assert "append" in line
    (run / "last.pt").write_bytes(b"ckpt")
    check_refused("train", run, f"--resume {run}")
    assert (run / "metrics.csv").read_text() == "epoch,step\n1,4\n"


def test_prepare_output_dir_creates_marks_and_cleans(tmp_path):
    out = prepare_output_dir(tmp_path / "a" / "b", overwrite=False, inputs=[], command="predict")
    assert out == tmp_path / "a" / "b" and (out / MARKER).read_text().startswith("predict\n")
    stale = out / ".x.png.abcd1234.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    prepare_output_dir(out, overwrite=False, inputs=[], command="predict")
    assert not stale.exists()
    assert prepare_output_dir(tmp_path / "empty", overwrite=False, inputs=[], command="score").is_dir()


def test_ablation_started_before_markers_is_reusable(tmp_path):
    old = tmp_path / "grid"
    old.mkdir()
    (old / "ablation.csv").write_text("cell,S\n")
    (old / "method=lora").mkdir()
    prepare_output_dir(old, overwrite=False, inputs=[], command="ablate", legacy_files=("ablation.csv",))
    assert read_marker(old) == "ablate"
    with pytest.raises(SodError, match="written by `sam2sod ablate`"):
        prepare_output_dir(old, overwrite=False, inputs=[], command="score", legacy_files=("metrics.json",))
