"""Every command and API that takes a model opens it through `sam2sod.load_model`: a run folder, its best.pt,
its last.pt and an export folder all work, and a bad model path fails before any output folder exists."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod import load_model
from sam2sod.cli import main
from sam2sod.infer.predictor import Predictor
from sam2sod.runs.loader import open_source

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
KINDS = ("run", "best", "last", "export")


@pytest.fixture(scope="module")
def models(tiny_run: Path, tmp_path_factory) -> dict[str, Path]:
    from sam2sod.export import export_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = export_model(tiny_run, tmp_path_factory.mktemp("exp") / "exported")
    return {"run": tiny_run, "best": tiny_run / "best.pt", "last": tiny_run / "last.pt", "export": exported}


@pytest.fixture(scope="module")
def data(tiny_run: Path) -> Path:
    return tiny_run.parent / "ds"


def _map(folder: Path) -> np.ndarray:
    return np.asarray(Image.open(sorted(folder.glob("*.png"))[0]))


def test_load_model_reports_what_it_opened(models) -> None:
    got = {k: load_model(p, "cpu") for k, p in models.items()}
    assert got["run"].path == models["best"] and got["best"].path == models["best"]
    assert got["last"].path == models["last"] and got["export"].path == models["export"]
    assert {g.kind for g in got.values()} == {"run", "export"}
    for g in got.values():
        assert g.image_size == 64 and g.method == "adapter_cbam" and not g.model.training
        assert g.label == "RANDOM INIT" and not g.pretrained
    assert got["run"].config is not None and got["export"].config is None
    assert got["export"].data is not None and got["export"].data.train_count == got["run"].data.train_count


@pytest.mark.parametrize("kind", KINDS)
def test_predict_evaluate_export_and_predictor_take_every_kind(kind, models, data, tmp_path, capsys) -> None:
    path = str(models[kind])
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", path, "--input", str(data / "images"), "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    ev = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", path, "--data", f"ds={data}", "--out", str(ev), "--device", "cpu",
                 "--workers", "1", "--no-progress"]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["checkpoint"] == str(open_source(path).path)
    assert main(["export", "--checkpoint", path, "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "model.safetensors").is_file()
    predictor = Predictor.from_pretrained(path, device="cpu")
    predictor.set_image(sorted((data / "images").iterdir())[0])
    assert np.array_equal(predictor.predict().to_uint8(), _map(out))
    capsys.readouterr()


def test_benchmark_takes_a_run_and_an_export(models, data, tmp_path) -> None:
    out = tmp_path / "bench"
    assert main(["benchmark", "--model", f"run={models['last']}", "--model", f"exported={models['export']}",
                 "--data", f"ds={data}", "--out", str(out), "--workers", "1", "--n-resamples", "10", "--device",
                 "cpu", "--no-progress"]) == 0
    assert {"run", "exported"} <= set(json.loads((out / "benchmark.json").read_text())["methods"])


@pytest.mark.parametrize("kind", ["best", "export"])
def test_init_from_takes_a_checkpoint_and_an_export(kind, models, data, tmp_path) -> None:
    from sam2sod.runs.config import load_config
    from sam2sod.train.trainer import train

    cfg = load_config(None, ["model.method=adapter_cbam", "model.image_size=64", f"data.root={data}",
                             "data.train_count=4", "optim.batch_size=2", "optim.epochs=1", "optim.max_steps=1",
                             "optim.warmup_steps=1", "device=cpu", "val_batch_size=2",
                             f"model.init_from={models[kind]}"])
    assert train(cfg, tmp_path / "run", progress=False)["step"] == 1


def _bad_paths(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    return {"missing": tmp_path / "nope", "empty": empty, "junk": junk}


@pytest.mark.parametrize("bad", ["missing", "empty", "junk"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "benchmark", "export"])
def test_a_bad_model_path_fails_before_any_output(command, bad, data, tmp_path, capsys, one_error_line) -> None:
    path = str(_bad_paths(tmp_path)[bad])
    out = tmp_path / "out"
    argv = {"predict": ["predict", "--checkpoint", path, "--input", str(data / "images")],
            "evaluate": ["evaluate", "--checkpoint", path, "--data", str(data), "--workers", "1"],
            "benchmark": ["benchmark", "--model", f"m={path}", "--data", str(data), "--workers", "1"],
            "export": ["export", "--checkpoint", path]}[command]
    assert main([*argv, "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert path in line or Path(path).name in line, line
    assert not out.exists()


def test_official_name_without_its_file_and_hub_paths_fail_in_one_line(data, tmp_path, monkeypatch, capsys,
                                                                       one_error_line) -> None:
    monkeypatch.setenv("SAM2SOD_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the network: the repo is looked up in an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for name, needle in (("sam2.1_hiera_tiny", "sam2sod weights download sam2.1_hiera_tiny"),
                         ("hf://someone/model", "someone/model is not in the Hugging Face cache")):
        assert main(["predict", "--checkpoint", name, "--input", str(data / "images"), "--out",
                     str(tmp_path / "o")]) == 2
        assert needle in one_error_line(capsys.readouterr().err)
        assert not (tmp_path / "o").exists()


def test_an_official_file_opens_as_zero_shot_sam2(tmp_path) -> None:
    import torch

    from sam2sod.models.sam2_backbone import build_sam2_model
    from sam2sod.models.zero_shot import ZeroShotSAM2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd = build_sam2_model("sam2.1", "tiny", 64, seed=3).state_dict()
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": sd}, path)
    loaded = load_model(path, "cpu")
    assert loaded.kind == "official" and isinstance(loaded.model, ZeroShotSAM2) and loaded.pretrained
    assert loaded.path == path and loaded.image_size == 1024 and loaded.label == ""
