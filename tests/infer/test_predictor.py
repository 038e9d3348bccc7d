"""`sam2sod.Predictor`: cached embedding, equality with the CLI, prompts where expected, clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2sod.cli import main
from sam2sod.errors import SodError
from sam2sod.infer.predictor import Predictor, make_prompt_batch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _image(h: int = 40, w: int = 57, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def predictor(tiny_run: Path) -> Predictor:
    return Predictor.from_pretrained(tiny_run, device="cpu")


def test_second_predict_does_not_run_the_encoder(predictor):
    calls = []
    hook = predictor.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        predictor.set_image(_image())
        assert len(calls) == 1
        first = predictor.predict()
        predictor.predict(points=[[10, 20]], labels=[1])
        predictor.predict(box=[2, 3, 30, 35], mask_input=first.low_res_logits)
        predictor.predict(refine=2)
        assert len(calls) == 1, "re-prompting must reuse the cached embedding"
        predictor.predict(tta="flip")
        predictor.predict(tta="flip", points=[[5, 5]])
        assert len(calls) == 2, "the mirrored embedding is computed once, then cached"
        predictor.set_image(_image(seed=1))
        assert len(calls) == 3
    finally:
        hook.remove()


def test_outputs_equal_the_cli(predictor, tiny_run, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    arrays = [_image(40, 57, 0), _image(64, 30, 1), _image(33, 33, 2)]
    for i, arr in enumerate(arrays):
        Image.fromarray(arr).save(imgs / f"im{i}.png")
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(imgs), "--out", str(tmp_path / "cli"),
                 "--device", "cpu", "--batch-size", "3"]) == 0
    cli = [np.asarray(Image.open(tmp_path / "cli" / f"im{i}.png")) for i in range(3)]
    for arr, ref in zip(arrays, cli, strict=True):  # one image at a time
        predictor.set_image(arr)
        assert np.array_equal(predictor.predict().to_uint8(), ref)
    batch = predictor.predict_batch([imgs / f"im{i}.png" for i in range(3)], batch_size=3)
    for sal, ref in zip(batch, cli, strict=True):
        assert sal.dtype == np.float32 and sal.shape == ref.shape
        assert np.array_equal(np.clip(np.round(sal * np.float32(255)), 0, 255).astype(np.uint8), ref)
    # prompted: the CLI's --point/--box go through the same mapping
    out = tmp_path / "cli_prompt"
    assert main(["predict", "--checkpoint", str(tiny_run), "--input", str(imgs / "im0.png"), "--out", str(out),
                 "--device", "cpu", "--point", "12,30", "--point", "40,5,0", "--box", "3,4,50,38"]) == 0
    predictor.set_image(imgs / "im0.png")
    pred = predictor.predict(points=[[12, 30], [40, 5]], labels=[1, 0], box=[3, 4, 50, 38])
    assert np.array_equal(pred.to_uint8(), np.asarray(Image.open(out / "im0.png")))
    assert not np.array_equal(pred.to_uint8(), cli[0])


def test_point_prompt_changes_the_map_where_expected(point_model, two_squares):
    predictor = Predictor(point_model, 64)
    rng = np.random.default_rng(7)
    for _ in range(3):
        img, masks = two_squares(rng)
        big = np.asarray(Image.fromarray(img).resize((96, 80), Image.NEAREST))  # not square, not model size
        big_masks = [np.asarray(Image.fromarray(m).resize((96, 80), Image.NEAREST)) for m in masks]
        predictor.set_image(big)
        free = predictor.predict().saliency
        for k, m in enumerate(big_masks):
            ys, xs = np.nonzero(m)
            pred = predictor.predict(points=[[xs.mean(), ys.mean()]], labels=[1])
            other = big_masks[1 - k]
            assert pred.saliency[m].mean() > 0.6, "the clicked square is salient"
            assert pred.saliency[m].mean() > pred.saliency[other].mean() + 0.4, "the other square is not"
            assert pred.saliency[m].mean() > free[m].mean() + 0.1
            assert pred.low_res_logits.shape == (1, 16, 16) and isinstance(pred.iou, float)


def test_multimask_returns_the_best_mask(point_model, two_squares):
    predictor = Predictor(point_model, 64, multimask=True)
    predictor.set_image(two_squares(np.random.default_rng(2))[0])
    for kwargs in ({}, {"tta": "flip"}, {"refine": 1}, {"points": [[20, 30]], "tta": "flip"}):
        pred = predictor.predict(**kwargs)
        assert pred.low_res_logits.shape == (1, 16, 16) and isinstance(pred.iou, float), kwargs
    single = predictor.predict(multimask=False)
    best = predictor.predict()
    assert not np.array_equal(single.saliency, best.saliency)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"points": [[57, 3]]}, "outside the image"),
    ({"points": [[-1, 3]]}, "outside the image"),
    ({"points": [[3, 40]]}, "outside the image"),
    ({"points": [[1, 2, 3]]}, "shape (N, 2)"),
    ({"points": [[1, 2]], "labels": [1, 0]}, "labels must have shape"),
    ({"points": [[1, 2]], "labels": [2]}, "1 (foreground) or 0 (background), got [2]"),
    ({"points": [[1, 2]], "labels": [-1]}, "1 (foreground) or 0 (background)"),
    ({"labels": [1]}, "labels given without points"),
    ({"points": [[np.nan, 2]]}, "finite"),
    ({"box": [10, 5, 4, 20]}, "x0 < x1"),
    ({"box": [1, 2, 3]}, "4 numbers"),
    ({"box": [0, 0, 60, 20]}, "outside the image"),
    ({"mask_input": np.zeros((8, 8))}, "(1, 16, 16)"),
    ({"mask_input": np.zeros((2, 16, 16))}, "(1, 16, 16)"),
    ({"refine": -1}, "--refine"),
    ({"tta": "rotate"}, "--tta"),
    ({"refine": 1, "points": [[1, 2]]}, "cannot be combined"),
])
def test_bad_prompts_get_clear_errors(predictor, kwargs, fragment):
    predictor.set_image(_image())
    with pytest.raises(SodError) as err:
        predictor.predict(**kwargs)
    assert fragment in str(err.value)


def test_inputs_and_state_errors(predictor, tmp_path):
    fresh = Predictor(predictor.model, predictor.image_size)
    with pytest.raises(SodError, match="set_image"):
        fresh.predict()
    arr = _image()
    Image.fromarray(arr).save(tmp_path / "a.png")
    maps = []
    for given in (arr, Image.fromarray(arr), tmp_path / "a.png", str(tmp_path / "a.png")):
        fresh.set_image(given)
        assert fresh.orig_hw == (40, 57)
        maps.append(fresh.predict().saliency)
    assert all(np.array_equal(maps[0], m) for m in maps[1:])
    with pytest.raises(SodError, match="uint8"):
        fresh.set_image(arr.astype(np.float32))
    with pytest.raises(SodError, match="HxWx3"):
        fresh.set_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(SodError, match="batch_size"):
        fresh.predict_batch([arr], batch_size=0)


def test_coordinates_use_separate_x_and_y_scales():
    batch = make_prompt_batch((50, 100), 64, points=[[50, 25]], box=[0, 0, 100, 50])
    assert batch is not None
    box, point = batch.points[0, :2], batch.points[0, 2]
    assert torch.allclose(point, torch.tensor([50.5 * 0.64 - 0.5, 25.5 * 1.28 - 0.5]))
    assert batch.labels[0].tolist() == [2, 3, 1]
    assert box.min() >= 0 and box.max() <= 63
    assert make_prompt_batch((50, 100), 64) is None


def test_prompt_free_models_refuse_prompts():
    from sam2sod.models import create_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("u2netp", image_size=64, seed=0)
    predictor = Predictor(model, 64)
    assert not predictor.is_promptable
    predictor.set_image(_image())
    pred = predictor.predict()
    assert pred.saliency.shape == (40, 57) and pred.low_res_logits is None and pred.iou is None
    assert predictor.predict(tta="flip").saliency.shape == (40, 57)
    for kwargs in ({"points": [[3, 3]]}, {"box": [1, 1, 9, 9]}):
        with pytest.raises(SodError, match="prompt-free"):
            predictor.predict(**kwargs)
    with pytest.raises(SodError, match="prompt-free"):
        predictor.predict(refine=1)
    assert len(predictor.predict_batch([_image(), _image(20, 20)])) == 2


def test_dtype_option_and_package_export(tiny_run):
    import sam2sod

    assert sam2sod.Predictor is Predictor
    p32 = Predictor.from_pretrained(tiny_run, device="cpu")
    p16 = Predictor.from_pretrained(tiny_run / "best.pt", device="cpu", dtype="bfloat16")
    assert p16.dtype == torch.bfloat16 and p32.dtype is None
    for p in (p32, p16):
        p.set_image(_image())
    diff = np.abs(p32.predict().saliency - p16.predict().saliency).max()
    assert 0 <= diff < 0.1
    assert Predictor(p32.model, 64, dtype=torch.float32).dtype is None
    with pytest.raises(SodError, match="dtype"):
        Predictor(p32.model, 64, dtype="int8")


def test_from_pretrained_exported_folder(predictor, tiny_run, tmp_path):
    export = pytest.importorskip("sam2sod.export")
    folder = export.export_model(tiny_run, tmp_path / "exported")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    exported = Predictor.from_pretrained(folder, device="cpu")
    assert exported.image_size == predictor.image_size and exported.pretrained is False
    img = _image()
    exported.set_image(img)
    predictor.set_image(img)
    np.testing.assert_allclose(exported.predict().saliency, predictor.predict().saliency, atol=1e-5)
