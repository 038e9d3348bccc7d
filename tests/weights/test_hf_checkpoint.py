"""SAM2 weights in transformers' Sam2Model layout as `model.checkpoint`: the same model (and forward) as the same
weights in sam2's own format, one training step from them, the run reopened, `weights verify` naming each format,
and the file opened zero-shot."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic
from sam2sod.hf_format import image_path_keys, read_base_state_dict
from sam2sod.models import build_sam2_model, create_model

transformers = pytest.importorskip("transformers")  # in the dev extra
pytestmark = [pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")]
S = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """(transformers-format model.safetensors of a random Sam2Model, a sam2-format .pt with the same weights)."""
    from safetensors.torch import save_file
    from transformers import Sam2Config, Sam2Model

    cfg = Sam2Config()
    cfg.mask_decoder_config.dynamic_multimask_via_stability = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        hf = Sam2Model(cfg).eval()
        with torch.no_grad():  # transformers zero-initialises some tensors: randomise every float one
            for key, value in hf.state_dict().items():
                if value.is_floating_point():
                    one = 1.0 if "norm" in key and key.endswith("weight") else 0.0
                    value.copy_(torch.randn_like(value) * 0.05 + one)
            hf.prompt_encoder.shared_embedding.positional_embedding.copy_(hf.shared_image_embedding.positional_embedding)
    folder = tmp_path_factory.mktemp("hf")
    hf_path = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, hf_path)
    converted, fmt = read_base_state_dict(hf_path)
    assert fmt == "transformers"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sam = build_sam2_model("sam2.1", "tiny", S, seed=3)  # memory modules: random, unused by still images
    sam.load_state_dict(converted, strict=False)
    pt_path = folder / "same_weights_sam2.pt"
    torch.save({"model": sam.state_dict()}, pt_path)
    return hf_path, pt_path


def test_either_format_builds_the_same_model(files):
    hf_path, pt_path = files
    images = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(0))
    a = create_model("lora", image_size=S, checkpoint=hf_path)
    b = create_model("lora", image_size=S, checkpoint=pt_path)
    assert a.model_is_pretrained and a.base_info["format"] == "transformers" and "format" not in b.base_info
    sa, sb = image_path_keys(a.state_dict()), image_path_keys(b.state_dict())
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with torch.no_grad():
        torch.testing.assert_close(a(images)["logits"], b(images)["logits"], rtol=0, atol=0)


def test_one_training_step_from_either_format_gives_the_same_model(files, tmp_path):
    from sam2sod import load_model
    from sam2sod.runs.config import load_config
    from sam2sod.train.stages import run_training

    make_synthetic(tmp_path / "ds", n=4, size=48, seed=5)
    overrides = {"model.method": "lora", "model.image_size": str(S), "data.root": str(tmp_path / "ds"),
                 "data.train_count": "2", "data.val_count": "2", "optim.batch_size": "2", "optim.epochs": "1",
                 "optim.max_steps": "1", "optim.warmup_steps": "0", "device": "cpu", "val_batch_size": "2",
                 "log_every": "1"}
    images = torch.randn(1, 3, S, S, generator=torch.Generator().manual_seed(1))
    logits = []
    for name, path in zip(("hf", "pt"), files, strict=True):
        run_training(load_config(None, [f"{k}={v}" for k, v in {**overrides, "model.checkpoint": str(path)}.items()]),
                     tmp_path / name)
        loaded = load_model(tmp_path / name, "cpu")
        assert loaded.pretrained and loaded.checkpoint["step"] == 1
        assert loaded.model.base_info.get("format", "sam2") == ("transformers" if name == "hf" else "sam2")
        with torch.no_grad():
            logits.append(loaded.model(images)["logits"])
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-6)


def test_weights_verify_names_each_format(files, tmp_path, capsys, one_error_line):
    from safetensors.torch import save_file

    hf_path, pt_path = files
    assert main(["weights", "verify", str(hf_path)]) == 0
    assert "format transformers" in capsys.readouterr().out
    assert main(["weights", "verify", str(pt_path)]) == 0
    assert "format sam2" in capsys.readouterr().out
    export = tmp_path / "export"
    export.mkdir()
    save_file({"image_encoder.trunk.pos_embed": torch.zeros(1)}, export / "model.safetensors",
              metadata={"sam2sod": "sam2sod-export/1"})
    assert main(["weights", "verify", str(export / "model.safetensors")]) == 2
    assert "(format sam2sod export)" in one_error_line(capsys.readouterr().err)


def test_a_transformers_file_opens_zero_shot(files, tmp_path, capsys):
    hf_path, _ = files
    make_synthetic(tmp_path / "ds", n=2, size=40, seed=6)
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(hf_path), "--zero-shot", "prompt-free", "--image-size", str(S),
                 "--input", str(tmp_path / "ds" / "images"), "--out", str(out), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "with zero-shot SAM2 (prompt-free)" in capsys.readouterr().out and len(list(out.glob("*.png"))) == 2
