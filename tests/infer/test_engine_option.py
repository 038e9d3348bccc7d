"""`--engine torch|onnxruntime` on predict / evaluate / Predictor (issue 21): one-line refusals before any
model is built, onnxruntime maps within 2/255 of torch's through the same path, an ONNX export folder opens
as the engine's model, and a torch engine refuses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2sod.cli import main
from sam2sod.data import make_synthetic
from sam2sod.errors import SodError
from sam2sod.infer.engines import check_engine, use_engine
from sam2sod.infer.predict import predict_report

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CPU = torch.device("cpu")


@pytest.mark.parametrize(("kw", "msg"), [
    ({"engine": "tensorrt"}, "--engine must be one of torch, onnxruntime, got 'tensorrt'"),
    ({"engine": "onnxruntime", "device": torch.device("cuda")}, "--device cuda needs --engine torch"),
    ({"engine": "onnxruntime", "dtype": "bf16"}, "--dtype bf16 needs --engine torch"),
    ({"engine": "onnxruntime", "refine": 1}, "--refine needs --engine torch"),
])
def test_check_engine_refuses_in_one_line(kw, msg) -> None:
    with pytest.raises(SodError, match=msg) as err:
        check_engine(**kw)
    assert "\n" not in str(err.value)


def test_torch_engine_is_the_model_itself() -> None:
    model = torch.nn.Identity()
    assert use_engine(model, "torch") is model
    check_engine("torch", CPU, "bf16", 2)  # everything allowed


def test_cli_refuses_refine_with_onnxruntime_before_writing(ckpt: Path, tmp_path: Path, capsys) -> None:
    make_synthetic(tmp_path / "in", n=1, size=40, seed=5)
    code = main(["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in" / "images"),
                 "--out", str(tmp_path / "o"), "--engine", "onnxruntime", "--refine", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: --refine needs --engine torch"
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return tmp_path_factory.mktemp("onnx_cache")


def test_predict_onnxruntime_matches_torch(ckpt: Path, tmp_path: Path, onnx_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("SAM2SOD_CACHE", str(onnx_cache))
    make_synthetic(tmp_path / "in", n=3, size=40, seed=5)
    maps = {}
    for engine in ("torch", "onnxruntime"):
        report = predict_report(ckpt, tmp_path / "in" / "images", tmp_path / engine, engine=engine, progress=False)
        maps[engine] = {p.name: np.asarray(Image.open(p)).astype(int) for p in report.written}
    assert maps["torch"].keys() == maps["onnxruntime"].keys() and len(maps["torch"]) == 3
    for name, m in maps["torch"].items():
        assert np.abs(m - maps["onnxruntime"][name]).max() <= 2
    assert any((onnx_cache / "onnx").iterdir())  # exported into the cache, keyed by the model's hash
    from sam2sod.infer.predictor import Predictor

    pred = Predictor.from_pretrained(ckpt, device="cpu", engine="onnxruntime")  # the cached export, reused
    assert type(pred.model).__name__ == "OnnxSodModel"
    first = sorted((tmp_path / "in" / "images").iterdir())[0]
    got = np.rint(pred.predict_batch([first])[0] * 255).astype(int)
    assert np.abs(got - maps["torch"][first.stem + ".png"]).max() <= 2


def test_onnx_export_folder_opens_with_onnxruntime_only(ckpt: Path, tmp_path: Path, onnx_cache: Path) -> None:
    from sam2sod.export import export_model

    folder = export_model(ckpt, tmp_path / "exp", "onnx")
    make_synthetic(tmp_path / "in", n=2, size=40, seed=6)
    report = predict_report(folder, tmp_path / "in" / "images", tmp_path / "o1", engine="onnxruntime", progress=False)
    assert len(report.written) == 2
    with pytest.raises(SodError, match="is an ONNX export: run it with --engine onnxruntime"):
        predict_report(folder, tmp_path / "in" / "images", tmp_path / "o2", progress=False)
