"""Models on the Hugging Face hub through the commands and `Predictor`, against the fake hub of conftest.py:
`export --push-to-hub` then `predict --checkpoint hf://...` gives the maps of the local export,
`Predictor.from_pretrained("user/repo")`, `model.init_from: hf://...`, the offline cache, and one-line errors
before any output folder exists."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic

pytest.importorskip("huggingface_hub")  # in the dev extra
pytestmark = [pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")]


@pytest.fixture
def env(hub, tmp_path, monkeypatch) -> Path:
    """The fake hub as HF_ENDPOINT, a token, and a fresh huggingface_hub cache (returned)."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "hf-cache"


@pytest.fixture
def run(tmp_path) -> Path:
    """A LoRA run folder at 64 px (random-init base, one run checkpoint), made without training."""
    from sam2sod.models import create_model, state_for_checkpoint
    from sam2sod.runs.checkpoints import save_checkpoint
    from sam2sod.runs.config import ModelConfig, TrainConfig, to_dict

    cfg = TrainConfig(model=ModelConfig(method="lora", image_size=64))
    cfg.data.root = "/data/ecssd-700"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("lora", image_size=64, seed=cfg.seed)
    folder = tmp_path / "run"
    folder.mkdir()
    save_checkpoint(folder / "best.pt", {"model": state_for_checkpoint(model), "config": to_dict(cfg), "step": 2,
                                         "epoch": 1, "best": {"S": 0.5, "MAE": 0.3, "epoch": 1, "step": 2},
                                         "pretrained": False})
    return folder


@pytest.fixture
def images(tmp_path) -> Path:
    make_synthetic(tmp_path / "ds", n=2, size=40, seed=3)
    return tmp_path / "ds" / "images"


def _maps(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_push_then_predict_from_the_hub(hub, env, run, images, tmp_path, capsys):
    export = tmp_path / "export"
    assert main(["export", "--checkpoint", str(run), "--out", str(export), "--push-to-hub", "me/sod",
                 "--private"]) == 0
    assert "uploaded" in capsys.readouterr().out and "private" in json.dumps(hub.repos["me/sod"]["request"])
    files = hub.repos["me/sod"]["commits"][hub.repos["me/sod"]["refs"]["main"]]
    assert set(files) == {"config.json", "model.safetensors", "README.md"}
    assert files["model.safetensors"] == (export / "model.safetensors").read_bytes()
    meta = yaml.safe_load(files["README.md"].decode().split("---\n")[1])
    assert meta["tags"][:2] == ["salient-object-detection", "sam2"] and "random-init" in meta["tags"]
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["predict", "--checkpoint", str(export), "--input", str(images), "--out", str(local),
                 "--device", "cpu", "--no-progress"]) == 0
    assert main(["predict", "--checkpoint", "hf://me/sod", "--input", str(images), "--out", str(remote),
                 "--device", "cpu", "--no-progress"]) == 0
    assert _maps(remote) == _maps(local) and len(_maps(local)) == 2
    assert list(env.rglob("model.safetensors"))  # in the huggingface_hub cache
    hub.repos.clear()  # offline: the cache alone serves it, bare user/repo included
    from sam2sod import Predictor

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        predictor = Predictor.from_pretrained("me/sod", "cpu")
    image = sorted(images.iterdir())[0]
    want = np.asarray(Image.open(local / f"{image.stem}.png"))
    assert np.abs(np.round(predictor.predict_batch([image])[0] * 255) - want).max() <= 1
    again = tmp_path / "again"
    assert main(["predict", "--checkpoint", "hf://me/sod@main", "--input", str(images), "--out", str(again),
                 "--hub-offline", "--device", "cpu", "--no-progress"]) == 0
    assert _maps(again) == _maps(local)


def test_init_from_a_hub_export(hub, env, run, tmp_path):
    from sam2sod.export import export_model, hub_open  # noqa: F401  (registers hf://)
    from sam2sod.hub import push_export
    from sam2sod.models import create_model
    from sam2sod.runs.config import ModelConfig, TrainConfig, resolve_paths
    from sam2sod.runs.init_from import load_init_weights

    push_export(export_model(run, tmp_path / "export"), "me/sod", endpoint=hub.url, token="hf_test")
    cfg = resolve_paths(TrainConfig(model=ModelConfig(method="lora", image_size=64, init_from="hf://me/sod")))
    assert cfg.model.init_from == "hf://me/sod"  # not made into a local path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("lora", image_size=64, seed=99)
    got = load_init_weights(model, cfg.model.init_from)
    assert got["copied"] > 0 and not got["skipped"]
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["method"] == "lora"


@pytest.mark.parametrize(("ref", "flags", "message"), [
    ("hf://me/none", [], "Hugging Face repo me/none not found"),
    ("hf://me/sod@v9", [], "revision 'v9' not found in the Hugging Face repo me/sod"),
    ("hf://me/never", ["--hub-offline"], "not in the Hugging Face cache (local_files_only)"),
    ("hf://me/sod", ["--zero-shot", "amg"], "is a sam2sod export on the Hugging Face hub (a trained model)"),
])
def test_hub_errors_are_one_line_before_any_output(hub, env, images, tmp_path, capsys, one_error_line, ref, flags,
                                                   message):
    hub.commit("me/sod", {"config.json": b"{}"})
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", ref, "--input", str(images), "--out", str(out), *flags]) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_push_errors_come_before_the_export(hub, env, run, tmp_path, capsys, one_error_line):
    out = tmp_path / "export"
    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--push-to-hub", "me/a/b"]) == 2
    assert "is not a Hugging Face model repo" in one_error_line(capsys.readouterr().err)
    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--push-to-hub", "me/sod@dev"]) == 2
    assert "not a revision" in one_error_line(capsys.readouterr().err)
    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--private"]) == 2
    assert "--private applies to --push-to-hub" in one_error_line(capsys.readouterr().err)
    assert not out.exists() and not hub.requests
