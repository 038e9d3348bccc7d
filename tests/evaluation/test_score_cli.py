"""`sam2sod score` end to end: outputs, parity, parallel == sequential, and every error it reports."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.apps.quickstart import degrade_mask  # noqa: F401
from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "pysodmetrics-examples"
KEYS = ["Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(mask dir, prediction dir A, prediction dir B) for 12 synthetic pairs at 48 px."""
    root = tmp_path_factory.mktemp("score")
    make_synthetic(root / "ds", n=12, size=48, seed=3)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir()
        for p in sorted((root / "ds" / "masks").glob("*.png")):
            m = np.asarray(Image.open(p).convert("L"))
            Image.fromarray(degrade_mask(m, rng)).save(root / name / p.name)
    return root / "ds" / "masks", root / "a", root / "b"


def test_score_writes_all_outputs(dataset, tmp_path, capsys):
    gt, a, b = dataset
    out = tmp_path / "out"
    assert main(["score", "--pred", f"A={a}", "--pred", f"B={b}", "--gt", str(gt), "--out", str(out),
                 "--workers", "1", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "method" in table and "maxF" in table and "\nA " in table and "\nB " in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"A", "B"}
    for m in metrics.values():
        assert set(m) == set(KEYS)
        assert all(0.0 <= v <= 1.0 for v in m.values())
    assert metrics["A"] != metrics["B"]
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 24 and set(rows[0]) == {"method", "name", "S", "MAE", "wF", "adpF", "E"}
    mae_a = np.mean([float(r["MAE"]) for r in rows if r["method"] == "A"])
    assert mae_a == pytest.approx(metrics["A"]["MAE"], abs=1e-6)
    curves = list(csv.DictReader((out / "curves.csv").open()))
    assert len(curves) == 2 * 256
    max_f = max(float(r["fmeasure"]) for r in curves if r["method"] == "B")
    assert max_f == pytest.approx(metrics["B"]["maxFm"], abs=1e-6)
    for png in ("pr_curve.png", "f_curve.png", "e_curve.png"):
        with Image.open(out / png) as im:
            assert im.size[0] > 300 and im.size[1] > 300
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_parallel_equals_sequential(dataset, tmp_path):
    gt, a, _ = dataset
    for w in (1, 2):
        assert main(["score", "--pred", str(a), "--gt", str(gt), "--out", str(tmp_path / f"w{w}"),
                     "--workers", str(w), "--no-progress"]) == 0
    one = json.loads((tmp_path / "w1" / "metrics.json").read_text())
    two = json.loads((tmp_path / "w2" / "metrics.json").read_text())
    assert one == two and set(one) == {"a"}


def test_parity_with_pysodmetrics_golden_values(tmp_path):
    versions = json.loads((EXAMPLES / "version_performance.json").read_text())
    assert main(["score", "--pred", f"ex={EXAMPLES / 'preds'}", "--gt", str(EXAMPLES / "masks"),
                 "--out", str(tmp_path), "--no-progress"]) == 0
    ours = json.loads((tmp_path / "metrics.json").read_text())["ex"]
    for key in KEYS:
        latest = [v[key] for v in versions.values() if key in v][-1]
        assert ours[key] == pytest.approx(latest, abs=1e-6), key


def test_missing_prediction_is_an_error(dataset, tmp_path, capsys):
    gt, a, _ = dataset
    partial = tmp_path / "partial"
    shutil.copytree(a, partial)
    removed = sorted(partial.glob("*.png"))[:3]
    for p in removed:
        p.unlink()
    assert main(["score", "--pred", str(partial), "--gt", str(gt), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 3 of 12 masks") and "Traceback" not in err
    assert all(p.stem in err for p in removed)


def test_other_size_prediction_is_resized_with_one_warning(dataset, tmp_path, capsys):
    gt, a, _ = dataset
    big = tmp_path / "big"
    shutil.copytree(a, big)
    first = sorted(big.glob("*.png"))[0]
    with Image.open(first) as im:
        im.resize((96, 96), Image.BILINEAR).save(first)
    assert main(["score", "--pred", str(big), "--gt", str(gt), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "resized" in warnings[0] and first.stem in warnings[0]


@pytest.mark.parametrize("problem", ["no_gt_dir", "empty_gt", "bad_pred_arg", "unreadable_pred", "workers"])
def test_bad_input_exits_2_with_one_line(dataset, tmp_path, capsys, problem):
    gt, a, _ = dataset
    args = ["score", "--pred", str(a), "--gt", str(gt), "--no-progress"]
    expected = {"no_gt_dir": "does not exist", "empty_gt": str(tmp_path), "bad_pred_arg": "NAME=DIR",
                "unreadable_pred": "broken", "workers": "--workers"}[problem]
    if problem == "no_gt_dir":
        args[4] = str(tmp_path / "nope")
    elif problem == "empty_gt":
        args[4] = str(tmp_path)
    elif problem == "bad_pred_arg":
        args[2] = "=" + str(a)
    elif problem == "unreadable_pred":
        broken = tmp_path / "broken"
        shutil.copytree(a, broken)
        victim = sorted(broken.glob("*.png"))[5]
        victim.write_bytes(victim.read_bytes()[:40])
        args[2] = str(broken)
        expected = victim.name
    elif problem == "workers":
        args += ["--workers", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err


def test_make_synthetic_cli(tmp_path, capsys):
    assert main(["make-synthetic", str(tmp_path / "s"), "--n", "5", "--size", "32", "--seed", "1"]) == 0
    assert len(list((tmp_path / "s" / "masks").iterdir())) == 5
    assert len(list((tmp_path / "s" / "images").iterdir())) == 5
    assert main(["make-synthetic", str(tmp_path / "t"), "--n", "0"]) == 2
