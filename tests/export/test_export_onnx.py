"""`sam2sod export --format onnx` (issue 12): model.onnx, image_encoder.onnx + decoder.onnx through onnxruntime
equal the PyTorch run within 1e-4, with a dynamic batch and a dynamic point count (0 = prompt-free)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.export import export_model, load_exported
from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from sam2sod.export.onnx_export import onnx_session  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TOL = 1e-4


@dataclass
class Prompts:
    points: torch.Tensor
    labels: torch.Tensor
    mask_input: torch.Tensor
    has_mask: torch.Tensor


def run_model(run) -> torch.nn.Module:
    return build_model_from_checkpoint(read_checkpoint(run), torch.device("cpu")).eval()


def ort(session, **feed: torch.Tensor) -> list[torch.Tensor]:
    return [torch.from_numpy(a) for a in session.run(None, {k: v.numpy() for k, v in feed.items()})]


def prompts(batch: int, n: int, seed: int) -> Prompts:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (batch, n), generator=g)
    if n > 1:
        labels[:, 0] = -1  # an interior "not a point" (kept, as in PyTorch); the last column stays real
    return Prompts(torch.rand(batch, n, 2, generator=g) * 64, labels,
                   torch.randn(batch, 1, 16, 16, generator=g) * 3, torch.arange(batch) % 2 == 1)


@pytest.mark.parametrize("method,args", [("adapter_cbam", {"edge": True}), ("decoder_only", {}),
                                         ("lora", {"rank": 2}), ("u2netp", {}), ("sam_adapter", {})])
def test_onnx_equals_pytorch(method, args, make_run, tmp_path) -> None:
    run = make_run(method, args=args)
    model = run_model(run)
    out = export_model(run, tmp_path / "onnx", "onnx")
    config = json.loads((out / "config.json").read_text())
    sam = method != "u2netp"  # sam_adapter: its FFT high-pass is exported as matmuls
    expected = ["model.onnx", "image_encoder.onnx", "decoder.onnx"] if sam else ["model.onnx"]
    assert config["files"] == expected and config["weights_format"] == "onnx"
    assert "onnxruntime" in (out / "README.md").read_text()

    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ref = model(images)["logits"]
    (logits,) = ort(onnx_session(out / "model.onnx"), images=images)
    assert float((logits - ref).abs().max()) <= TOL * max(1.0, float(ref.abs().max()))
    if not sam:
        return
    embed, hr0, hr1 = ort(onnx_session(out / "image_encoder.onnx"), images=images)
    with torch.no_grad():
        feats = model.encode_image(images)
    for a, b in zip((embed, hr0, hr1), (feats["image_embed"], *feats["high_res_feats"]), strict=True):
        assert float((a - b).abs().max()) <= TOL * max(1.0, float(b.abs().max()))
    decoder = onnx_session(out / "decoder.onnx")
    for batch, n in ((3, 0), (1, 1), (2, 5)):  # N = 0: prompt-free, with or without a mask prompt
        p = prompts(batch, n, seed=batch + n)
        f = {"image_embed": feats["image_embed"][:batch], "high_res_feat0": feats["high_res_feats"][0][:batch],
             "high_res_feat1": feats["high_res_feats"][1][:batch]}
        got_logits, got_iou = ort(decoder, **f, point_coords=p.points, point_labels=p.labels,
                                  mask_input=p.mask_input, has_mask=p.has_mask)
        with torch.no_grad():
            want = model.decode({"image_embed": f["image_embed"],
                                 "high_res_feats": [f["high_res_feat0"], f["high_res_feat1"]]}, p)
        assert float((got_logits - want["logits"]).abs().max()) <= TOL * max(1.0, float(want["logits"].abs().max()))
        assert float((got_iou - want["iou"]).abs().max()) <= TOL


def test_onnx_folder_is_not_loaded_as_pytorch_and_missing_packages_are_named(make_run, tmp_path,
                                                                             monkeypatch) -> None:
    run = make_run("u2netp", metrics=False)
    out = export_model(run, tmp_path / "onnx", "onnx")
    with pytest.raises(SodError, match="holds an ONNX export"):
        load_exported(out)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(SodError, match=r"pip install 'sam2sod\[export\]'"):
        export_model(run, tmp_path / "again", "onnx")
    with pytest.raises(SodError, match="unknown export format"):
        export_model(run, tmp_path / "again", "tflite")


def test_onnx_dimensions_are_named_and_the_card_snippet_runs(make_run, tmp_path) -> None:
    """Every input / output dimension is 'batch', 'points' or a fixed size; the README's snippet runs as
    written in the export folder and matches the PyTorch model on the same image."""
    import re
    import subprocess

    import numpy as np
    import onnx
    from PIL import Image

    from sam2sod.infer.inference import preprocess

    run = make_run("adapter_cbam")
    out = export_model(run, tmp_path / "onnx", "onnx")
    for name in ("model.onnx", "image_encoder.onnx", "decoder.onnx"):
        graph = onnx.load(out / name).graph
        for value in [*graph.input, *graph.output]:
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            assert dims and dims[0] == "batch" and all(isinstance(d, int) or d in ("batch", "points")
                                                       for d in dims), (name, value.name, dims)
    logits_dims = [d.dim_param or d.dim_value for d in onnx.load(out / "model.onnx").graph.output[0]
                   .type.tensor_type.shape.dim]
    assert logits_dims == ["batch", 1, 64, 64]

    readme = (out / "README.md").read_text()
    snippet = re.search(r"## Use \(onnxruntime\).*?```python\n(.*?)```", readme, re.S).group(1)
    rng = np.random.default_rng(0)
    img = (rng.random((90, 120, 3)) * 255).astype(np.uint8)
    img[20:70, 30:90] = (250, 200, 30)
    Image.fromarray(img).save(out / "image.jpg", quality=100)
    subprocess.run([sys.executable, "-c", snippet], cwd=out, check=True, capture_output=True, text=True)
    got = np.asarray(Image.open(out / "saliency.png"), np.float32) / 255
    assert got.shape == (90, 120)
    model = run_model(run)
    with torch.no_grad():
        ref = torch.sigmoid(model(preprocess(np.asarray(Image.open(out / "image.jpg")), 64)[None])["logits"])
    ref = torch.nn.functional.interpolate(ref, size=(90, 120), mode="bilinear")[0, 0].numpy()
    assert float(np.abs(got - ref).mean()) < 0.02
