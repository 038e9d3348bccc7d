"""`sam2sod benchmark` with a video dataset: predicted with --video semantics, scored and resampled per sequence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sam2sod.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_benchmark_video_dataset_rows_say_per_sequence(tiny_run, video_ds, tmp_path, capsys) -> None:
    pred = tmp_path / "gt_as_pred"
    for seq in ("seqA", "seqB"):
        (pred / seq).mkdir(parents=True)
        for mask in sorted((video_ds / seq / "masks").glob("*.png")):
            (pred / seq / mask.name).write_bytes(mask.read_bytes())
    out = tmp_path / "bench"
    argv = ["benchmark", "--model", f"tiny={tiny_run}", "--pred", f"oracle={pred}", "--data", f"SYN={video_ds}",
            "--out", str(out), "--n-resamples", "20", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "SYN (per sequence)" in printed and "--skip-frames first-last" in printed
    assert sorted(p.name for p in (out / "pred" / "tiny" / "SYN").iterdir() if p.is_dir()) == ["seqA", "seqB"]
    scored = {p.name for p in (out / "scores" / "SYN" / "tiny").iterdir()}
    assert {"metrics.json", "sequences.csv", "frames.csv"} <= scored
    rows = list(csv.DictReader((out / "table.csv").open()))
    jf = {r["method"]: r for r in rows if r["metric"] == "JF"}
    assert set(jf) == {"tiny", "oracle"} and all(r["dataset"] == "SYN (per sequence)" for r in rows)
    assert float(jf["oracle"]["value"]) == pytest.approx(1.0)
    assert json.loads((out / "benchmark.json").read_text())["skip_frames"] == "first-last"
    assert main(argv) == 0  # a rerun reuses the predictions
    assert "cached predictions reused" in capsys.readouterr().err


def test_benchmark_video_refuses_image_only_options(video_ds, tmp_path, capsys, one_error_line, ds: Path) -> None:
    assert main(["benchmark", "--pred", f"p={tmp_path}", "--data", f"SYN={video_ds}", "--out", str(tmp_path / "o"),
                 "--split", "test"]) == 2
    assert "--split does not apply to video datasets" in one_error_line(capsys.readouterr().err)
    assert main(["benchmark", "--pred", f"p={tmp_path}", "--data", f"SYN={video_ds}", "--data", f"IMG={ds}",
                 "--out", str(tmp_path / "o")]) == 2
    assert "benchmark them in separate commands" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()
