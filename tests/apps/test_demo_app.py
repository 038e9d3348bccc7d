"""The demo's handlers without a browser (no Gradio needed): state, prompts, outputs, downloads, errors."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sam2sod.apps import demo as demo_mod
from sam2sod.apps.demo import MODES, NO_IMAGE, DemoSession, _App, check_address, load_upload
from sam2sod.errors import SodError
from sam2sod.infer.predictor import Predictor
from sam2sod.outputs import read_marker

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _app(point_model, tmp_path) -> _App:
    (tmp_path / "dl").mkdir()
    return _App(Predictor(point_model, 64), tmp_path / "dl")


def _png(img: np.ndarray, path) -> str:
    Image.fromarray(img).save(path)
    return str(path)


def test_demo_handlers(point_model, two_squares, tmp_path):
    img, masks = two_squares(np.random.default_rng(3))
    app = _app(point_model, tmp_path)
    s, view, over, sal, cut, files, status = app.upload(_png(img, tmp_path / "My Photo.png"), None)
    assert status.startswith("prompt-free") and over.shape == img.shape and cut.shape == (64, 64, 4)
    assert np.array_equal(view, img)
    ys, xs = np.nonzero(masks[1])
    s, over, sal2, cut, files, status = app.click(MODES[0], s, SimpleNamespace(index=[int(xs.mean()),
                                                                                      int(ys.mean())]))
    assert "1 point(s) (1 fg, 0 bg)" in status and not np.array_equal(sal, sal2)
    assert sal2[masks[1]].mean() > sal2[masks[0]].mean() + 100
    names = sorted(p.split("/")[-1] for p in files)
    assert names == ["My_Photo_cutout.png", "My_Photo_mask.png", "My_Photo_overlay.png", "My_Photo_saliency.png"]
    assert np.array_equal(np.asarray(Image.open(files[0])), sal2)
    s, *_, status = app.click(MODES[2], s, SimpleNamespace(index=[5, 6]))
    assert "click the opposite corner" in status
    s, *_, status = app.click(MODES[2], s, SimpleNamespace(index=[40, 30]))
    assert "box (5, 6, 40, 30)" in status
    s, *_, status = app.clear(s)
    assert status.startswith("prompt-free") and s.points == [] and s.box is None
    assert app.click(MODES[0], DemoSession(), SimpleNamespace(index=[1, 1]))[-1] == NO_IMAGE


def test_new_upload_resets_prompts_and_embedding(point_model, two_squares, tmp_path):
    a, _ = two_squares(np.random.default_rng(3))
    b, _ = two_squares(np.random.default_rng(8))
    app = _app(point_model, tmp_path)
    s, *_ = app.upload(_png(a, tmp_path / "a.png"), None)
    s, *_ = app.click(MODES[0], s, SimpleNamespace(index=[10, 10]))
    key_a = s.key
    s, view, over, sal, cut, files, status = app.upload(_png(b, tmp_path / "b.png"), s)
    assert status.startswith("prompt-free") and s.points == [] and s.key != key_a
    fresh = Predictor(app.predictor.model, 64)
    fresh.set_image(b)
    assert np.array_equal(sal, fresh.predict().to_uint8()), "the map comes from the new image's embedding"
    assert all(p.split("/")[-1].startswith("b_") for p in files)


@pytest.mark.parametrize("content", [b"this is not an image\n", "truncated"])
def test_failed_upload_clears_outputs_and_refuses_clicks(point_model, two_squares, tmp_path, content):
    img, _ = two_squares(np.random.default_rng(3))
    app = _app(point_model, tmp_path)
    s, *_ = app.upload(_png(img, tmp_path / "good.png"), None)
    bad = tmp_path / ("bad.png" if content != "truncated" else "bad.jpg")
    if content == "truncated":
        Image.fromarray(img).save(bad, quality=95)
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        bad.write_bytes(content)
    s, view, over, sal, cut, files, status = app.upload(str(bad), s)
    assert (view, over, sal, cut, files) == (None,) * 5 and s.image is None
    assert status.startswith("error: this file is not an image we can read: " + bad.name), status
    assert "\n" not in status and str(tmp_path) not in status
    s, over, sal, cut, files, status = app.click(MODES[0], s, SimpleNamespace(index=[10, 10]))
    assert (over, sal, cut, files) == (None,) * 4 and status == NO_IMAGE and s.points == []


def test_removed_image_clears_outputs_and_refuses_clicks(point_model, two_squares, tmp_path):
    img, _ = two_squares(np.random.default_rng(3))
    app = _app(point_model, tmp_path)
    s, *_ = app.upload(_png(img, tmp_path / "good.png"), None)
    s, *outs, status = app.remove(s)
    assert outs == [None] * 5 and "upload an image" in status and s.image is None
    assert app.click(MODES[0], s, SimpleNamespace(index=[3, 3]))[-1] == NO_IMAGE
    assert app.clear(s)[-1] == NO_IMAGE


def test_upload_size_limits(tmp_path, monkeypatch):
    big = np.zeros((300, 400, 3), np.uint8)
    big[100:200, 150:250] = 200
    path = _png(big, tmp_path / "big.png")
    monkeypatch.setattr(demo_mod, "DISPLAY_PIXELS", 30_000)
    arr, note = load_upload(path)
    assert arr.shape[0] * arr.shape[1] <= 30_000 and abs(arr.shape[1] / arr.shape[0] - 4 / 3) < 0.02
    assert note == f"downscaled from 400x300 to {arr.shape[1]}x{arr.shape[0]}"
    monkeypatch.setattr(demo_mod, "MAX_PIXELS", 100_000)
    with pytest.raises(SodError, match=r"big.png is 400x300 \(0.1 megapixels\): the demo takes images up to"):
        load_upload(path)


def test_address_errors_are_one_line():
    with pytest.raises(SodError, match="--host '999.1.1.1' is not"):
        check_address("999.1.1.1", 7860)
    with pytest.raises(SodError, match="--port must be an integer in 1..65535"):
        check_address("127.0.0.1", 70000)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SodError, match=f"port {port} is in use"):
            check_address("127.0.0.1", port)


def test_demo_folder_is_guarded(point_model, tmp_path):
    gr = pytest.importorskip("gradio")
    from sam2sod.apps.demo import build_demo

    demo = build_demo(Predictor(point_model, 64), tmp_path / "dl")
    assert isinstance(demo, gr.Blocks) and read_marker(tmp_path / "dl") == "demo"


def test_demo_command_says_host_and_port_errors_in_one_line(tmp_path, capsys):
    pytest.importorskip("gradio")
    from sam2sod.cli import main

    (tmp_path / "no_run").mkdir()  # exists, so only the checks before the model is opened can answer
    assert main(["demo", "--checkpoint", str(tmp_path / "no_run"), "--host", "999.1.1.1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --host '999.1.1.1' is not a valid host name or IP address" and "launch()" not in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--checkpoint", str(tmp_path / "no_run"), "--port", str(port)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: port {port} is in use on 127.0.0.1")
