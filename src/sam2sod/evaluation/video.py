"""`evaluate --video` and `score --video`: video predictions scored per sequence (the VSOD convention).

    evaluate_video(RUN, [("DAVIS-16", ROOT)], OUT)      # predict OUT/NAME/pred/SEQ/FRAME.png, then score
    score_videos({"ours": PRED}, ROOT, OUT)             # score PRED/SEQ/FRAME.png

Scoring is `sam2sod.metrics.video.score_video` (per frame, mean per sequence, mean over sequences; J, F,
flicker; `--skip-frames`, default `DEFAULT_SKIP`); the files are `sam2sod.report.video.write_video_scores`'s
(metrics.json, sequences.csv, frames.csv, curves.csv) and the printed table `format_video_table`'s, whose
notes state the skip rule and the frames scored and skipped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sam2sod.atomic import atomic_write_text
from sam2sod.errors import SodError
from sam2sod.names import check_name, inside
from sam2sod.outputs import check_output_dir, in_output_scope, prepare_output_dir

__all__ = ["evaluate_video", "load_scored_dataset", "score_videos"]


def _skip(skip_frames: str | None) -> str:
    from sam2sod.metrics.video import DEFAULT_SKIP, check_skip

    return check_skip(DEFAULT_SKIP if skip_frames is None else skip_frames)


def _workers(workers: int | None) -> int:
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise SodError(f"--workers must be >= 1, got {workers}")
    return (os.cpu_count() or 1) if workers is None else int(workers)  # None: all cores, as image scoring


def load_scored_dataset(root: str | Path, flag: str = "--data") -> Any:
    """The annotated video dataset at `root` (`load_video_dataset`), errors prefixed with the flag."""
    from sam2sod.data.video_layouts import load_video_dataset

    try:
        return load_video_dataset(root, annotated=True)
    except SodError as err:
        raise SodError(f"{flag} {root}: {err}") from None


def _named(datasets: Sequence[str | Path | tuple[str, str | Path]]) -> list[tuple[str, Path]]:
    named = [(str(d[0]), Path(d[1])) if isinstance(d, tuple) else (Path(d).resolve().name, Path(d))
             for d in datasets]
    for name, folder in named:
        check_name(name, "dataset name", f"of {folder}")
    if len({n.lower() for n, _ in named}) != len(named):
        raise SodError(f"--data: datasets must have distinct names, got {', '.join(n for n, _ in named)}")
    return named


@in_output_scope
def evaluate_video(checkpoint: str | Path, datasets: Sequence[str | Path | tuple[str, str | Path]],
                   out: str | Path, device: str = "auto", base_checkpoint: str | None = None, *,
                   config: Any = None, skip_frames: str | None = None, workers: int | None = None,
                   overwrite: bool = False, progress: bool = True) -> dict[str, dict]:
    """Predict every sequence of every video dataset (`OUT/NAME/pred/SEQ/FRAME.png`), score it per sequence
    into `OUT/NAME/` and write `OUT/summary.json`; returns {dataset name: metrics.json content}.

    `config`: a `TrackerConfig` (keyframes, re-detection); `skip_frames`: first-last | first | none (None:
    `DEFAULT_SKIP`). Every input and option is checked before `out` is made or the model is built.
    """
    from sam2sod.infer.predict import RANDOM_INIT_NOTE
    from sam2sod.infer.video import VideoRunner, check_tracker_options, write_sequence
    from sam2sod.metrics.video import score_video
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.models.video_tracker import TrackerConfig
    from sam2sod.report.video import format_video_table, video_metrics_payload, write_video_scores
    from sam2sod.runs.loader import open_source
    from sam2sod.runs.runtime import select_device

    skip = _skip(skip_frames)
    n_workers = _workers(workers)
    config = check_tracker_options(config or TrackerConfig())
    named = _named(datasets)
    sets = [(name, load_scored_dataset(root)) for name, root in named]
    inputs = [root for _, root in named]
    check_output_dir(out, overwrite=overwrite, inputs=inputs, command="evaluate")
    source = open_source(checkpoint, base_checkpoint)
    out = prepare_output_dir(out, overwrite=overwrite, inputs=inputs, command="evaluate")
    dev = select_device(device)
    with quiet_random_init():
        loaded = source.build(dev)
    runner = VideoRunner.from_loaded(loaded, config, base_checkpoint)
    print(f"note: {runner.note}" if runner.note else f"video: {runner.describe()}", file=sys.stderr)
    notes = [] if source.pretrained else [RANDOM_INIT_NOTE]
    summary: dict[str, dict] = {}
    for name, dataset in sets:
        pred_dir = inside(out, name, "pred")
        with tqdm(total=dataset.n_frames or None, desc=f"predict {name}", unit="frame", file=sys.stderr,
                  disable=not progress) as bar:
            for video in dataset.sequences:
                write_sequence(runner, video, pred_dir, bar)
        scores = score_video(pred_dir, dataset, skip_frames=skip, workers=n_workers, progress=progress,
                             desc=f"score {name}")
        write_video_scores(scores, inside(out, name))
        print(f"\n{name}:\n{format_video_table({source.method: scores})}")
        for note in notes:
            print(f"note: {note}")
        summary[name] = video_metrics_payload(scores)
    if notes:
        atomic_write_text(inside(out, "WARNING.txt"), "\n".join(notes) + "\n")
    atomic_write_text(inside(out, "summary.json"), json.dumps(
        {"checkpoint": str(source.path), "video": runner.describe(), "skip_frames": skip, "notes": notes,
         "datasets": summary}, indent=2) + "\n")
    return summary


@in_output_scope
def score_videos(preds: dict[str, Path], gt: str | Path, out: str | Path | None = None, *,
                 skip_frames: str | None = None, workers: int | None = None, overwrite: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Score each prediction tree ``PRED/SEQ/FRAME.png`` against the video dataset `gt`; print the table.

    With `out`: one method's files go into OUT, several methods' into OUT/NAME/. Returns {name: VideoScores}.
    """
    from sam2sod.metrics.video import score_video
    from sam2sod.report.video import format_video_table, write_video_scores

    skip = _skip(skip_frames)
    n_workers = _workers(workers)
    for name, folder in preds.items():
        check_name(name, "method name", f"in --pred {name}={folder}")
        if not Path(folder).is_dir():
            raise SodError(f"--pred {folder} does not exist" if not Path(folder).exists()
                           else f"--pred {folder} is not a folder")
    dataset = load_scored_dataset(gt, "--gt")
    inputs = [*preds.values(), Path(gt)]
    if out is not None:
        check_output_dir(out, overwrite=overwrite, inputs=inputs, command="score")
    results = {name: score_video(folder, dataset, skip_frames=skip, workers=n_workers, progress=progress,
                                 desc=f"score {name}") for name, folder in preds.items()}
    if out is not None:
        out = prepare_output_dir(out, overwrite=overwrite, inputs=inputs, command="score")
        for name, scores in results.items():
            write_video_scores(scores, out if len(results) == 1 else inside(out, name))
    print(format_video_table(results))
    return results
