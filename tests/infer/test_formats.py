"""Output formats (map / mask / alpha / overlay) and the `predict` options that write them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2sod.cli import main
from sam2sod.infer.formats import adaptive_threshold, contrast_colour, draw_overlay, to_mask, write_formats
from sam2sod.metrics.pair import prepare_pair

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _scene(colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((40, 60, 3), 90, np.uint8)
    img[10:30, 15:45] = colour
    sal = np.zeros((40, 60), np.uint8)
    sal[10:30, 15:45] = 230
    sal[0:3, 0:3] = 40
    return img, sal


def test_adaptive_mask_is_the_metrics_binarisation():
    rng = np.random.default_rng(0)
    for _ in range(5):
        sal = (rng.random((30, 40)) ** 3 * 200 + 20).astype(np.uint8)
        gt = ((rng.random((30, 40)) > 0.7) * 255).astype(np.uint8)
        mask = to_mask(sal)
        tp, fp = prepare_pair(sal, gt).adaptive_counts
        assert (tp, fp) == (int((mask & (gt > 128)).sum()), int((mask & (gt <= 128)).sum()))
    norm = (sal / 255.0 - sal.min() / 255.0) / ((int(sal.max()) - int(sal.min())) / 255.0)
    assert adaptive_threshold(sal) == pytest.approx(min(2 * norm.mean(), 1.0))
    assert np.array_equal(to_mask(sal, 0.5), sal / 255.0 >= 0.5)
    assert not to_mask(np.zeros((5, 5), np.uint8)).any(), "an all-zero map gives an empty mask"


@pytest.mark.parametrize("colour", [(250, 10, 10), (10, 240, 10), (20, 20, 250), (250, 250, 250)])
def test_overlay_colour_contrasts_with_the_object(colour):
    img, sal = _scene(colour)
    mask = to_mask(sal)
    col = contrast_colour(img, mask)
    assert np.abs(col.astype(int) - np.array(colour)).sum() > 250
    over = draw_overlay(img, mask)
    assert np.array_equal(over[10, 20], col), "the contour is drawn in the contrast colour"
    inside = over[20, 30].astype(int)
    assert not np.array_equal(inside, img[20, 30]) and not np.array_equal(inside, col), "semi-transparent fill"
    assert np.array_equal(over[35, 5], img[35, 5]), "background untouched"


def test_write_formats(tmp_path):
    img, sal = _scene((200, 30, 30))
    paths = write_formats(tmp_path, "a", sal, ["map", "mask", "alpha", "overlay"], img)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a.png", "mask/a.png", "alpha/a.png",
                                                                   "overlay/a.png"]
    assert np.array_equal(np.asarray(Image.open(paths[0])), sal)
    assert set(np.unique(np.asarray(Image.open(paths[1])))) <= {0, 255}
    rgba = Image.open(paths[2])
    assert rgba.mode == "RGBA" and np.array_equal(np.asarray(rgba)[..., 3], sal)
    assert Image.open(paths[3]).mode == "RGB"
    with pytest.raises(ValueError, match="needs the image"):
        write_formats(tmp_path, "b", sal, ["alpha"])


def test_predict_formats_and_prompts_cli(tiny_run, tmp_path, capsys):
    img = (np.random.default_rng(3).random((30, 45, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "x.jpg")
    out = tmp_path / "o"
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(tmp_path / "x.jpg"), "--out", str(out),
                 "--device", "cpu", "--format", "map", "--format", "mask", "--format", "alpha", "--format",
                 "overlay", "--threshold", "0.4", "--point", "10,10", "--box", "0,0,45,30", "--tta", "flip",
                 "--overlay"]) == 0
    sal = np.asarray(Image.open(out / "x.png"))
    assert sal.shape == (30, 45)
    assert np.array_equal(np.asarray(Image.open(out / "mask" / "x.png")) > 0, sal / 255.0 >= 0.4)
    assert Image.open(out / "alpha" / "x.png").mode == "RGBA"
    assert (out / "overlay" / "x.png").is_file() and (out / "overlay" / "x.jpg").is_file()
    assert "wrote 1 image as map, mask, alpha, overlay" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--point", "10"], "expected X,Y or X,Y,LABEL"),
    (["--point", "10,10,2"], "LABEL must be 1 (foreground) or 0 (background)"),
    (["--point", "100,10"], "outside the image"),
    (["--box", "1,2,3"], "expected X0,Y0,X1,Y1"),
    (["--box", "9,2,3,8"], "x0 < x1"),
    (["--threshold", "1.5"], "--threshold must be in [0, 1]"),
    (["--refine", "1", "--point", "3,3"], "cannot be combined"),
    (["--point", "3,3", "--folder"], "must be an image file"),
])
def test_predict_option_errors_come_first(extra, fragment, tiny_run, tmp_path, capsys):
    Image.fromarray(np.zeros((30, 45, 3), np.uint8)).save(tmp_path / "x.png")
    src = tmp_path if "--folder" in extra else tmp_path / "x.png"
    extra = [e for e in extra if e != "--folder"]
    out = tmp_path / "never"
    run = tmp_path / "no-such-run"
    run.mkdir()  # exists, so only the checks before the model is opened can answer
    assert main(["predict", "--checkpoint", str(run), "--input", str(src), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and "no-such-run" not in err
    assert not out.exists(), "options are checked before the output folder is made"
