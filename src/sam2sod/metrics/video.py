"""Scoring video predictions per sequence, the convention of VSOD papers (DAVSOD toolkit ``main.m``).

Predictions are a folder tree ``PRED/SEQ/FRAME.png`` (any image suffix; FRAME is the frame's file stem),
scored against a video dataset (:func:`sam2sod.data.video_layouts.load_video_dataset`):

* **Which frames**: the annotated frames of each sequence, less those the skip rule drops —
  ``first-last`` (default, the DAVSOD toolkit's and DAVIS's evaluation: each sequence's first and last
  annotated frame), ``first`` (the DAVIS-16-style Python VSOD toolkit), ``none``. A prediction is needed
  for every scored frame; the frames between them are used by the flicker measure only.
  (DAVSOD's ``EvaluateTool/main.m`` loops ``for i = 2:fileNUM-1`` over each sequence's ``ground-truth/``
  files, "for some of the light-flow based methods"; DAVIS's ``eval_sequence.m`` skips the same frames.)
* **Per frame**: the image measures of :func:`sam2sod.metrics.pair_scores` (S, wF, MAE, adaptive / mean
  E and F, the 256-threshold F and E curves; PySODMetrics' conventions) and DAVIS's J and F at threshold
  0.5 (:mod:`sam2sod.metrics.davis`). A prediction of another size than its mask is resized (bilinear).
* **Per sequence**: the mean over its scored frames; maxF / meanF / maxE / meanE are the max / mean of the
  sequence's frame-averaged curve; J&F = (J + F) / 2; flicker (:mod:`sam2sod.metrics.video_stability`).
* **Dataset**: the mean over sequences of the per-sequence values (a sequence weighs the same whatever its
  length); maxF / meanF / maxE / meanE are the max / mean of the curve averaged over frames, then over
  sequences. The frame-pooled values (every scored frame weighted equally, as image scoring does) are
  kept apart as ``pooled``. A sequence with no scored frame (e.g. two annotated frames and
  ``first-last``) is left out and listed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from sam2sod.data.discovery import list_images
from sam2sod.data.io import load_mask
from sam2sod.errors import SodError, format_names
from sam2sod.metrics.davis import jf_scores
from sam2sod.metrics.scores import DATASET_KEYS, PairScores, aggregate, pair_scores
from sam2sod.metrics.video_stability import sequence_flicker

if TYPE_CHECKING:
    from sam2sod.data.video_layouts import VideoDataset

__all__ = ["DEFAULT_SKIP", "SEQUENCE_KEYS", "SKIP_RULES", "SequenceScores", "VideoScores", "score_video",
           "scored_frames"]

#: Skip rule name -> what it drops from each sequence's annotated frames.
SKIP_RULES = {"first-last": "the first and the last annotated frame", "first": "the first annotated frame",
              "none": "no frame"}
DEFAULT_SKIP = "first-last"
#: Per-sequence and dataset metric keys: the image keys, then DAVIS's J, F, J&F and flicker.
SEQUENCE_KEYS = (*DATASET_KEYS, "J", "F", "JF", "flicker")
_CURVE_METRICS = {"maxFm": ("fm_curve", "max"), "meanFm": ("fm_curve", "mean"),
                  "maxEm": ("em_curve", "max"), "meanEm": ("em_curve", "mean")}
_CURVES = ("precision", "recall", "fm_curve", "em_curve")


def check_skip(skip_frames: str) -> str:
    """`skip_frames` when it names a rule, else `SodError` listing the rules."""
    if skip_frames not in SKIP_RULES:
        raise SodError(f"--skip-frames must be one of {', '.join(SKIP_RULES)}, got {skip_frames!r}")
    return skip_frames


def scored_frames(annotated: Sequence[str], skip_frames: str = DEFAULT_SKIP) -> list[str]:
    """The annotated frames (in order) that `skip_frames` keeps."""
    check_skip(skip_frames)
    frames = list(annotated)
    if skip_frames == "first":
        return frames[1:]
    if skip_frames == "first-last":
        return frames[1:-1]
    return frames


@dataclass
class SequenceScores:
    """Scores of one sequence: per scored frame, and the sequence values (:attr:`values`, :attr:`curves`)."""

    name: str
    n_frames: int
    n_annotated: int
    frames: list[str] = field(default_factory=list)
    pairs: list[PairScores] = field(default_factory=list)
    j: list[float] = field(default_factory=list)
    f: list[float] = field(default_factory=list)
    flicker: float = float("nan")
    flicker_steps: int = 0
    missing_between: int = 0
    resized: int = 0

    @property
    def n_scored(self) -> int:
        return len(self.frames)

    @property
    def n_skipped(self) -> int:
        return self.n_annotated - self.n_scored

    @cached_property
    def _aggregate(self) -> dict:
        return aggregate(self.pairs)

    @property
    def values(self) -> dict[str, float]:
        """{metric: value} over the scored frames, keys `SEQUENCE_KEYS` (`SodError` when none is scored)."""
        if not self.pairs:
            raise SodError(f"sequence {self.name} has no scored frame")
        out = {k: float(self._aggregate[k]) for k in DATASET_KEYS}
        out["J"], out["F"] = float(np.mean(self.j)), float(np.mean(self.f))
        out["JF"] = (out["J"] + out["F"]) / 2
        out["flicker"] = self.flicker
        return out

    @property
    def curves(self) -> dict[str, np.ndarray]:
        """Frame-averaged curves of 256 (``precision``, ``recall``, ``fm_curve``, ``em_curve``)."""
        return {k: np.asarray(self._aggregate[k]) for k in _CURVES}

    def frame_rows(self) -> list[dict[str, float | str]]:
        """One row per scored frame: S, MAE, wF, adpF, E (adaptive, as per_image.csv) and J, F."""
        return [{"frame": name, **s.per_image_row(), "J": j, "F": f}
                for name, s, j, f in zip(self.frames, self.pairs, self.j, self.f, strict=True)]


@dataclass
class VideoScores:
    """Per-sequence scores of one prediction tree and the dataset values (:attr:`values`)."""

    skip_frames: str
    sequences: list[SequenceScores]
    pred_root: Path | None = None
    dataset_root: Path | None = None
    layout: str = ""

    @property
    def scored(self) -> list[SequenceScores]:
        """Sequences with at least one scored frame (those the dataset values average)."""
        return [s for s in self.sequences if s.pairs]

    @property
    def unscored(self) -> list[str]:
        return [s.name for s in self.sequences if not s.pairs]

    @cached_property
    def curves(self) -> dict[str, np.ndarray]:
        """Curves averaged over frames, then over sequences."""
        seqs = self.scored
        return {k: np.mean([s.curves[k] for s in seqs], axis=0) for k in _CURVES}

    @cached_property
    def values(self) -> dict[str, float]:
        """Dataset values: the mean over sequences (curve metrics from :attr:`curves`); keys `SEQUENCE_KEYS`."""
        rows = [s.values for s in self.scored]
        out = {k: float(np.mean([r[k] for r in rows])) for k in SEQUENCE_KEYS if k != "flicker"}
        for k, (curve, how) in _CURVE_METRICS.items():
            c = self.curves[curve]
            out[k] = float(c.max() if how == "max" else c.mean())
        flicker = [r["flicker"] for r in rows if np.isfinite(r["flicker"])]
        out["flicker"] = float(np.mean(flicker)) if flicker else float("nan")
        return {k: out[k] for k in SEQUENCE_KEYS}

    @cached_property
    def pooled(self) -> dict[str, float]:
        """The same measures pooled over all scored frames (each frame weighs the same), without flicker."""
        pairs = [p for s in self.scored for p in s.pairs]
        agg = aggregate(pairs)
        out = {k: float(agg[k]) for k in DATASET_KEYS}
        out["J"] = float(np.mean([j for s in self.scored for j in s.j]))
        out["F"] = float(np.mean([f for s in self.scored for f in s.f]))
        out["JF"] = (out["J"] + out["F"]) / 2
        return out

    def counts(self) -> dict[str, int]:
        """Sequences and frames: all, annotated, scored, skipped; predictions resized / missing in between."""
        seqs = self.sequences
        return {"sequences": len(seqs), "sequences_scored": len(self.scored),
                "frames": sum(s.n_frames for s in seqs), "annotated_frames": sum(s.n_annotated for s in seqs),
                "frames_scored": sum(s.n_scored for s in seqs), "frames_skipped": sum(s.n_skipped for s in seqs),
                "predictions_resized": sum(s.resized for s in seqs),
                "predictions_missing_between": sum(s.missing_between for s in seqs)}


@dataclass(frozen=True)
class _Job:
    """One sequence to score: its frames from the first to the last scored one, with their files."""

    name: str
    n_frames: int
    n_annotated: int
    first: int  # position of the first frame in `frames` within the sequence
    frames: tuple[tuple[str, Path | None, Path | None], ...]  # (frame, prediction or None, mask if scored)


def _load_prediction(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """uint8 HxW prediction, resized bilinearly to `shape` when it differs; (map, resized)."""
    try:
        pred = load_mask(path)
    except SodError as err:
        raise SodError(str(err).replace(f"mask {path}", f"prediction {path}", 1)) from None
    if pred.shape == tuple(shape):
        return pred, False
    resized = Image.fromarray(pred).resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8), True


def _score_job(job: _Job) -> SequenceScores:
    """Score one sequence: reads its predictions in frame order, one at a time."""
    out = SequenceScores(job.name, job.n_frames, job.n_annotated)
    shape: tuple[int, int] | None = None

    def walk():  # (position, pred, gt or None) for the flicker measure, scoring the anchors on the way
        nonlocal shape
        for offset, (frame, pred_path, mask_path) in enumerate(job.frames):
            if pred_path is None:
                out.missing_between += 1
                continue
            gt = load_mask(mask_path) if mask_path is not None else None
            shape = gt.shape if gt is not None else shape
            pred, resized = _load_prediction(pred_path, shape)  # type: ignore[arg-type]
            out.resized += int(resized)
            if gt is not None:
                out.frames.append(frame)
                out.pairs.append(pair_scores(pred, gt))
                j, f = jf_scores(pred, gt)
                out.j.append(j)
                out.f.append(f)
            yield job.first + offset, pred, (gt > 128 if gt is not None else None)

    out.flicker, out.flicker_steps = sequence_flicker(walk())
    return out


def _predictions(pred_root: Path, name: str) -> dict[str, Path]:
    folder = pred_root / name
    return list_images(folder, "prediction", allow_empty=True) if folder.is_dir() else {}


def _jobs(pred_root: Path, dataset: VideoDataset, skip_frames: str) -> list[_Job]:
    jobs, missing = [], []
    for video in dataset.sequences:
        names = video.frame_names
        keep = set(scored_frames(video.annotated, skip_frames))
        preds = _predictions(pred_root, video.name)
        missing += [f"{video.name}/{n}" for n in names if n in keep and n not in preds]
        positions = [i for i, n in enumerate(names) if n in keep]
        span = names[positions[0]:positions[-1] + 1] if positions else []
        frames = tuple((n, preds.get(n), video.masks[n] if n in keep else None) for n in span)
        jobs.append(_Job(video.name, len(names), len(video.masks), positions[0] if positions else 0, frames))
    if missing:
        raise SodError(f"{len(missing)} annotated frame(s) have no prediction under {pred_root} "
                       f"(read as PRED/SEQ/FRAME.png): {format_names(missing)}")
    return jobs


def score_video(pred_root: str | os.PathLike, dataset: VideoDataset | str | os.PathLike, *,
                skip_frames: str = DEFAULT_SKIP, workers: int = 1, progress: bool = False,
                desc: str = "sequences") -> VideoScores:
    """Score a prediction tree ``PRED/SEQ/FRAME.png`` against a video dataset (see the module docstring).

    Args:
        pred_root: the folder holding one sub-folder of predictions per sequence.
        dataset: a :class:`~sam2sod.data.video_layouts.VideoDataset` or its folder (loaded with masks).
        skip_frames: ``first-last`` (default), ``first`` or ``none``.
        workers: processes scoring sequences in parallel (1: in this process).
        progress: show a progress bar (one step per sequence) on stderr, labelled `desc`.

    Raises:
        SodError: unknown skip rule, workers < 1, a missing prediction folder, annotated frames without a
            prediction (the first few are named), unreadable files, or no frame left to score.
    """
    from sam2sod.data.video_layouts import VideoDataset, load_video_dataset

    check_skip(skip_frames)
    if int(workers) < 1:
        raise SodError(f"--workers must be >= 1, got {workers}")
    pred_root = Path(pred_root)
    if not pred_root.is_dir():
        raise SodError(f"prediction folder {pred_root} does not exist" if not pred_root.exists()
                       else f"prediction folder {pred_root} is not a folder")
    if not isinstance(dataset, VideoDataset):
        dataset = load_video_dataset(dataset, annotated=True)
    jobs = _jobs(pred_root, dataset, skip_frames)
    if not any(any(m is not None for _, _, m in j.frames) for j in jobs):
        raise SodError(f"no frame left to score in {dataset.root} with --skip-frames {skip_frames} "
                       f"(it drops {SKIP_RULES[skip_frames]} of each sequence); try --skip-frames none")
    sequences: list[SequenceScores] = []
    with tqdm(total=len(jobs), desc=desc, unit="seq", disable=not progress, file=sys.stderr,
              dynamic_ncols=True) as bar:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=min(int(workers), len(jobs))) as pool:
                for seq in pool.map(_score_job, jobs):
                    sequences.append(seq)
                    bar.update()
        else:
            for job in jobs:
                sequences.append(_score_job(job))
                bar.update()
    return VideoScores(skip_frames, sequences, pred_root, dataset.root, dataset.layout)
