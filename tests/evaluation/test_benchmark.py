"""`sam2sod benchmark` end to end on two tiny synthetic datasets with a trained model and a prediction folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.cli import main
from sam2sod.data.synthetic import make_synthetic
from sam2sod.runs.config import load_config
from sam2sod.train.stages import run_training

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bench")
    a, b = base / "setA", base / "setB"
    make_synthetic(a, n=6, size=48, seed=1)
    make_synthetic(b, n=5, size=40, seed=2)
    train_root = base / "train"
    make_synthetic(train_root, n=8, size=48, seed=3)
    run = base / "run"
    run_training(load_config(None, [f"data.root={train_root}", "data.train_count=6", "model.method=decoder_only",
                                    "model.image_size=64", "optim.batch_size=2", "optim.epochs=1",
                                    "optim.max_steps=1", "device=cpu"]), run)
    preds = base / "blur"  # a second "method": the GT blurred and noised, one subfolder per dataset
    rng = np.random.default_rng(0)
    for name, root in (("setA", a), ("setB", b)):
        (preds / name).mkdir(parents=True)
        for m in sorted((root / "masks").iterdir()):
            gt = np.asarray(Image.open(m), dtype=np.float32)
            noisy = np.clip(gt * 0.7 + rng.normal(0, 40, gt.shape) + 30, 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(preds / name / f"{m.stem}.png")
    return {"a": a, "b": b, "run": run, "preds": preds, "base": base}


def _args(s: dict[str, Path], out: Path) -> list[str]:
    return ["benchmark", "--model", f"ours={s['run']}", "--pred", f"blur={s['preds']}", "--data", f"setA={s['a']}",
            "--data", f"setB={s['b']}", "--out", str(out), "--workers", "1", "--n-resamples", "200",
            "--device", "cpu", "--metrics", "core,adpdice"]


def test_benchmark_writes_everything_and_reruns_without_model_work(setup, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "bench"
    assert main(_args(setup, out)) == 0
    for f in ("table.csv", "table.md", "table.tex", "pvalues.csv", "pvalues.md", "qualitative_setA.png",
              "qualitative_setB.png", "report.html",
              "benchmark.json", "curves/setA_pr.png", "curves/setA_f.png", "curves/setA_e.png", "curves/setB_pr.png",
              "pred/ours/setA/done.json", "scores/setB/metrics.json"):
        assert (out / f).is_file(), f
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert {r["method"] for r in rows} == {"ours", "blur"} and {r["dataset"] for r in rows} == {"setA", "setB"}
    assert {"Smeasure", "MAE", "maxFm", "adpdice"} <= {r["metric"] for r in rows}
    for r in rows:
        if r["ci_low"]:
            assert float(r["ci_low"]) - 1e-9 <= float(r["value"]) <= float(r["ci_high"]) + 1e-9
    assert all(r["p_value"] for r in rows if r["method"] == "blur" and r["metric"] == "MAE")
    md = (out / "table.md").read_text()
    assert "RANDOM INIT" in md and "**" in md and "↓" in md
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="curves' not in html
    # one captioned grid per dataset; the terminal gets aligned blocks, not the markdown table
    for name, n in (("setA", 6), ("setB", 5)):
        assert f"<h2>{name}: qualitative comparison</h2>" in html and f"{name} ({n} images): {n} rows" in html
    printed = capsys.readouterr().out
    assert "| Method |" not in printed and "\nsetA:\nmethod  Params  Inference ms" in printed
    done = json.loads((out / "pred" / "ours" / "setA" / "done.json").read_text())
    assert done["infer_runs"] == 5 and done["infer_ms"] > 0 and done["infer_ms_spread"] >= 0
    assert "infer_ms" not in json.loads((out / "pred" / "ours" / "setB" / "done.json").read_text())  # once per model
    info = json.loads((out / "benchmark.json").read_text())["inference"]["ours"]
    assert info["inference_ms"] == done["infer_ms"] and info["device"] == "cpu"
    assert "batch-1 forward passes after 2 warm-up passes" in md
    # numbers identical to `sam2sod score` on the same folders
    score_out = tmp_path / "score"
    assert main(["score", "--pred", f"blur={setup['preds'] / 'setB'}", "--pred",
                 f"ours={out / 'pred' / 'ours' / 'setB'}", "--gt", str(setup["b"] / "masks"), "--out", str(score_out),
                 "--workers", "1"]) == 0
    ref = json.loads((score_out / "metrics.json").read_text())
    for r in rows:
        if r["dataset"] == "setB" and r["metric"] in ref[r["method"]]:
            assert float(r["value"]) == pytest.approx(ref[r["method"]][r["metric"]], abs=1e-12), r
    # a second run does no model work
    import sam2sod.runs.checkpoints as ck

    calls = []
    real = ck.build_model_from_checkpoint
    monkeypatch.setattr(ck, "build_model_from_checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    import sam2sod.infer.inference as inf

    monkeypatch.setattr(inf, "predict_items", lambda *a, **k: pytest.fail("predicted again"))
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: pytest.fail("a plot was drawn again"))
    capsys.readouterr()
    assert main(_args(setup, out)) == 0
    assert capsys.readouterr().out.count("cached predictions reused") == 2
    assert calls == []  # not even built to count its parameters (done.json keeps the count)
    assert (out / "scores" / "setA" / "pr_curve.png").is_file() and (out / "curves" / "setB_e.png").is_file()


def test_benchmark_split_and_errors(setup, tmp_path, capsys) -> None:
    out = tmp_path / "split"
    args = ["benchmark", "--pred", f"blur={setup['preds'] / 'setA'}", "--data", f"setA={setup['a']}", "--out",
            str(out), "--split", "test", "--workers", "1"]
    assert main(args) == 2 and "--split needs a --model" in capsys.readouterr().err
    assert main(["benchmark", "--data", f"setA={setup['a']}", "--out", str(tmp_path / "x")]) == 2
    assert "at least one --model" in capsys.readouterr().err
    # with two datasets, a --pred folder must hold one subfolder per dataset
    assert main(["benchmark", "--pred", f"blur={setup['preds'] / 'setA'}", "--data", f"setA={setup['a']}", "--data",
                 f"setB={setup['b']}", "--out", str(tmp_path / "y"), "--workers", "1"]) == 2
    assert "no subfolder 'setA'" in capsys.readouterr().err
