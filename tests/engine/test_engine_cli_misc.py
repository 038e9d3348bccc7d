"""`sam2sod info` and a shrunken `sam2sod quickstart` (the README's first command, at toy size)."""

from __future__ import annotations

import json

import pytest

from sam2sod.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_info_prints_parameter_groups(capsys):
    assert main(["info", "--config", "quickstart"]) == 0
    out = capsys.readouterr().out
    for group in ("image_encoder", "adapters", "cbam", "prompt_encoder", "mask_decoder", "all"):
        assert group in out, group
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("group")) + 1
    groups = [[int(v.replace(",", "")) for v in line.split()[1:3]] for line in lines[start:-1]]
    total, trainable = (int(v.replace(",", "")) for v in lines[-1].split()[1:3])
    assert lines[-1].startswith("all") and 0 < trainable < total
    assert sum(g[0] for g in groups) == total and sum(g[1] for g in groups) == trainable


def test_info_bad_method(capsys):
    assert main(["info", "--set", "model.method=nope"]) == 2
    assert "adapter_cbam" in capsys.readouterr().err


def test_quickstart_learns_on_toy_size(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--n", "24", "--size", "64", "--workers", "1",
                 "--set", "model.image_size=64", "--set", "data.train_count=16", "--set", "optim.epochs=2"]) == 0
    text = capsys.readouterr().out
    assert "before -> after training" in text
    metrics = json.loads((out / "eval" / "val" / "metrics.json").read_text())["adapter_cbam"]
    assert 0.0 <= metrics["Smeasure"] <= 1.0 and "RANDOM INIT" in metrics["note"]
    assert (out / "run" / "best.pt").is_file() and (out / "eval" / "val" / "pr_curve.png").is_file()
