"""`sam2sod export` (issue 12): one folder with config.json + model.safetensors + README.md that loads without
the run or the base checkpoint and gives the run's outputs."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

from sam2sod.cli import main
from sam2sod.errors import SodError
from sam2sod.export import export_model, load_exported
from sam2sod.models import METHODS, RandomInitWarning, build_sam2_model
from sam2sod.models.baselines import BASELINES
from sam2sod.models.peft.lora import lora_modules
from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SLOW = {"u2net", "poolnet", "poolnet_vgg"}  # the three biggest baselines (44-68M parameters)
ALL = [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m for m in [*METHODS, *BASELINES]]


def run_outputs(source, images: torch.Tensor) -> dict[str, torch.Tensor]:
    model = source if isinstance(source, torch.nn.Module) else build_model_from_checkpoint(
        read_checkpoint(source), torch.device("cpu"))
    with torch.no_grad():
        out = model.eval()(images)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def max_rel_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b) and "logits" in a
    return max(float((a[k] - b[k]).abs().max()) / max(1.0, float(b[k].abs().max())) for k in a)


@pytest.mark.parametrize("method", ALL)
def test_export_equals_the_run(method, make_run, images, tmp_path) -> None:
    run = make_run(method)
    ref = run_outputs(run, images)
    out = export_model(run, tmp_path / "export")
    shutil.rmtree(run)  # nothing of the run is needed any more
    model = load_exported(out)
    assert max_rel_diff(run_outputs(model, images), ref) <= 1e-5
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == method and config["lora_merged"] == (method == "lora")
    assert not lora_modules(model) and not model.model_is_pretrained
    assert sorted(p.name for p in out.iterdir()) == [".sam2sod-output", "README.md", "config.json",
                                                     "model.safetensors"]


def test_pretrained_base_travels_inside_the_export(make_run, images, tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        sd = build_sam2_model("sam2.1", "tiny", 64, seed=3).state_dict()
    base = tmp_path / "base" / "my_sam2.1_tiny.pt"
    base.parent.mkdir()
    torch.save({"model": sd}, base)
    run = make_run("lora", checkpoint=str(base), args={"rank": 2})
    assert not read_checkpoint(run)["model"]["full_state"]  # the run needs the base file ...
    ref = run_outputs(run, images)
    out = export_model(run / "best.pt", tmp_path / "export")
    shutil.rmtree(base.parent)  # ... the export does not
    with pytest.raises(SodError, match="not found"):
        build_model_from_checkpoint(read_checkpoint(run), torch.device("cpu"))
    model = load_exported(out / "model.safetensors")
    assert max_rel_diff(run_outputs(model, images), ref) <= 1e-5
    assert model.model_is_pretrained and model.base_info["checkpoint"] == str(base)
    assert model.method == "lora_merged"
    card = (out / "README.md").read_text()
    assert "RANDOM INIT" not in card and "my_sam2.1_tiny.pt" in card and "LoRA folded" in card


def test_model_card_and_config_describe_the_run(make_run, tmp_path) -> None:
    out = export_model(make_run("adapter_cbam"), tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "sam2sod-export/1" and config["image_size"] == 64 and not config["pretrained"]
    assert config["base"]["seed"] == 0 and config["method_cfg"]["adapter_ratio"] == 0.25
    assert config["training"]["steps"] == 4 and config["training"]["data"]["root"] == "/data/DUTS-TR"
    assert config["metrics"]["metrics_csv"][-1]["val_S"] == 0.6125 and config["metrics"]["result"]["maxF"] == 0.55
    card = (out / "README.md").read_text()
    for text in ("# adapter_cbam", "**RANDOM INIT**", "sam2.1 hiera tiny", "/data/DUTS-TR", "4 steps, 2 epochs",
                 "S 0.6125, MAE 0.2500", "| 0.6000 | 0.7000 | 0.4000 | 0.2600 | 0.5500 |", "load_exported"):
        assert text in card, text


def test_loading_refuses_pickles_and_foreign_folders(make_run, tmp_path) -> None:
    out = export_model(make_run("decoder_only"), tmp_path / "export")
    sd = load_exported(out).state_dict()
    torch.save(sd, out / "model.safetensors")  # a pickle under the safetensors name
    with pytest.raises(SodError, match="a pickled PyTorch file, not safetensors"):
        load_exported(out)
    (out / "model.safetensors").rename(out / "model.pt")
    with pytest.raises(SodError, match="has no model.safetensors; model.pt are not loaded"):
        load_exported(out)
    (out / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{junk")
    with pytest.raises(SodError, match="not a safetensors file|not a valid safetensors file"):
        load_exported(out)
    (out / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SodError, match="not a sam2sod export config"):
        load_exported(out)
    with pytest.raises(SodError, match="it has no config.json"):
        load_exported(tmp_path)
    with pytest.raises(SodError, match="not a sam2sod run checkpoint"):
        export_model(out / "model.pt", tmp_path / "again")


def test_export_cli_output_guard_and_fine_tuning_from_an_export(make_run, tmp_path, capsys) -> None:
    from sam2sod.data.synthetic import make_synthetic
    from sam2sod.models import create_model
    from sam2sod.runs.config import load_config
    from sam2sod.runs.init_from import load_init_weights
    from sam2sod.train.stages import run_training

    run = make_run("lora", args={"rank": 2})
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "exp")]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "exp")]) == 0  # its own folder
    assert main(["export", "--checkpoint", str(run), "--out", str(run)]) == 2  # never into the run
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "sam2sod never writes into its inputs" in err and "is not empty and was not created by sam2sod" in err
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "other"), "--overwrite"]) == 0

    exported = load_exported(tmp_path / "exp").state_dict()
    target = create_model("lora", image_size=64, rank=2)  # a new LoRA run starts from the merged weights
    info = load_init_weights(target, tmp_path / "exp")
    assert info["copied"] == len(exported) and all(".lora_" in k for k in info["new"])
    key = "image_encoder.trunk.blocks.0.attn.qkv.weight"
    assert torch.equal(target.state_dict()[key], exported[key]) and key in target.extra_state_keys
    assert load_init_weights(create_model("lora", image_size=64, rank=2), run)["source"] == str(run / "best.pt")

    data = tmp_path / "ds"
    make_synthetic(data, n=6, size=64, seed=2)
    cfg = load_config(None, [f"data.root={data}", "data.train_count=4", "data.val_count=2", "model.method=lora",
                             "model.args.rank=2", "model.image_size=64", "optim.batch_size=2", "optim.max_steps=1",
                             "optim.epochs=1", "device=cpu", f"model.init_from={tmp_path / 'exp'}"])
    assert run_training(cfg, tmp_path / "tuned")["step"] == 1
