"""Outputs of video scoring, and sequence-level resampling for benchmark tables.

:func:`write_video_scores` writes, atomically, into an output folder:

* ``metrics.json``: the dataset values (mean over sequences), the frame-pooled values, the skip rule, the
  averaging rule, the J / F settings, the flicker definition and the frame counts (scored / skipped).
* ``sequences.csv``: one row per sequence and metric: ``sequence, metric, value, frames_scored, skip_frames``.
* ``frames.csv``: one row per scored frame: ``sequence, frame, S, MAE, wF, adpF, E, J, F, skip_frames``
  (``E`` is the adaptive E-measure, as in the image ``per_image.csv``).
* ``curves.csv``: the curves averaged over frames, then sequences: ``threshold, precision, recall,
  fmeasure, emeasure`` (256 rows, threshold 255 first).

:func:`sequence_image_scores` turns :class:`~sam2sod.metrics.video.VideoScores` into the
:class:`~sam2sod.report.stats.ImageScores` of :mod:`sam2sod.report.stats` with one row per *sequence*, so
its bootstrap intervals and paired tests resample sequences, not frames; :func:`bootstrap_sequences` is
that bootstrap.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sam2sod.atomic import atomic_write_text
from sam2sod.metrics.davis import BOUND_TH, THRESHOLD
from sam2sod.metrics.video import SEQUENCE_KEYS, SKIP_RULES, VideoScores
from sam2sod.metrics.video_stability import FLICKER_DEFINITION
from sam2sod.names import inside
from sam2sod.report.stats import CURVE_METRICS, ImageScores, Interval, bootstrap_cis

__all__ = ["AVERAGING", "TABLE_COLUMNS", "VIDEO_FILES", "bootstrap_sequences", "format_video_table",
           "sequence_image_scores", "video_metrics_payload", "write_video_scores"]

#: The files `write_video_scores` writes.
VIDEO_FILES = ("metrics.json", "sequences.csv", "frames.csv", "curves.csv")
AVERAGING = ("per-frame scores are averaged within each sequence; the dataset value is the mean over sequences "
             "(DAVSOD toolkit main.m); maxFm/meanFm/maxEm/meanEm are the max/mean of the F/E curve averaged over "
             "each sequence's frames, then over sequences; JF = (J + F) / 2")
_FRAME_COLUMNS = ("S", "MAE", "wF", "adpF", "E", "J", "F")
#: Columns of `format_video_table`: header -> metric key.
TABLE_COLUMNS = {"S": "Smeasure", "wF": "wFmeasure", "MAE": "MAE", "adpE": "adpEm", "maxE": "maxEm", "adpF": "adpFm",
                 "maxF": "maxFm", "J": "J", "F": "F", "J&F": "JF", "flicker": "flicker"}


def _number(value: float) -> float | None:
    """JSON-safe float (NaN -> null)."""
    return None if not math.isfinite(value) else float(value)


def video_metrics_payload(scores: VideoScores) -> dict:
    """The content of metrics.json (see the module docstring)."""
    return {
        "skip_frames": scores.skip_frames,
        "skip_rule": f"not scored: {SKIP_RULES[scores.skip_frames]} of each sequence",
        "averaging": AVERAGING,
        "metrics": {k: _number(v) for k, v in scores.values.items()},
        "pooled_over_frames": {k: _number(v) for k, v in scores.pooled.items()},
        "jf": {"threshold": THRESHOLD, "bound_th": BOUND_TH},
        "flicker": FLICKER_DEFINITION,
        "counts": scores.counts(),
        "sequences_without_scored_frames": scores.unscored,
        "dataset": str(scores.dataset_root) if scores.dataset_root else None,
        "layout": scores.layout or None,
        "predictions": str(scores.pred_root) if scores.pred_root else None,
    }


def _csv(rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.6f}"


def _sequence_rows(scores: VideoScores) -> list[list[object]]:
    rows: list[list[object]] = [["sequence", "metric", "value", "frames_scored", "skip_frames"]]
    for seq in scores.scored:
        values = seq.values
        rows += [[seq.name, k, _fmt(values[k]), seq.n_scored, scores.skip_frames] for k in SEQUENCE_KEYS]
    return rows


def _frame_rows(scores: VideoScores) -> list[list[object]]:
    rows: list[list[object]] = [["sequence", "frame", *_FRAME_COLUMNS, "skip_frames"]]
    for seq in scores.scored:
        for row in seq.frame_rows():
            rows.append([seq.name, row["frame"], *(_fmt(row[k]) for k in _FRAME_COLUMNS), scores.skip_frames])
    return rows


def _curve_rows(scores: VideoScores) -> list[list[object]]:
    c = scores.curves
    rows: list[list[object]] = [["threshold", "precision", "recall", "fmeasure", "emeasure"]]
    for t in range(len(c["precision"])):
        rows.append([t, *(_fmt(float(c[k][t])) for k in ("precision", "recall", "fm_curve", "em_curve"))])
    return rows


def format_video_table(results: Mapping[str, VideoScores]) -> str:
    """An aligned plain-text table, one row per method ({method: scores}), then the rule lines.

    The last lines state the averaging and each distinct skip rule with the frames scored / skipped.
    """
    head = ["method", *TABLE_COLUMNS]
    rows = [[name, *(f"{s.values[k]:.4f}" if math.isfinite(s.values[k]) else "-" for k in TABLE_COLUMNS.values())]
            for name, s in results.items()]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
             for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, s in results.items():
        c = s.counts()
        lines.append(f"note: {name}: mean over {c['sequences_scored']} sequences; --skip-frames {s.skip_frames} "
                     f"({c['frames_scored']} of {c['annotated_frames']} annotated frames scored, "
                     f"{c['frames_skipped']} skipped)")
    return "\n".join(lines)


def write_video_scores(scores: VideoScores, out: str | os.PathLike) -> list[Path]:
    """Write metrics.json, sequences.csv, frames.csv and curves.csv into `out` (created if needed).

    Every file goes through :func:`sam2sod.names.inside` and is written atomically; returns their paths.
    Checking that `out` may be written (not an input folder, no foreign files) is the caller's part.
    """
    out = Path(out)
    texts = {
        "metrics.json": json.dumps(video_metrics_payload(scores), indent=2) + "\n",
        "sequences.csv": _csv(_sequence_rows(scores)),
        "frames.csv": _csv(_frame_rows(scores)),
        "curves.csv": _csv(_curve_rows(scores)),
    }
    written = []
    for name, text in texts.items():
        path = inside(out, name)
        atomic_write_text(path, text)
        written.append(path)
    return written


def sequence_image_scores(scores: VideoScores) -> ImageScores:
    """One row per scored sequence: its per-sequence values, and its frame-averaged F / E curves.

    The metric names are those of metrics.json; the curve metrics (maxFm, meanFm, maxEm, meanEm) reduce
    the sequence-averaged curve, so ``point(m)`` equals ``scores.values[m]`` for every metric. ``flicker``
    is included only when every sequence has a value.
    """
    seqs = scores.scored
    scalar = [k for k in SEQUENCE_KEYS if k not in CURVE_METRICS]
    values = {k: np.array([s.values[k] for s in seqs]) for k in scalar}
    if not np.all(np.isfinite(values["flicker"])):
        del values["flicker"]
    curves = {"fm": np.stack([s.curves["fm_curve"] for s in seqs]),
              "em": np.stack([s.curves["em_curve"] for s in seqs])}
    return ImageScores([s.name for s in seqs], values, curves, dict(CURVE_METRICS))


def bootstrap_sequences(scores: VideoScores, metrics: Sequence[str] | None = None, *, n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> dict[str, Interval]:
    """Percentile bootstrap intervals of the dataset values, resampling sequences with replacement
    (:func:`sam2sod.report.stats.bootstrap_cis` on :func:`sequence_image_scores`)."""
    return bootstrap_cis(sequence_image_scores(scores), metrics, n_resamples=n_resamples, confidence=confidence,
                         seed=seed)
