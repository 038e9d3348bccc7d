"""`predict` / `evaluate` with bad inputs: unreadable images are skipped (exit 3) or stop with --strict (exit 2),
bad masks and bad counts are refused before the model is built, --recursive mirrors the tree, and the
input files never change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.cli import EXIT_SKIPPED, main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NO_CKPT = "no-such-checkpoint"  # checks that pass before the checkpoint is read never mention it


def spoil(path: Path, how: str) -> Path:
    """Make `path` unreadable: 'garbage' (no image header), 'empty' (0 bytes) or 'truncated' (header ok)."""
    data = path.read_bytes()
    path.write_bytes({"garbage": b"this is not an image", "empty": b"",
                      "truncated": data[: len(data) // 2]}[how])
    return path


def first(folder: Path, k: int = 0) -> Path:
    return sorted(p for p in folder.iterdir() if p.is_file())[k]


@pytest.mark.parametrize("how", ["garbage", "empty"])
@pytest.mark.parametrize(("command", "which"), [("predict", "image"), ("evaluate", "image"), ("evaluate", "mask"),
                                                ("score", "image"), ("score", "mask")])
def test_bad_file_is_one_line_before_the_model(command, which, how, ds, preds, ckpt, tmp_path, capsys,
                                               one_error_line, tree_hash, monkeypatch):
    from sam2sod.runs.loader import ModelSource

    def no_build(*_a, **_k):
        raise AssertionError("the model was built before the inputs were checked")

    monkeypatch.setattr(ModelSource, "build", no_build)
    if command == "score" and which == "image":
        victim = spoil(first(preds, 2), how)  # score's "images" are the predictions
    else:
        victim = spoil(first(ds / ("images" if which == "image" else "masks"), 2), how)
    before = tree_hash(tmp_path)
    out = tmp_path / "out"
    argv = {"predict": ["predict", "--checkpoint", str(ckpt), "--input", str(ds / "images"), "--out", str(out),
                        "--strict"],
            "evaluate": ["evaluate", "--checkpoint", str(ckpt), "--data", str(ds), "--out", str(out)],
            "score": ["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out), "--workers",
                      "1", "--no-progress"]}[command]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(victim) in line and str(ckpt) not in line
    if command == "predict":
        assert "--strict" in line
    assert tree_hash(tmp_path) == before
    if command != "score":
        assert not out.exists(), "inputs are checked before the output folder is made"


@pytest.mark.parametrize("argv", [
    ["predict", "--input", "{ds}/images", "--batch-size", "0"],
    ["evaluate", "--data", "{ds}", "--batch-size", "0"],
    ["evaluate", "--data", "{ds}", "--workers", "0"],
])
def test_bad_counts_are_refused_first(argv, ds, tmp_path, capsys, one_error_line):
    argv = [a.format(ds=ds) for a in argv] + ["--checkpoint", NO_CKPT, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert ("--batch-size" in line or "--workers" in line) and "must be >= 1" in line
    assert not (tmp_path / "o").exists()


def test_predict_skips_unreadable_images_and_exits_3(ckpt, ds, tmp_path, capsys, one_error_line, tree_hash):
    bad = [spoil(first(ds / "images", 1), "garbage"), spoil(first(ds / "images", 3), "empty"),
           spoil(first(ds / "images", 5), "truncated")]
    before = tree_hash(ds)
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(ds / "images"), "--out", str(out),
                 "--device", "cpu", "--batch-size", "4"]) == EXIT_SKIPPED
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.split("\n") if line.startswith("skipped: ")]
    assert len(skipped) == 3 and all(any(str(b) in s for b in bad) for s in skipped), captured.err
    summary = one_error_line(captured.err)
    assert "skipped 3 of 8 images" in summary and "--strict" in summary
    written = sorted(p.stem for p in out.glob("*.png"))
    assert written == sorted(p.stem for p in (ds / "images").iterdir() if p not in bad)
    assert "wrote 5 saliency maps" in captured.out
    assert tree_hash(ds) == before

    # --strict: a file that only fails when decoded stops the run, on its own line after the progress bar
    shutil.rmtree(out)
    for p in bad[:2]:
        p.unlink()
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(ds / "images"), "--out", str(out),
                 "--device", "cpu", "--strict"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad[2]) in line and "--strict" in line
    assert tree_hash(ds) == {k: v for k, v in before.items() if not any(k.endswith(b.name) for b in bad[:2])}


def test_predict_recursive_mirrors_the_tree(ckpt, tmp_path, capsys):
    src = tmp_path / "photos"
    (src / "trip" / "day1").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for rel in ("a.jpg", "trip/b.png", "trip/day1/c.jpg"):
        Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(src / rel)
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(src), "--out", str(tmp_path / "flat"),
                 "--device", "cpu"]) == 0
    warnings = [line for line in capsys.readouterr().err.split("\n") if line.startswith("warning: ")]
    assert len(warnings) == 1 and "2 image files in sub-folders" in warnings[0] and "--recursive" in warnings[0]
    assert sorted(p.name for p in (tmp_path / "flat").glob("*.png")) == ["a.png"]

    out = tmp_path / "tree"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(src), "--out", str(out), "--device", "cpu",
                 "--recursive", "--overlay"]) == 0
    for rel in ("a", "trip/b", "trip/day1/c"):
        with Image.open(out / f"{rel}.png") as im:
            assert im.size == (40, 24)
        assert (out / "overlay" / f"{rel}.jpg").is_file()


def test_evaluate_recursive_and_flat(ckpt, ds, tmp_path, capsys):
    for sub in ("images", "masks"):
        last = first(ds / sub, 7)
        (ds / sub / "extra").mkdir()
        last.rename(ds / sub / "extra" / last.name)
    name = last.stem
    out = tmp_path / "ev"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(ds), "--out", str(out), "--device", "cpu",
                 "--workers", "1"]) == 0
    warnings = [line for line in capsys.readouterr().err.split("\n") if line.startswith("warning: 1 ")]
    assert len(warnings) == 2
    assert len(list((out / "ds" / "pred").glob("*.png"))) == 7
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(ds), "--out", str(out), "--device", "cpu",
                 "--workers", "1", "--recursive"]) == 0, "its own output folder is reusable"
    assert (out / "ds" / "pred" / "extra" / f"{name}.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["datasets"]["ds"]["Smeasure"] <= 1.0


@pytest.mark.parametrize("n", [5, 9])
def test_quickstart_too_few_pairs(n, tmp_path, capsys, one_error_line):
    assert main(["quickstart", "--out", str(tmp_path / "q"), "--n", str(n)]) == 2
    assert "--n >= 10" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "q").exists()


def test_quickstart_split_follows_n():
    from sam2sod.apps.quickstart import split_counts

    assert split_counts(120) == (100, 20)
    assert split_counts(30) == (25, 5)
    assert split_counts(10) == (8, 2)


def test_quickstart_n30_trains_on_its_own_split(tmp_path, monkeypatch, capsys):
    """`quickstart --n 30` used to fail on the config's fixed 100-image train count."""
    import sam2sod.apps.quickstart as qs
    from sam2sod.errors import SodError
    from sam2sod.outputs import read_marker

    seen = []

    def capture(name, overrides):
        seen.extend(overrides)
        raise SodError("stop here")

    monkeypatch.setattr(qs, "load_config", capture)
    out = tmp_path / "q"
    assert main(["quickstart", "--out", str(out), "--n", "30", "--size", "16"]) == 2
    assert "data.train_count=25" in seen and read_marker(out) == "quickstart"
    assert len(list((out / "synthetic" / "masks").iterdir())) == 30
    assert main(["quickstart", "--out", str(out), "--n", "12", "--size", "16"]) == 2, "its own folder: reusable"
    assert len(list((out / "synthetic" / "masks").iterdir())) == 12, "stale pairs of the larger run removed"
