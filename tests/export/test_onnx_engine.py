"""`OnnxSodModel` / `onnx_engine_for` (issue 21): onnxruntime in place of the PyTorch model in the inference
path. Maps through `predict_items` within 2/255 of fp32 torch, prompted logits close to torch's, a cache
keyed by the weights and reused (no second export), written atomically, one-line errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2sod.data.prompts import Prompts, collate_prompts
from sam2sod.errors import SodError
from sam2sod.infer.inference import predict_items
from sam2sod.models import create_model
from sam2sod.models.peft.lora import lora_modules

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import sam2sod.export.onnx_export as onnx_export  # noqa: E402
from sam2sod.export import export_model  # noqa: E402
from sam2sod.export.onnx_engine import (  # noqa: E402
    OnnxSodModel,
    _write_entry,
    default_cache_dir,
    model_key,
    onnx_engine_for,
)

from .conftest import perturb  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
METHODS = {"adapter_cbam": {}, "lora": {"rank": 2}, "sam2unet": {}, "u2netp": {}}


def tiny(method: str, seed: int = 1) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(method, image_size=64, seed=0, **METHODS.get(method, {}))
    perturb(model, seed=seed)
    return model.eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture(scope="module")
def engines(cache) -> dict[str, tuple[torch.nn.Module, OnnxSodModel]]:
    """{method: (torch model, its onnxruntime engine)}, each exported once into the module's cache."""
    out = {}
    for method in METHODS:
        model = tiny(method)
        out[method] = (model, onnx_engine_for(model, cache))
    return out


@pytest.fixture(scope="module")
def image_items(tmp_path_factory) -> list[tuple[str, Path, None]]:
    """Three RGB images of different sizes (none square at 64 px): maps come back at each one's size."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(3)
    items = []
    for i, (h, w) in enumerate(((50, 80), (97, 64), (64, 64))):
        yy, xx = np.mgrid[:h, :w]
        blob = ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 3) ** 2)[..., None]
        rgb = np.clip(rng.normal(90, 30, (h, w, 3)) + 120 * blob, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"im{i}.png")
        items.append((f"im{i}", folder / f"im{i}.png", None))
    return items


@pytest.mark.parametrize("method", list(METHODS))
def test_maps_equal_torch(method, engines, image_items) -> None:
    model, engine = engines[method]
    assert engine.image_size == 64 and engine.method == model.method
    assert engine.model_is_pretrained is False and engine.base_info == dict(getattr(model, "base_info", {}) or {})
    ref = dict(predict_items(model, image_items, 64, torch.device("cpu"), batch_size=2))
    got = dict(predict_items(engine, image_items, 64, torch.device("cpu"), batch_size=2))
    assert list(got) == list(ref)
    for name, m in ref.items():
        assert got[name].shape == m.shape and got[name].dtype == np.uint8
        assert int(np.abs(got[name].astype(np.int16) - m).max()) <= 2, name
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = model(images)["logits"]
    out = engine(images)
    assert set(out) == {"logits"} and out["logits"].shape == (3, 1, 64, 64)
    assert float((out["logits"] - logits).abs().max()) <= 1e-3 * max(1.0, float(logits.abs().max()))


def test_lora_is_merged_on_a_copy(engines) -> None:
    model, engine = engines["lora"]
    assert lora_modules(model) and model.method == "lora"  # the caller's model is left unmerged
    assert engine.method == "lora"


def test_prompted_logits_equal_torch(engines) -> None:
    model, engine = engines["adapter_cbam"]
    assert engine.promptable
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    prompts = collate_prompts([
        Prompts(box=torch.tensor([10.0, 12.0, 40.0, 50.0])),
        Prompts(points=torch.tensor([[20.0, 30.0], [5.0, 5.0], [50.0, 9.0]]), labels=torch.tensor([1, 0, 1])),
        Prompts(),  # a prompt-free row in a prompted batch: its own group, no sparse tokens
    ], 64)
    with torch.no_grad():
        ref = model(images, prompts)
    got = engine(images, prompts)
    assert set(got) == {"logits", "iou"}
    scale = max(1.0, float(ref["logits"].abs().max()))
    assert float((got["logits"] - ref["logits"]).abs().max()) <= 1e-3 * scale
    assert torch.allclose(got["iou"], ref["iou"], atol=1e-4)
    feats = engine.encode_image(images[:1])  # the cacheable path: encode once, decode a box
    box = collate_prompts([Prompts(box=torch.tensor([10.0, 12.0, 40.0, 50.0]))], 64)
    again = engine.decode(feats, box)["logits"]
    assert float((again - ref["logits"][:1]).abs().max()) <= 1e-3 * scale


def test_prompt_free_only_methods_refuse_prompts(engines) -> None:
    box = collate_prompts([Prompts(box=torch.tensor([1.0, 2.0, 30.0, 40.0]))], 64)
    for method in ("sam2unet", "u2netp"):
        engine = engines[method][1]
        assert not engine.promptable
        with pytest.raises(SodError, match="no prompt path"):
            engine(torch.zeros(1, 3, 64, 64), box)


def test_bad_input_shape_and_multimask(engines) -> None:
    engine = engines["u2netp"][1]
    with pytest.raises(SodError, match=r"\(B,3,64,64\)"):
        engine(torch.zeros(1, 3, 32, 32))
    with pytest.raises(SodError, match="multimask"):
        engine(torch.zeros(1, 3, 64, 64), None, multimask=True)


def test_threads_and_optimized_graph_reuse(engines, cache) -> None:
    model, first = engines["u2netp"]
    assert first.threads == torch.get_num_threads()
    optimized = list(first.folder.glob("model.*.opt.onnx"))
    assert len(optimized) == 1 and not list(first.folder.glob(".*tmp*"))  # kept whole, no temp file left
    again = onnx_engine_for(model, cache, threads=3)  # loads the optimized graph without optimizing again
    assert again.threads == 3 and again.folder == first.folder
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    assert torch.allclose(again(images)["logits"], first(images)["logits"], atol=1e-5)


def test_cache_is_reused_and_keyed(tmp_path, monkeypatch) -> None:
    calls = []
    real = onnx_export.export_onnx

    def spy(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_export, "export_onnx", spy)
    model = tiny("u2netp")
    first = onnx_engine_for(model, tmp_path)
    second = onnx_engine_for(model, tmp_path)
    assert len(calls) == 1 and first.folder == second.folder == tmp_path / model_key(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [model_key(model)]  # no temp folder left
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    third = onnx_engine_for(model, tmp_path)
    assert len(calls) == 2 and third.folder != first.folder and len(list(tmp_path.iterdir())) == 2
    assert model_key(model) != first.folder.name
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(images)["logits"]
    assert float((third(images)["logits"] - ref).abs().max()) <= 1e-4 * max(1.0, float(ref.abs().max()))


def test_concurrent_writer_keeps_the_first_entry(tmp_path) -> None:
    model = tiny("u2netp")
    engine = onnx_engine_for(model, tmp_path)
    before = (engine.folder / "model.onnx").stat().st_mtime_ns
    _write_entry(model, tmp_path, engine.folder.name, False)  # a second process finishing later: no error
    assert (engine.folder / "model.onnx").stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [engine.folder.name]


def test_failed_export_is_one_line_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::fancy' to ONNX opset 17 is not supported.\nmore")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    with pytest.raises(SodError) as err:
        onnx_engine_for(tiny("u2netp"), tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "u2netp cannot be exported" in msg and "--engine torch" in msg
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(SodError, match=r"pip install 'sam2sod\[export\]'"):
        onnx_engine_for(tiny("u2netp"), tmp_path)
    with pytest.raises(SodError, match="onnxruntime"):
        OnnxSodModel.from_export(tmp_path)


def test_from_export_folder(make_run, tmp_path) -> None:
    from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint

    run = make_run("u2netp")
    model = build_model_from_checkpoint(read_checkpoint(run), torch.device("cpu")).eval()
    engine = OnnxSodModel.from_export(export_model(run, tmp_path / "onnx", "onnx"))
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(images)["logits"]
    assert float((engine(images)["logits"] - ref).abs().max()) <= 1e-4 * max(1.0, float(ref.abs().max()))
    assert engine.export_config["weights_format"] == "onnx"
    safetensors = export_model(run, tmp_path / "st", "safetensors")
    with pytest.raises(SodError, match="has no model.onnx.*--format onnx"):
        OnnxSodModel.from_export(safetensors)
    with pytest.raises(SodError, match="not found"):
        OnnxSodModel.from_export(tmp_path / "nope")


def test_default_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SAM2SOD_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "onnx"
    monkeypatch.delenv("SAM2SOD_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "sam2sod" / "onnx"
