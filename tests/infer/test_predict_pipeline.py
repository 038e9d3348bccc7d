"""The overlapped predict pipeline (issue 14): decoding workers, a writer thread, bounded memory per pixel.

Outputs must not depend on the worker count, unreadable images are still skipped one by one, and the
memory-lean preprocessing / output formats give the same bytes as the straightforward formulas.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sam2sod.data import SAM2_MEAN, SAM2_STD, make_synthetic
from sam2sod.errors import SodError
from sam2sod.infer.formats import draw_overlay, to_mask
from sam2sod.infer.forward import logits_to_uint8
from sam2sod.infer.inference import default_workers, predict_items, preprocess
from sam2sod.infer.predict import default_batch_size, predict_report
from sam2sod.runs.runtime import auto_workers, inference_dtype

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")


def _preprocess_reference(image: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return (x - torch.tensor(SAM2_MEAN).view(3, 1, 1)) / torch.tensor(SAM2_STD).view(3, 1, 1)


@pytest.mark.parametrize("hw", [(37, 53), (300, 200), (64, 64)])
def test_preprocess_by_channel_equals_the_whole_image_formula(hw) -> None:
    img = np.random.default_rng(sum(hw)).integers(0, 256, (*hw, 3), dtype=np.uint8)
    torch.testing.assert_close(preprocess(img, 64), _preprocess_reference(img, 64), atol=0, rtol=0)


def test_logits_to_uint8_in_place_equals_the_plain_formula() -> None:
    logits = torch.randn(1, 16, 16) * 6
    up = F.interpolate(logits[None], size=(45, 70), mode="bilinear", align_corners=False)[0, 0]
    expected = (torch.sigmoid(up) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    assert np.array_equal(logits_to_uint8(logits, (45, 70)), expected)


def test_worker_defaults(monkeypatch) -> None:
    for cores, expected in ((1, 0), (2, 1), (3, 2), (16, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda c=cores: c)
        assert auto_workers() == auto_workers(torch.device("cuda")) == expected
        assert default_workers(100, 8, torch.device("cuda")) == expected
    assert default_workers(8, 8) == 0, "one batch: no worker process to start"
    cpu = torch.device("cpu")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert default_workers(100, 1, cpu) == 0, "torch's threads use every core: decode in the main process"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 6)
    assert default_workers(100, 1, cpu) == 2


def test_predict_batch_size_default_depends_on_the_device() -> None:
    assert default_batch_size(torch.device("cpu")) == 1
    assert default_batch_size(torch.device("cuda")) == 8


def test_inference_dtype_choices() -> None:
    cpu = torch.device("cpu")
    assert inference_dtype(cpu, "fp32") is None
    assert inference_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(SodError, match="fp16 needs a CUDA device"):
        inference_dtype(cpu, "fp16")
    with pytest.raises(SodError, match="must be one of fp32, bf16, fp16"):
        inference_dtype(cpu, "int8")


class _MeanModel(torch.nn.Module):
    """A stand-in model: the logits are the channel mean (enough to check order and skipping)."""

    def forward(self, images, prompts=None, multimask=False):
        return {"logits": images.mean(1, keepdim=True)}


def _folder_with_a_broken_image(tmp_path: Path) -> tuple[list, Path]:
    make_synthetic(tmp_path / "ds", n=7, size=24, seed=3)
    images = sorted((tmp_path / "ds" / "images").iterdir())
    broken = images[3]
    broken.write_bytes(broken.read_bytes()[:40])  # a truncated file: the header may parse, decoding fails
    return [(p.stem, p, None) for p in images], broken


@pytest.mark.parametrize("workers", [0, 1])
def test_predict_items_skips_unreadable_images_in_order(tmp_path: Path, workers: int) -> None:
    items, broken = _folder_with_a_broken_image(tmp_path)
    bad = []
    got = list(predict_items(_MeanModel(), items, 32, torch.device("cpu"), batch_size=2, workers=workers,
                             on_unreadable=lambda item, err: bad.append((item[1], str(err)))))
    assert [n for n, _ in got] == [n for n, p, _ in items if p != broken]
    assert [p for p, _ in bad] == [broken] and broken.name in bad[0][1]
    assert all(m.dtype == np.uint8 and m.shape == (24, 24) for _, m in got)
    with pytest.raises(SodError, match=broken.name):
        list(predict_items(_MeanModel(), items, 32, torch.device("cpu"), batch_size=2, workers=workers))


def test_predict_output_does_not_depend_on_workers(ckpt: Path, tmp_path: Path) -> None:
    make_synthetic(tmp_path / "in", n=9, size=40, seed=5)
    outs = {}
    for workers in (0, 1, 2):
        out = tmp_path / f"out{workers}"
        report = predict_report(ckpt, tmp_path / "in" / "images", out, batch_size=2, workers=workers,
                                formats=["map", "overlay"])
        assert len(report.written) == 18 and not report.skipped
        outs[workers] = {p.relative_to(out): p.read_bytes() for p in report.written}
    assert outs[0] == outs[1] == outs[2]


def test_predict_rejects_bad_workers_and_dtype_before_writing(ckpt: Path, tmp_path: Path) -> None:
    make_synthetic(tmp_path / "in", n=2, size=40, seed=5)
    with pytest.raises(SodError, match="--decode-workers must be >= 0"):
        predict_report(ckpt, tmp_path / "in" / "images", tmp_path / "o1", workers=-1)
    with pytest.raises(SodError, match="fp16 needs a CUDA device"):
        predict_report(ckpt, tmp_path / "in" / "images", tmp_path / "o2", dtype="fp16")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_predict_bf16_on_cpu_writes_maps(ckpt: Path, tmp_path: Path) -> None:
    make_synthetic(tmp_path / "in", n=2, size=40, seed=5)
    report = predict_report(ckpt, tmp_path / "in" / "images", tmp_path / "out", dtype="bf16")
    maps = [np.asarray(Image.open(p)) for p in report.written]
    assert len(maps) == 2 and all(m.shape == (40, 40) for m in maps)


def _peak_bytes(fn, *args) -> int:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_overlay_and_mask_memory_per_pixel_is_bounded() -> None:
    """A 3 MP image: the old float path allocated about 50 bytes per pixel; now the uint8 output and
    1-byte masks dominate (the limit leaves room for scipy's erosion / dilation buffers)."""
    h, w = 1500, 2000
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    saliency = (255 * np.exp(-((yy - 700) ** 2 + (xx - 900) ** 2) / 4e5)).astype(np.uint8)
    assert _peak_bytes(to_mask, saliency) / (h * w) < 3
    mask = to_mask(saliency)
    assert 0.05 < mask.mean() < 0.95
    assert _peak_bytes(draw_overlay, image, mask) / (h * w) < 12
