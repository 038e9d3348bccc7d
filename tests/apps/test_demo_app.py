"""The demo's handlers without a browser (no Gradio needed): prompts, outputs, downloads, errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sam2sod.apps.demo import MODES, DemoSession, _App
from sam2sod.infer.predictor import Predictor
from sam2sod.outputs import read_marker

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_demo_handlers(point_model, two_squares, tmp_path):
    img, masks = two_squares(np.random.default_rng(3))
    app = _App(Predictor(point_model, 64), tmp_path / "dl")
    (tmp_path / "dl").mkdir()
    s, over, sal, cut, files, status = app.upload(img, None)
    assert status.startswith("prompt-free") and over.shape == img.shape and cut.shape == (64, 64, 4)
    ys, xs = np.nonzero(masks[1])
    s, over, sal2, cut, files, status = app.click(MODES[0], s, SimpleNamespace(index=[int(xs.mean()),
                                                                                      int(ys.mean())]))
    assert "1 point(s) (1 fg, 0 bg)" in status and not np.array_equal(sal, sal2)
    assert sal2[masks[1]].mean() > sal2[masks[0]].mean() + 100
    assert sorted(p.split("/")[-1] for p in files) == ["cutout.png", "mask.png", "overlay.png", "saliency.png"]
    assert np.array_equal(np.asarray(Image.open(files[0])), sal2)
    s, *_, status = app.click(MODES[2], s, SimpleNamespace(index=[5, 6]))
    assert "click the opposite corner" in status
    s, *_, status = app.click(MODES[2], s, SimpleNamespace(index=[40, 30]))
    assert "box (5, 6, 40, 30)" in status
    s, *_, status = app.clear(s)
    assert status.startswith("prompt-free") and s.points == [] and s.box is None
    assert app.click(MODES[0], DemoSession(), SimpleNamespace(index=[1, 1]))[-1] == "upload an image first"


def test_demo_folder_is_guarded(point_model, tmp_path):
    gr = pytest.importorskip("gradio")
    from sam2sod.apps.demo import build_demo

    demo = build_demo(Predictor(point_model, 64), tmp_path / "dl")
    assert isinstance(demo, gr.Blocks) and read_marker(tmp_path / "dl") == "demo"
