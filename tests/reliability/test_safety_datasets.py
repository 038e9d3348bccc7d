"""Issue 22: a dataset root and its image/mask folders are never outputs, whoever made them and whatever
marker they hold; --overwrite never lifts that (make-synthetic may only rewrite a dataset it made)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.cli import main
from sam2sod.outputs import MARKER, is_dataset_root, write_marker

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture()
def ecssd(tmp_path: Path) -> Path:
    """A user dataset in ECSSD's own layout: Imgs/*.jpg + GT/*.png."""
    root = tmp_path / "ECSSD"
    (root / "Imgs").mkdir(parents=True)
    (root / "GT").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / "Imgs" / f"{i:04d}.jpg")
        Image.fromarray((rng.random((24, 24)) > 0.5).astype(np.uint8) * 255).save(root / "GT" / f"{i:04d}.png")
    return root


def refused(argv: list[str], capsys, one_error_line, tree_hash, folder: Path, expect: str = "dataset") -> str:
    before = tree_hash(folder)
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expect in line, line
    assert tree_hash(folder) == before, "a dataset file changed"
    return line


def test_score_into_a_dataset_root_is_refused_even_with_overwrite(ecssd, preds, capsys, one_error_line,
                                                                  tree_hash):
    assert is_dataset_root(ecssd)
    for extra in ((), ("--overwrite",)):
        line = refused(["score", "--pred", str(preds), "--gt", str(preds), "--out", str(ecssd), "--workers", "1",
                        "--no-progress", *extra], capsys, one_error_line, tree_hash, ecssd)
        assert "is a dataset" in line
    assert not (ecssd / MARKER).exists()


def test_a_marker_never_lifts_the_protection_of_ground_truth(ecssd, ds, capsys, one_error_line, tree_hash):
    """The issue's two steps: a marker planted in ECSSD/ (as an older score did), then predict into ECSSD/GT."""
    write_marker(ecssd, "score")
    (ds.parent / "nope").mkdir(exist_ok=True)  # exists, so only the checks before the model is opened can answer
    for out in (ecssd / "GT", ecssd / "Imgs", ecssd / "GT" / "sub"):
        refused(["predict", "--checkpoint", str(ds.parent / "nope"), "--input", str(ds / "images"),
                 "--out", str(out), "--overwrite"], capsys, one_error_line, tree_hash, ecssd)


def test_masks_of_a_make_synthetic_dataset_are_protected(tmp_path, ds, capsys, one_error_line, tree_hash):
    synth = tmp_path / "synth"
    assert main(["make-synthetic", str(synth), "--n", "3", "--size", "16"]) == 0
    capsys.readouterr()
    (ds.parent / "nope").mkdir(exist_ok=True)  # exists, so only the checks before the model is opened can answer
    for out in (synth / "masks", synth / "images", synth):
        refused(["predict", "--checkpoint", str(ds.parent / "nope"), "--input", str(ds / "images"),
                 "--out", str(out), "--overwrite"], capsys, one_error_line, tree_hash, synth)


def test_make_synthetic_never_writes_into_a_user_dataset(ecssd, capsys, one_error_line, tree_hash):
    for extra in ((), ("--overwrite",)):
        refused(["make-synthetic", str(ecssd), "--n", "2", "--size", "16", *extra], capsys, one_error_line,
                tree_hash, ecssd)
    assert sorted(p.name for p in ecssd.iterdir()) == ["GT", "Imgs"]


def test_make_synthetic_rewrites_only_its_own_dataset(tmp_path, capsys, one_error_line, tree_hash):
    own = tmp_path / "own"
    assert main(["make-synthetic", str(own), "--n", "3", "--size", "16"]) == 0
    assert main(["make-synthetic", str(own), "--n", "2", "--size", "16"]) == 0, "its own dataset: reusable"
    assert main(["make-synthetic", str(own), "--n", "2", "--size", "16", "--overwrite"]) == 0
    assert sorted(p.name for p in (own / "masks").iterdir()) == ["synth_0000.png", "synth_0001.png"]
    capsys.readouterr()
    write_marker(own, "score")  # another command's marker: not a dataset make-synthetic made
    refused(["make-synthetic", str(own), "--n", "2", "--size", "16", "--overwrite"], capsys, one_error_line,
            tree_hash, own)


def test_a_new_folder_inside_a_dataset_root_is_allowed(ecssd, preds, capsys):
    """Only the root itself and its image/mask folders are off limits: ECSSD/scores is a fine output."""
    out = ecssd / "scores"
    assert main(["score", "--pred", str(preds), "--gt", str(preds), "--out", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    assert (out / "metrics.json").is_file()
    assert sorted(p.name for p in (ecssd / "GT").iterdir()) == ["0000.png", "0001.png", "0002.png"]
