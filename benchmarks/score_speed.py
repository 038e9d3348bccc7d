"""Speed of `sam2sod score` (parallel workers) vs a plain sequential py_sod_metrics loop, in one run.

Scores the 700 ECSSD masks of ../shared/data/ecssd-700 against blurred copies of themselves, checks the
two give the same numbers (1e-6) and prints the speed ratio. Usage:
    .venv/bin/python benchmarks/score_speed.py [--data ../shared/data/ecssd-700] [--workers N] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

KEYS = ("Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm")


def make_predictions(mask_dir: Path, out: Path, limit: int | None) -> list[str]:
    names = sorted(p.stem for p in mask_dir.glob("*.png"))[:limit]
    out.mkdir(parents=True, exist_ok=True)
    for n in names:
        m = Image.open(mask_dir / f"{n}.png").convert("L")
        m.filter(ImageFilter.GaussianBlur(radius=4)).save(out / f"{n}.png")
    return names


def pysod_sequential(names: list[str], pred_dir: Path, gt_dir: Path) -> dict[str, float]:
    import py_sod_metrics as psm

    fm, wfm, sm, em, mae = psm.Fmeasure(), psm.WeightedFmeasure(), psm.Smeasure(), psm.Emeasure(), psm.MAE()
    for n in names:
        gt = np.asarray(Image.open(gt_dir / f"{n}.png").convert("L"))
        pred = np.asarray(Image.open(pred_dir / f"{n}.png").convert("L"))
        for m in (fm, wfm, sm, em, mae):
            m.step(pred=pred, gt=gt)
    f, e = fm.get_results()["fm"], em.get_results()["em"]
    return {"Smeasure": sm.get_results()["sm"], "wFmeasure": wfm.get_results()["wfm"],
            "MAE": mae.get_results()["mae"], "adpEm": e["adp"], "meanEm": e["curve"].mean(),
            "maxEm": e["curve"].max(), "adpFm": f["adp"], "meanFm": f["curve"].mean(), "maxFm": f["curve"].max()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ecssd-700")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--limit", type=int, default=None, help="use only the first N masks")
    args = ap.parse_args()
    gt_dir = args.data / "masks"
    if not gt_dir.is_dir():
        print(f"error: {gt_dir} not found (pass --data)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = make_predictions(gt_dir, tmp / "pred", args.limit)
        gt_sub = tmp / "gt"
        gt_sub.mkdir()
        for n in names:
            os.symlink((gt_dir / f"{n}.png").resolve(), gt_sub / f"{n}.png")
        print(f"{len(names)} masks from {gt_dir}, predictions = Gaussian-blurred masks (radius 4)")

        t0 = time.perf_counter()
        ref = pysod_sequential(names, tmp / "pred", gt_sub)
        t_ref = time.perf_counter() - t0

        exe = Path(sys.executable).with_name("sam2sod")
        cmd = [str(exe), "score", "--pred", f"blur={tmp / 'pred'}", "--gt", str(gt_sub), "--out", str(tmp / "out"),
               "--workers", str(args.workers), "--no-progress"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        t_ours = time.perf_counter() - t0

        import json

        ours = json.loads((tmp / "out" / "metrics.json").read_text())["blur"]
    worst = max(abs(ours[k] - ref[k]) for k in KEYS)
    print(f"{'metric':<10} {'sam2sod':>12} {'py_sod_metrics':>15}")
    for k in KEYS:
        print(f"{k:<10} {ours[k]:>12.6f} {ref[k]:>15.6f}")
    print(f"max abs difference: {worst:.2e} ({'agree' if worst < 1e-6 else 'DISAGREE'})")
    print(f"py_sod_metrics sequential: {t_ref:.2f} s; sam2sod score (--workers {args.workers}, whole CLI "
          f"incl. start-up and writing outputs): {t_ours:.2f} s")
    print(f"speed ratio: {t_ref / t_ours:.2f}x (target >= 1.7x on 2 cores)")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
