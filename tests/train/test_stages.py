"""Multi-stage runs and `model.init_from` (issue 13: Tuned SAM in the report's two stages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic
from sam2sod.errors import SodError
from sam2sod.models import create_model
from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint
from sam2sod.runs.config import load_config
from sam2sod.runs.init_from import load_init_weights
from sam2sod.train.stages import run_training, stage_configs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DEC = "sam_mask_decoder.output_hypernetworks_mlps.0.layers.0.weight"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stages") / "ds"
    make_synthetic(root, n=10, size=64, seed=4)
    return root


def _overrides(root: Path, *extra: str) -> list[str]:
    return [f"data.root={root}", "data.train_count=6", "data.val_count=2", "model.image_size=64",
            "optim.batch_size=2", "optim.epochs=1", "optim.max_steps=2", "optim.lr=3e-3", "optim.warmup_steps=1",
            "device=cpu", "val_batch_size=4", *extra]


def test_stage_settings_merge_and_are_checked(data_root) -> None:
    cfg = load_config("tuned_sam_two_stage", _overrides(data_root, "model.args.tb_ratio=0.25"))
    (n1, c1), (n2, c2) = stage_configs(cfg)
    assert (n1, n2) == ("decoder", "side")
    assert c1.model.args == {"tuned_blocks": 0, "use_msr": False, "use_fad": False, "tb_ratio": 0.25}
    assert c2.model.args == {"tuned_blocks": 12, "use_msr": True, "use_fad": True, "tb_ratio": 0.25}
    assert not c1.stages and not c2.stages and not c1.prompts.enabled
    for bad, msg in (([{"name": "a"}, {"name": "a"}], "unique"), ([{"name": "../x"}], "invalid stage name"),
                     ([{"name": "a", "set": {"optim.nosuch": 1}}], r"stages\[0\] \(a\).*nosuch"),
                     ([{"name": "a", "set": {"stages": []}}], "nested"), (["a"], "mapping")):
        cfg.stages = bad
        with pytest.raises(SodError, match=msg):
            stage_configs(cfg)


def test_two_stage_tuned_sam_run(data_root, tmp_path, capsys) -> None:
    run = tmp_path / "two"
    cfg = load_config("tuned_sam_two_stage", _overrides(data_root, "model.args.tuned_blocks=6"))
    summary = run_training(cfg, run)
    assert summary["step"] == 4 and [s["name"] for s in summary["stages"]] == ["decoder", "side"]
    for f in ("decoder/best.pt", "decoder/stage.json", "side/best.pt", "side/metrics.csv", "best.pt",
              "stages.json", "config.yaml"):
        assert (run / f).is_file(), f
    first = read_checkpoint(run / "decoder" / "best.pt")
    final = read_checkpoint(run)  # the run folder -> the last stage's best
    assert final["config"]["model"]["init_from"] == str((run / "decoder" / "best.pt").resolve())
    m1 = build_model_from_checkpoint(first, torch.device("cpu"))
    m2 = build_model_from_checkpoint(final, torch.device("cpu"))
    fresh = build_model_from_checkpoint(first, torch.device("cpu"))
    # stage 1 trained the mask decoder; stage 2 froze it and kept exactly those weights (saved in its checkpoint)
    dec1, dec2 = m1.state_dict()[DEC], m2.state_dict()[DEC]
    assert torch.equal(dec1, dec2)
    assert not m2.sam_mask_decoder.output_hypernetworks_mlps[0].layers[0].weight.requires_grad
    assert m2.image_encoder.trunk.tuned_blocks is not None and m2.fad is not None
    assert torch.equal(fresh.state_dict()[DEC], dec1)
    # resumable as a whole: finished stages are skipped
    (run / "side" / "stage.json").unlink()
    capsys.readouterr()
    again = run_training(None, run, resume=True)
    out = capsys.readouterr().out
    assert "decoder: finished earlier, skipped" in out and again["step"] == 4
    assert main(["train", "--resume", str(run)]) == 0


def test_resume_set_reaches_the_interrupted_stage(data_root, tmp_path) -> None:
    """`--resume RUN --set optim.max_steps=3` continues the stage that was not finished with 3 steps (and records
    the change there); a finished stage is not touched."""
    run = tmp_path / "resumed"
    cfg = load_config("tuned_sam_two_stage", _overrides(data_root, "model.args.tuned_blocks=2"))
    run_training(cfg, run)
    (run / "side" / "stage.json").unlink()  # as if the run stopped inside stage 2
    before = read_checkpoint(run / "decoder" / "last.pt")["step"]
    again = run_training(None, run, resume=True, overrides=["optim.max_steps=3"])
    assert [s["step"] for s in again["stages"]] == [2, 3]
    assert read_checkpoint(run / "side" / "last.pt")["step"] == 3
    assert read_checkpoint(run / "decoder" / "last.pt")["step"] == before
    assert "optim.max_steps: 2 -> 3" in (run / "side" / "config_changes.txt").read_text()
    assert "max_steps: 3" in (run / "side" / "config.yaml").read_text()


def test_init_from_fine_tunes_a_finished_run(data_root, tmp_path) -> None:
    src = tmp_path / "src"
    run_training(load_config(None, _overrides(data_root, "model.method=decoder_only")), src)
    a = build_model_from_checkpoint(read_checkpoint(src), torch.device("cpu")).state_dict()
    target = create_model("adapter_cbam", image_size=64, seed=0)
    assert not torch.equal(target.state_dict()[DEC], a[DEC])
    info = load_init_weights(target, src)
    b = target.state_dict()
    assert torch.equal(a[DEC], b[DEC]) and info["copied"] == len(a)  # every source tensor fits
    assert info["new"] and all(k.startswith("image_encoder.trunk.") for k in info["new"])  # adapters + CBAMs
    dst = tmp_path / "dst"
    summary = run_training(load_config(None, _overrides(data_root, "model.method=adapter_cbam",
                                                        f"model.init_from={src}")), dst)
    assert summary["step"] == 2 and read_checkpoint(dst)["config"]["model"]["init_from"] == str(src)
    bad = load_config(None, _overrides(data_root, "model.method=u2netp", f"model.init_from={src}"))
    with pytest.raises(SodError, match="none of its"):
        run_training(bad, tmp_path / "bad")


def test_evaluate_split_scores_only_the_held_out_names(data_root, tmp_path, capsys) -> None:
    run = tmp_path / "r"
    run_training(load_config(None, _overrides(data_root, "model.method=decoder_only")), run)
    out = tmp_path / "ev"
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data_root), "--out", str(out), "--split",
                 "test", "--device", "cpu", "--workers", "1"]) == 0
    preds = sorted(p.stem for p in (out / data_root.name / "pred").glob("*.png"))
    names = sorted(p.stem for p in (data_root / "images").iterdir())
    assert preds == names[8:]  # 6 train + 2 val, then the 2 held-out names
    assert json.loads((out / "summary.json").read_text())["split"] == "test"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data_root), "--out", str(tmp_path / "all"),
                 "--device", "cpu", "--workers", "1"]) == 0
    assert "is the root this run trained on" in capsys.readouterr().err
    nosplit = tmp_path / "nosplit"
    run_training(load_config(None, _overrides(data_root, "model.method=decoder_only", "data.val_count=null")), nosplit)
    assert main(["evaluate", "--checkpoint", str(nosplit), "--data", str(data_root), "--out", str(tmp_path / "x"),
                 "--split", "test"]) == 2
    assert "holds out no test split" in capsys.readouterr().err
