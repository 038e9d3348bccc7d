"""`sam2sod predict --video`, `evaluate --video`, `score --video` on synthetic videos with the tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _pngs(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: Image.open(p).size for p in sorted(folder.glob("*.png"))}


def test_predict_video_frames_folder_k1_equals_image_predict(tiny_run, frames_dir, tmp_path, capsys) -> None:
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(frames_dir), "--out",
                 str(tmp_path / "img"), "--no-progress"]) == 0
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(frames_dir), "--out",
                 str(tmp_path / "vid"), "--video", "--keyframe-every", "1", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "wrote 5 saliency maps of 1 sequence" in out.out and "frame-wise" in out.err
    assert _pngs(tmp_path / "vid" / "clip") == {f"{t:05d}.png": (56, 40) for t in range(5)}
    for t in range(5):
        a = np.asarray(Image.open(tmp_path / "vid" / "clip" / f"{t:05d}.png"))
        b = np.asarray(Image.open(tmp_path / "img" / f"{t:05d}.png"))
        np.testing.assert_array_equal(a, b)


def test_predict_video_file_and_overlay_video(tiny_run, mp4, tmp_path, capsys) -> None:
    av = pytest.importorskip("av")
    out = tmp_path / "o"
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(mp4), "--out", str(out), "--video",
                 "--keyframe-every", "2", "--format", "overlay-video", "--no-progress"]) == 0
    assert "track 2" in capsys.readouterr().out
    assert _pngs(out / "tiny") == {f"{t:05d}.png": (64, 48) for t in range(4)}
    with av.open(str(out / "tiny.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
    assert not [p for p in out.rglob("*.tmp")]


def test_predict_video_dataset_of_two_sequences(tiny_run, video_ds, tmp_path) -> None:
    out = tmp_path / "o"
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(video_ds), "--out", str(out), "--video",
                 "--keyframe-every", "3", "--redetect-score", "none", "--check-every", "2", "--check-iou", "0.3",
                 "--no-progress"]) == 0
    assert _pngs(out / "seqA") == {f"{t:05d}.png": (56, 40) for t in range(5)}
    assert _pngs(out / "seqB") == {f"{t:05d}.png": (56, 40) for t in range(4)}
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["seqA", "seqB"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--keyframe-every", "-1"], "--keyframe-every must be an integer >= 0"),
    (["--check-iou", "2"], "--check-iou must be in [0, 1]"),
    (["--point", "1,1"], "--point does not apply with --video"),
    (["--engine", "onnxruntime"], "--engine does not apply with --video"),
    (["--resize", "pad"], "--resize does not apply with --video"),
    (["--tiles", "auto"], "--tiles does not apply with --video"),
    (["--format", "mask"], "--format with --video must be one of map, overlay-video"),
])
def test_predict_video_bad_options_are_one_line_without_output(tiny_run, frames_dir, tmp_path, capsys,
                                                               one_error_line, extra, message) -> None:
    out = tmp_path / "o"
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(frames_dir), "--out", str(out),
                 "--video", *extra]) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_predict_video_bad_inputs_are_one_line_without_output(tiny_run, frames_dir, tmp_path, capsys,
                                                              one_error_line, tree_hash) -> None:
    before = tree_hash(frames_dir)
    cases = [
        (["--input", str(tmp_path / "missing")], "does not exist"),
        (["--input", str(frames_dir), "--out", str(frames_dir / "out")], "never writes into its inputs"),
    ]
    for args, message in cases:
        argv = ["predict", "--checkpoint", str(tiny_run), "--out", str(tmp_path / "o"), "--video", *args]
        assert main(argv) == 2
        assert message in one_error_line(capsys.readouterr().err)
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(frames_dir), "--out", str(tmp_path / "o"),
                 "--keyframe-every", "3"]) == 2
    assert "--keyframe-every needs --video" in one_error_line(capsys.readouterr().err)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(tmp_path / "bad"), "--out",
                 str(tmp_path / "o"), "--video"]) == 2
    assert "frame number" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists() and not (frames_dir / "out").exists()
    assert tree_hash(frames_dir) == before


def test_evaluate_video_writes_the_three_outputs_and_states_the_skip_rule(tiny_run, video_ds, tmp_path,
                                                                         capsys) -> None:
    out = tmp_path / "ev"
    assert main(["evaluate", "--checkpoint", str(tiny_run), "--data", f"SYN={video_ds}", "--out", str(out),
                 "--video", "--keyframe-every", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "--skip-frames first-last (5 of 9 annotated frames scored, 4 skipped)" in printed
    assert "J&F" in printed and "flicker" in printed
    assert _pngs(out / "SYN" / "pred" / "seqB") == {f"{t:05d}.png": (56, 40) for t in range(4)}
    metrics = json.loads((out / "SYN" / "metrics.json").read_text())
    assert metrics["skip_frames"] == "first-last" and metrics["counts"]["frames_scored"] == 5
    rows = (out / "SYN" / "sequences.csv").read_text().splitlines()
    assert rows[0] == "sequence,metric,value,frames_scored,skip_frames" and rows[1].startswith("seqA,Smeasure,")
    frames = (out / "SYN" / "frames.csv").read_text().splitlines()
    assert len(frames) == 1 + 5 and frames[1].startswith("seqA,00001,")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skip_frames"] == "first-last" and "keyframes every 2 frames" in summary["video"]


def test_score_video_skip_rule_none_and_errors(video_ds, tmp_path, capsys, one_error_line) -> None:
    pred = tmp_path / "pred"
    for seq in ("seqA", "seqB"):  # the ground truth itself as the prediction: perfect scores
        (pred / seq).mkdir(parents=True)
        for mask in sorted((video_ds / seq / "masks").glob("*.png")):
            (pred / seq / mask.name).write_bytes(mask.read_bytes())
    out = tmp_path / "sc"
    assert main(["score", "--video", "--pred", str(pred), "--gt", str(video_ds), "--out", str(out),
                 "--skip-frames", "none", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "--skip-frames none (9 of 9 annotated frames scored, 0 skipped)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skip_frames"] == "none" and metrics["metrics"]["JF"] == pytest.approx(1.0)
    assert {"sequences.csv", "frames.csv", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert main(["score", "--video", "--pred", str(pred), "--gt", str(video_ds), "--skip-frames", "last"]) == 2
    assert "--skip-frames must be one of first-last, first, none" in one_error_line(capsys.readouterr().err)
    assert main(["score", "--pred", str(pred), "--gt", str(video_ds), "--skip-frames", "none"]) == 2
    assert "--skip-frames needs --video" in one_error_line(capsys.readouterr().err)
    (pred / "seqB" / "00002.png").unlink()
    assert main(["score", "--video", "--pred", str(pred), "--gt", str(video_ds), "--out", str(tmp_path / "o2")]) == 2
    assert "have no prediction" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o2").exists()
