"""The command registry and the flags shared by the `sam2sod` subcommands (see `sam2sod.cli`).

A flag name means one thing in every command that has it; each shared flag is declared once here. Old spellings
that meant something else in one command stay accepted there for one release, hidden from --help (`alias`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_SKIPPED = 3  # predict wrote the readable images and skipped others

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    """Register `add_args` + `run` pair under `name`."""

    def wrap(add_args: Callable[[argparse.ArgumentParser], None]):
        def register(run: Callable[[argparse.Namespace], int]):
            COMMANDS[name] = (help, add_args, run)
            return run

        return register

    return wrap


MODEL_HELP = ("a run folder (its best.pt, else last.pt), a run's best.pt / last.pt, a `sam2sod export` folder, "
              "hf://user/repo[@revision] (an export on the Hugging Face hub), or an official SAM2 name / file "
              "(zero-shot SAM2, --zero-shot)")
DEVICE_HELP = "auto (default: a GPU when there is one) | cpu | cuda | cuda:N | mps"


def alias(p: argparse.ArgumentParser, old: str, dest: str, **kw: Any) -> None:
    """Accept the old spelling `old` of a renamed flag (same `dest`), hidden from --help, for one release."""
    p.add_argument(old, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kw)


def checkpoint_arg(p: argparse.ArgumentParser, help: str = MODEL_HELP) -> None:
    p.add_argument("--checkpoint", required=True, metavar="MODEL", help=help)
    base_checkpoint_arg(p)


def base_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-checkpoint", metavar="FILE|NAME",
                   help="official SAM2 weights of a run (a file, or a name from `sam2sod weights list`) when they "
                        "are not at the path the run recorded")


def out_arg(p: argparse.ArgumentParser, help: str | None = None, required: bool = True, **kw: Any) -> None:
    p.add_argument("--out", type=Path, required=required, help=help, **kw)


def device_arg(p: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    p.add_argument("--device", default=None, type=_device, help=help)


def _device(text: str) -> str:
    from sam2sod.runs.config_checks import DEVICE_PATTERN, DEVICES

    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use {DEVICES}")
    return text


def batch_size_arg(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    p.add_argument("--batch-size", type=int, default=default, metavar="N", help=f"images per forward ({help})")


def workers_arg(p: argparse.ArgumentParser) -> None:
    """--workers: the processes that score (decode and measure) prediction / mask pairs."""
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="scoring processes (default: all cores, fewer when memory is short)")


def decode_workers_arg(p: argparse.ArgumentParser, help: str) -> None:
    """--decode-workers: the workers that decode images ahead of the model / the checks (old name --workers)."""
    p.add_argument("--decode-workers", type=int, default=None, metavar="N", dest="decode_workers", help=help)
    alias(p, "--workers", "decode_workers", type=int)


def no_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="allow an --out folder that holds other files (inputs are never written, even so)")


def recursive_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recursive", action="store_true",
                   help="include images in sub-folders (outputs mirror the folder tree)")


def config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file or bundled config name (see src/sam2sod/configs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")


def datasets_file_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", type=Path, metavar="FILE",
                   help="YAML file mapping dataset names to folders, e.g. `ECSSD: /data/ECSSD` "
                        "(default: $SAM2SOD_DATASETS)")


def exclude_overlap_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exclude-overlap", action="store_true",
                   help="leave out test images that duplicate (exactly or nearly) a model's training images; "
                        "without it they are only reported")


def refine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refine", type=int, default=0, metavar="K",
                   help="self-prompting: K extra passes with a box, points and the low-res mask taken from the "
                        "model's own previous prediction (no ground truth; default 0)")
    p.add_argument("--tta", default="none", choices=["none", "flip"],
                   help="test-time augmentation: flip = average with the mirrored image")


def tracker_args(p: argparse.ArgumentParser) -> None:
    """--video and the tracker's options (`sam2sod.models.video_tracker.TrackerConfig`; None: its default)."""
    p.add_argument("--video", action="store_true",
                   help="the input is video: a frames folder, a video file or a folder of sequences; maps are "
                        "OUT/SEQ/FRAME.png, propagated with SAM2's memory between keyframes")
    p.add_argument("--keyframe-every", type=int, default=None, metavar="K",
                   help="with --video: detect on frame 0 and every K-th frame, track with memory in between "
                        "(default 10; 1 frame-wise, equal to image predict; 0 frame 0 only)")
    p.add_argument("--redetect-score", type=_score_or_none, default=None, metavar="X|none",
                   help="with --video: re-detect a tracked frame whose object score is below X (default 0, "
                        "SAM2's 'object absent'; none: never)")
    p.add_argument("--check-every", type=int, default=None, metavar="M",
                   help="with --video: every M frames after a keyframe compare the tracked mask with a fresh "
                        "detection (default 5; 0: never)")
    p.add_argument("--check-iou", type=float, default=None, metavar="T",
                   help="with --video: re-detect when IoU(tracked, fresh detection) < T, T in [0, 1] (default 0.5)")


def _score_or_none(text: str) -> float | str:
    if text.strip().lower() == "none":
        return "none"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'none'") from None


def tracker_config(args: argparse.Namespace) -> Any:
    """The `TrackerConfig` of the tracker flags (unset flags keep the config's defaults)."""
    from sam2sod.models.video_tracker import TrackerConfig

    given = {"keyframe_every": args.keyframe_every, "check_every": args.check_every, "check_iou": args.check_iou,
             "redetect_score": args.redetect_score}
    kw = {k: v for k, v in given.items() if v is not None}
    if kw.get("redetect_score") == "none":
        kw["redetect_score"] = None
    return TrackerConfig(**kw)


def skip_frames_arg(p: argparse.ArgumentParser) -> None:
    """--skip-frames: the annotated frames video scoring leaves out (`sam2sod.metrics.video.SKIP_RULES`)."""
    p.add_argument("--skip-frames", default=None, metavar="first-last|first|none",
                   help="with --video: annotated frames not scored in each sequence: first-last (default, the "
                        "DAVSOD toolkit), first (the DAVIS-16-style Python toolkit) or none")


def unused_with_video(args: argparse.Namespace, flags: dict[str, object]) -> None:
    """SodError naming the first flag of {flag: its default} that was changed although --video ignores it."""
    from sam2sod.errors import SodError

    for flag, default in flags.items():
        if getattr(args, flag.lstrip("-").replace("-", "_"), default) != default:
            raise SodError(f"{flag} does not apply with --video")


def video_flags_without_video(args: argparse.Namespace) -> None:
    """SodError when a tracker / skip flag is given without --video."""
    from sam2sod.errors import SodError

    for flag in ("--keyframe-every", "--redetect-score", "--check-every", "--check-iou", "--skip-frames"):
        if getattr(args, flag.lstrip("-").replace("-", "_"), None) is not None:
            raise SodError(f"{flag} needs --video")


def engine_args(p: argparse.ArgumentParser, dtype: bool = True) -> None:
    """--engine and (with `dtype`) --dtype: what runs the model (see `sam2sod.infer.engines`)."""
    p.add_argument("--engine", default="torch", choices=["torch", "onnxruntime"],
                   help="torch (default) or onnxruntime (CPU, fp32; an ONNX export folder, or the model exported "
                        "once into the cache; needs pip install 'sam2sod[export]')")
    if not dtype:
        return
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="autocast dtype of the model (default fp32; bf16 on CPU or CUDA, 1.5-2x faster on CPUs with "
                        "AMX / AVX512-BF16; fp16 on CUDA)")


def resize_args(p: argparse.ArgumentParser) -> None:
    """--resize and --tiles: how an image meets the model's square input (see `sam2sod.infer.inference`)."""
    p.add_argument("--resize", default="squash", choices=["squash", "pad"],
                   help="squash (default): resize to the model's square; pad: keep the aspect ratio (letterbox)")
    p.add_argument("--tiles", default=None, metavar="auto|N",
                   help="large images: a global pass plus overlapping tiles blended with a smooth window (auto: "
                        "ceil(longer side / (2 x model size)) tiles along the longer side; N: fixed, 1-64)")


def zero_shot_args(p: argparse.ArgumentParser) -> None:
    """--zero-shot MODE, --image-size PX, --amg NAME=VALUE: how an untrained (official) SAM2 makes its maps."""
    p.add_argument("--zero-shot", metavar="MODE", dest="zero_shot",
                   help="an official SAM2 name / weights file as is: prompt-free (default), centre-point (one click "
                        "at the image centre) or amg (sam2's automatic mask generator, masks combined into saliency)")
    p.add_argument("--image-size", type=int, metavar="PX", dest="image_size",
                   help="input side of a zero-shot SAM2 in pixels, a multiple of 32 (default 1024); a trained "
                        "model keeps its own")
    p.add_argument("--amg", action="append", default=[], metavar="NAME=VALUE",
                   help="setting of --zero-shot amg (repeatable): points_per_side [1, 128] (32), points_per_batch "
                        "[1, 4096] (64), pred_iou_thresh [0, 1] (0.8), stability_score_thresh [0, 1] (0.95), "
                        "box_nms_thresh [0, 1] (0.7), min_mask_region_area [0, 1048576] (0)")


def zero_shot_of(args: argparse.Namespace) -> Any:
    """The checked `ZeroShotOptions` of --zero-shot / --image-size / --amg (None when none is given)."""
    from sam2sod.runs.zero_shot_options import zero_shot_options

    return zero_shot_options(args.zero_shot, args.image_size, args.amg)


def hub_offline_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub-offline", action="store_true",
                   help="read hf:// models from the Hugging Face cache only, never the network (as HF_HUB_OFFLINE=1)")


def hub_models(args: argparse.Namespace) -> None:
    """Let the command open hf:// models (`sam2sod.export.hub_open`); --hub-offline sets HF_HUB_OFFLINE=1."""
    import os

    from sam2sod.export import hub_open

    if getattr(args, "hub_offline", False):
        os.environ[hub_open.OFFLINE_ENV] = "1"
