"""Score folders of saliency maps against ground-truth masks (the `sam2sod score` command).

Predictions are matched to masks by file stem; every mask needs a prediction. A prediction of another
size is resized (bilinear) to the mask's size, as the field's evaluation tools do. Pairs are scored in
worker processes; each returns a small `PairScores` that the parent aggregates, so the numbers are
identical to a sequential run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from sam2sod.atomic import atomic_write_text
from sam2sod.data.discovery import list_images
from sam2sod.data.io import load_mask
from sam2sod.errors import SodError, format_names
from sam2sod.metrics import PairScores, aggregate, pair_scores

METRIC_KEYS = ("Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm")
SHORT_NAMES = {"Smeasure": "S", "wFmeasure": "wF", "MAE": "MAE", "adpEm": "adpE", "meanEm": "meanE",
               "maxEm": "maxE", "adpFm": "adpF", "meanFm": "meanF", "maxFm": "maxF"}


@dataclass
class MethodResult:
    """Scores of one method on one dataset: aggregated metrics, curves and per-image rows."""

    name: str
    metrics: dict[str, float]
    curves: dict[str, np.ndarray]
    per_image: list[dict] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)


def match_predictions(pred_dir: Path, gt_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair every mask in `gt_dir` with the prediction of the same stem.

    Returns (pairs sorted by name, names of predictions that have no mask). A mask without a
    prediction is an error listing the names.
    """
    preds = list_images(pred_dir)
    gts = list_images(gt_dir)
    if not gts:
        raise SodError(f"no masks found in {gt_dir}")
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise SodError(
            f"{len(missing)} of {len(gts)} masks in {gt_dir} have no prediction in {pred_dir}: "
            f"{format_names(missing)}"
        )
    extra = sorted(set(preds) - set(gts))
    return [(n, preds[n], gts[n]) for n in sorted(gts)], extra


def load_prediction(path: Path, size_hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Read a saliency map as uint8 HxW, resized bilinearly to `size_hw` if needed."""
    pred = load_mask(path)
    if pred.shape == tuple(size_hw):
        return pred, False
    resized = Image.fromarray(pred).resize((size_hw[1], size_hw[0]), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8), True


def _score_one(item: tuple[str, Path, Path]) -> tuple[str, PairScores, bool]:
    name, pred_path, gt_path = item
    gt = load_mask(gt_path)
    pred, resized = load_prediction(pred_path, gt.shape)
    return name, pair_scores(pred, gt), resized


def _run_pairs(items: Sequence[tuple[str, Path, Path]], workers: int, desc: str,
               progress: bool) -> Iterator[tuple[str, PairScores, bool]]:
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    try:
        if workers <= 1 or len(items) < 8:
            for item in items:
                yield _score_one(item)
                bar.update()
            return
        chunk = max(1, min(32, len(items) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for out in pool.map(_score_one, items, chunksize=chunk):
                yield out
                bar.update()
    finally:
        bar.close()


def score_method(name: str, pred_dir: Path, gt_dir: Path, workers: int | None = None,
                 progress: bool = True) -> MethodResult:
    """Score one folder of predictions against `gt_dir` (see module docstring)."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for label, d in (("prediction", pred_dir), ("mask", gt_dir)):
        if not d.is_dir():
            raise SodError(f"{label} folder {d} does not exist")
    items, extra = match_predictions(pred_dir, gt_dir)
    if extra:
        print(f"warning: {name}: {len(extra)} predictions in {pred_dir} have no mask and are ignored: "
              f"{format_names(extra)}", file=sys.stderr)
    workers = os.cpu_count() or 1 if workers is None else workers
    scores, rows, resized = [], [], []
    for img_name, s, was_resized in _run_pairs(items, workers, name, progress):
        scores.append(s)
        rows.append({"name": img_name, **s.per_image_row()})
        if was_resized:
            resized.append(img_name)
    if resized:
        print(f"warning: {name}: {len(resized)} predictions differ in size from their mask and were resized "
              f"(bilinear) to the mask's size: {format_names(resized)}", file=sys.stderr)
    agg = aggregate(scores)
    metrics = {k: float(agg[k]) for k in METRIC_KEYS}
    curves = {k: np.asarray(agg[k]) for k in ("precision", "recall", "fm_curve", "em_curve")}
    return MethodResult(name, metrics, curves, rows, resized)


def format_table(results: Sequence[MethodResult], notes: dict[str, str] | None = None) -> str:
    """An aligned plain-text table, one row per method."""
    head = ["method"] + [SHORT_NAMES[k] for k in METRIC_KEYS]
    rows = [[r.name] + [f"{r.metrics[k]:.4f}" for k in METRIC_KEYS] for r in results]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths, strict=True)))
    lines = [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, rows)]
    for name, note in (notes or {}).items():
        lines.append(f"note: {name}: {note}")
    return "\n".join(lines)


def write_outputs(results: Sequence[MethodResult], out: Path, notes: dict[str, str] | None = None) -> None:
    """Write metrics.json, per_image.csv, curves.csv, pr_curve.png and f_curve.png into `out`."""
    from sam2sod.engine.plots import plot_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {r.name: dict(r.metrics) for r in results}
    for name, note in (notes or {}).items():
        payload.setdefault(name, {})["note"] = note
    atomic_write_text(out / "metrics.json", json.dumps(payload, indent=2) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "name", "S", "MAE", "wF", "adpF", "E"])
    for r in results:
        for row in r.per_image:
            w.writerow([r.name, row["name"]] + [f"{row[k]:.6f}" for k in ("S", "MAE", "wF", "adpF", "E")])
    atomic_write_text(out / "per_image.csv", buf.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "threshold", "precision", "recall", "fmeasure", "emeasure"])
    for r in results:
        c = r.curves
        for t in range(len(c["precision"])):
            w.writerow([r.name, t] + [f"{c[k][t]:.6f}" for k in ("precision", "recall", "fm_curve", "em_curve")])
    atomic_write_text(out / "curves.csv", buf.getvalue())
    plot_curves(results, out)


def score(preds: dict[str, Path], gt_dir: Path, out: Path | None = None, workers: int | None = None,
          progress: bool = True, notes: dict[str, str] | None = None) -> list[MethodResult]:
    """Score each named prediction folder against `gt_dir`; write outputs to `out` when given."""
    results = [score_method(name, d, gt_dir, workers, progress) for name, d in preds.items()]
    if out is not None:
        write_outputs(results, out, notes)
    return results


def parse_pred_args(values: Sequence[str]) -> dict[str, Path]:
    """`["DIR"]` or `["A=DIR1", "B=DIR2"]` -> {name: folder}; a bare DIR is named after the folder."""
    preds: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = Path(v).name or v, v
        if not name or not path:
            raise SodError(f"--pred {v!r}: expected DIR or NAME=DIR")
        if name in preds:
            raise SodError(f"--pred: method name {name!r} given twice")
        preds[name] = Path(path)
    return preds

