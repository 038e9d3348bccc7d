"""Zero-shot SAM2 through the commands and `Predictor`: an official name (a random-init official-format file in
the weights cache) evaluated, predicted and benchmarked in each mode, labelled "zero-shot SAM2 (MODE)" in every
output; --zero-shot / --image-size / --amg checked before any output folder exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic

pytestmark = [
    pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]
LOOSE = ["--amg", "points_per_side=4", "--amg", "pred_iou_thresh=0", "--amg", "stability_score_thresh=0"]


@pytest.fixture
def cache(sam21_tiny_ckpt, tmp_path, monkeypatch) -> Path:
    """A weights cache holding a random-init file under the official name sam2.1_hiera_tiny."""
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(sam21_tiny_ckpt[0], folder / "sam2.1_hiera_tiny.pt")
    monkeypatch.setenv("SAM2SOD_WEIGHTS_DIR", str(folder))
    return folder


@pytest.fixture
def data(tmp_path) -> Path:
    make_synthetic(tmp_path / "ds", n=3, size=40, seed=2)
    return tmp_path / "ds"


@pytest.mark.parametrize(("mode", "extra"), [("prompt-free", []), ("amg", LOOSE)])
def test_evaluate_an_official_name_says_zero_shot_everywhere(cache, data, tmp_path, capsys, mode, extra):
    out = tmp_path / "eval"
    code = main(["evaluate", "--checkpoint", "sam2.1_hiera_tiny", "--data", f"toy={data}", "--out", str(out),
                 "--zero-shot", mode, "--image-size", "64", "--device", "cpu", "--no-progress", *extra])
    assert code == 0
    label = f"zero-shot SAM2 ({mode})"
    printed = capsys.readouterr().out
    assert label in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == label and set(summary["datasets"]) == {"toy"}
    metrics = json.loads((out / "toy" / "metrics.json").read_text())
    assert label in json.dumps(metrics)
    maps = sorted((out / "toy" / "pred").glob("*.png"))
    assert len(maps) == 3 and Image.open(maps[0]).size == (40, 40)


def test_an_official_name_without_zero_shot_is_prompt_free(cache, data, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", "sam2.1_hiera_tiny", "--input", str(data / "images"), "--out", str(out),
                 "--image-size", "64", "--device", "cpu", "--no-progress"]) == 0
    assert "with zero-shot SAM2 (prompt-free)" in capsys.readouterr().out
    assert len(list(out.glob("*.png"))) == 3


def test_predict_centre_point_and_predictor_agree(cache, data, tmp_path, capsys):
    from sam2sod import Predictor
    from sam2sod.runs.zero_shot_options import ZeroShotOptions

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", "sam2.1_hiera_tiny", "--input", str(data / "images"), "--out", str(out),
                 "--zero-shot", "centre-point", "--image-size", "64", "--device", "cpu", "--no-progress"]) == 0
    assert "with zero-shot SAM2 (centre-point)" in capsys.readouterr().out
    image = sorted((data / "images").iterdir())[0]
    predictor = Predictor.from_pretrained("sam2.1_hiera_tiny", "cpu", zero_shot=ZeroShotOptions("centre-point", 64))
    assert predictor.model.label == "zero-shot SAM2 (centre-point)"
    got = predictor.predict_batch([image])[0]
    written = np.asarray(Image.open(out / f"{image.stem}.png"))
    assert got.shape == written.shape == (40, 40)
    assert np.abs(np.round(got * 255).astype(int) - written.astype(int)).max() <= 1
    free = Predictor.from_pretrained("sam2.1_hiera_tiny", "cpu", zero_shot=ZeroShotOptions("prompt-free", 64))
    assert not np.allclose(free.predict_batch([image])[0], got)


def test_benchmark_labels_a_zero_shot_row(cache, data, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--model", "sam2=sam2.1_hiera_tiny", "--data", f"toy={data}", "--out", str(out),
                 "--image-size", "64", "--device", "cpu", "--n-resamples", "10", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    table = (out / "table.md").read_text()
    assert "| Method | Training |" in table and "| sam2 | zero-shot |" in table
    assert "zero-shot, no fine-tuning: sam2 = zero-shot SAM2 (prompt-free)" in table
    assert "zero-shot" in printed
    done = json.loads((out / "pred" / "sam2" / "toy" / "done.json").read_text())
    assert done["zero_shot"]["model"] == "zero-shot SAM2 (prompt-free)" and done["zero_shot"]["image_size"] == 64


@pytest.mark.parametrize(("flags", "message"), [
    (["--zero-shot", "grid"], "--zero-shot must be one of prompt-free, centre-point, amg, got 'grid'"),
    (["--zero-shot", "amg", "--amg", "points_per_side=0"],
     r"AMG option points_per_side must be an integer in [1, 128], got 0"),
    (["--zero-shot", "amg", "--amg", "crop_n_layers=1"], "unknown AMG option(s) crop_n_layers"),
    (["--zero-shot", "amg", "--amg", "points_per_side"], "--amg takes NAME=VALUE"),
    (["--zero-shot", "prompt-free", "--amg", "points_per_side=8"], "applies to --zero-shot amg only"),
    (["--image-size", "100"], "--image-size must be a positive multiple of 32"),
])
def test_bad_zero_shot_options_fail_before_any_output(cache, data, tmp_path, capsys, one_error_line, flags, message):
    for command in (["predict", "--input", str(data / "images")], ["evaluate", "--data", str(data)]):
        out = tmp_path / "out"
        assert main([command[0], "--checkpoint", "sam2.1_hiera_tiny", *command[1:], "--out", str(out), *flags]) == 2
        assert message in one_error_line(capsys.readouterr().err)
        assert not out.exists()


def test_zero_shot_with_a_trained_model_is_one_line(data, tmp_path, capsys, one_error_line):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"not read")  # refused before the file is read
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "images"), "--out", str(out),
                 "--zero-shot", "amg"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "apply to an official SAM2 name or weights file" in line and "a trained model" in line
    assert not out.exists()
