"""`sam2sod predict --video`: OUT/SEQ/FRAME.png for every frame of a frames folder, a video file or a folder
of sequences, at each frame's original size (and OUT/SEQ.mp4 overlays with ``--format overlay-video``).

The frames go through `sam2sod.infer.video.VideoRunner` (frame-wise, or SAM2's memory between keyframes).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sam2sod.errors import SodError
from sam2sod.infer.video import VideoRunner, check_tracker_options, write_sequence

__all__ = ["VIDEO_FORMATS", "VideoReport", "predict_video"]

VIDEO_FORMATS = ("map", "overlay-video")


@dataclass
class VideoReport:
    """What `predict_video` did: files written, sequences and frames, seconds, tracker steps by kind."""

    written: list[Path] = field(default_factory=list)
    sequences: int = 0
    frames: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    mode: str = ""


def _check_formats(formats: Sequence[str] | None) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(formats or ("map",)))
    bad = [f for f in formats if f not in VIDEO_FORMATS]
    if bad:
        raise SodError(f"--format with --video must be one of {', '.join(VIDEO_FORMATS)}, got "
                       f"{', '.join(map(repr, bad))}")
    if "map" not in formats:
        formats = ("map", *formats)
    if "overlay-video" in formats:
        from sam2sod.infer.video_overlay import check_overlay_video

        check_overlay_video()
    return formats


def predict_video(checkpoint: str | Path, inputs: str | Path, out: str | Path, device: str = "auto",
                  base_checkpoint: str | None = None, *, config: Any = None, overwrite: bool = False,
                  formats: Sequence[str] | None = None, dtype: str = "fp32", progress: bool = True) -> VideoReport:
    """`predict --video`: OUT/SEQ/FRAME.png for every frame of a frames folder, a video file or a folder of
    sequences (`sam2sod.data.video_layouts.open_video_input`). Inputs, options and `out` are checked before
    the model is built; `out` may not be inside the input (nor hold it). `config`: a `TrackerConfig`.
    `formats`: map (always) and overlay-video (OUT/SEQ.mp4 of the overlay, PyAV)."""
    from sam2sod.outputs import in_output_scope

    return in_output_scope(_predict_video)(checkpoint, inputs, out, device, base_checkpoint, config=config,
                                           overwrite=overwrite, formats=formats, dtype=dtype, progress=progress)


def _predict_video(checkpoint: str | Path, inputs: str | Path, out: str | Path, device: str,
                   base_checkpoint: str | None, *, config: Any, overwrite: bool, formats: Sequence[str] | None,
                   dtype: str, progress: bool) -> VideoReport:
    from sam2sod.data.video_layouts import open_video_input
    from sam2sod.infer.predict import RANDOM_INIT_NOTE
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.models.video_tracker import TrackerConfig
    from sam2sod.names import inside
    from sam2sod.outputs import check_output_dir, prepare_output_dir
    from sam2sod.runs.loader import open_source
    from sam2sod.runs.runtime import inference_dtype, select_device

    config = check_tracker_options(config or TrackerConfig())
    formats = _check_formats(formats)
    dev = select_device(device)
    amp = inference_dtype(dev, dtype)
    src = Path(inputs)
    dataset = open_video_input(src)
    protected = [src, *(v.source for v in dataset.sequences)]
    check_output_dir(out, overwrite=overwrite, inputs=protected, command="predict")
    source = open_source(checkpoint, base_checkpoint)
    out = prepare_output_dir(out, overwrite=overwrite, inputs=protected, command="predict")
    for video in dataset.sequences:
        inside(out, video.name)
    with quiet_random_init():
        loaded = source.build(dev)
    runner = VideoRunner.from_loaded(loaded, config, base_checkpoint, amp)
    print(f"note: {runner.note}" if runner.note else f"video: {runner.describe()}", file=sys.stderr)
    report = VideoReport(mode=runner.describe())
    total = sum(v.num_frames or 0 for v in dataset.sequences) or None
    start = time.perf_counter()
    with tqdm(total=total, desc="predict video", unit="frame", file=sys.stderr, disable=not progress) as bar:
        for video in dataset.sequences:
            report.written += _write_one(runner, video, Path(out), bar, "overlay-video" in formats)
            report.sequences += 1
    report.seconds = time.perf_counter() - start
    report.frames = sum(runner.kinds.values())
    report.kinds = dict(runner.kinds)
    if not source.pretrained:
        print(f"warning: {RANDOM_INIT_NOTE}", file=sys.stderr)
    return report


def _write_one(runner: VideoRunner, video: Any, out: Path, bar: Any, overlay: bool) -> list[Path]:
    if not overlay:
        return write_sequence(runner, video, out, bar)
    from sam2sod.infer.video_overlay import OverlayVideoWriter
    from sam2sod.names import inside

    with OverlayVideoWriter(inside(out, f"{video.name}.mp4")) as writer:
        written = write_sequence(runner, video, out, bar, writer.add)
    return [*written, writer.path]
