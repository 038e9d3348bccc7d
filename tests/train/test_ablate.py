"""`sam2sod ablate`: grid parsing, a 2-cell toy grid, resumability (finished cells are skipped)."""

from __future__ import annotations

import csv

import pytest

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic
from sam2sod.errors import SodError
from sam2sod.train.ablate import cell_name, parse_grid

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_parse_grid_and_names():
    grid = parse_grid(["model.method=lora,full", "model.args.tuned_blocks=6,9"])
    assert grid == [("model.method", ["lora", "full"]), ("model.args.tuned_blocks", [6, 9])]
    assert cell_name([("model.method", "lora"), ("optim.lr", 0.001)]) == "method=lora__lr=0.001"
    with pytest.raises(SodError, match="KEY=V1,V2"):
        parse_grid(["model.method"])


def test_ablate_runs_grid_and_skips_finished_cells(tmp_path, capsys):
    data = tmp_path / "ds"
    make_synthetic(data, n=10, size=64, seed=2)
    args = ["ablate", "--grid", "model.method=adapter_cbam,decoder_only", "--out", str(tmp_path / "abl")]
    for o in (f"data.root={data}", "data.train_count=6", "data.val_count=2", "model.image_size=64",
              "optim.batch_size=2", "optim.epochs=1", "optim.max_steps=2", "device=cpu"):
        args += ["--set", o]
    assert main(args) == 0
    rows = list(csv.DictReader((tmp_path / "abl" / "ablation.csv").open()))
    assert [r["cell"] for r in rows] == ["method=adapter_cbam", "method=decoder_only"]
    for r in rows:
        assert 0 <= float(r["S"]) <= 1 and 0 <= float(r["MAE"]) <= 1 and float(r["infer_ms"]) > 0
        assert 0 < int(r["trainable_params"]) < int(r["total_params"]) and r["steps"] == "2"
    assert int(rows[0]["trainable_params"]) > int(rows[1]["trainable_params"])  # adapters + CBAM on top
    assert {r["split"] for r in rows} == {"test"}
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert md.startswith("Scored prompt-free on the held-out test split (2 images; not used for training")
    assert "| cell | S |" in md and md.count("\n") == 6
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
