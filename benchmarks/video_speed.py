"""Propagation speed: our `VideoTracker` against sam2's own `SAM2VideoPredictor`, same weights, same frames.

A random-init SAM2.1 hiera-tiny (seed 0) is written as an official-format checkpoint; sam2's side loads it
into `SAM2VideoPredictor` (sam2 1.1.0 unmodified; its frame loader reads a folder of JPEGs with PIL, no
torchvision needed), our side builds `decoder_only` from the same file plus its memory
(`build_memory`). Both are seeded with the same mask on frame 0 (`add_new_mask` /
`VideoTracker.track(masks={0: mask})`) and propagate through the same JPEG frames (a bright disc moving over
noise) without keyframes or re-detection, which is the setting where both compute the same logits (see
tests/video/test_video_parity.py). Timed: from reading the frames to the last frame's logits (sam2:
`init_state`, which decodes every frame up front, + `add_new_mask` + `propagate_in_video`; ours: decoding
and preprocessing each frame when it is reached + `track`); model building excluded. Each side runs in its
own child process, `--rounds` times alternately, best time kept. Usage:
    .venv/bin/python benchmarks/video_speed.py [--size 256] [--frames 30] [--threads 1] [--rounds 1]
The last line is `ratio=X.XX target=1.00`, ratio = our frames/s / sam2's frames/s (higher is better).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TARGET = 1.00
warnings.filterwarnings("ignore")


def disc_frame(t: int, size: int) -> np.ndarray:
    """uint8 (size,size,3): noise (seeded by t) with a bright disc that moves right with t."""
    rng = np.random.default_rng(t)
    yy, xx = np.mgrid[:size, :size]
    img = rng.integers(0, 120, size=(size, size, 3))
    img[(xx - size * (0.3 + 0.01 * t)) ** 2 + (yy - size / 2) ** 2 <= (size * 0.15) ** 2] = 230
    return img.astype(np.uint8)


def seed_mask(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (xx - size * 0.3) ** 2 + (yy - size / 2) ** 2 <= (size * 0.15) ** 2


def prepare(folder: Path, n: int, size: int) -> Path:
    """JPEG frames `folder`/00000.jpg... and the official-format random-init checkpoint `folder`/base.pt."""
    import torch
    from PIL import Image

    from sam2sod.models import build_sam2_model

    for t in range(n):
        Image.fromarray(disc_frame(t, size)).save(folder / f"{t:05d}.jpg", quality=95)
    sam = build_sam2_model("sam2.1", "tiny", size, seed=0)
    with torch.no_grad():  # "object present", so sam2's gate stays open and both sides track an object
        sam.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    torch.save({"model": sam.state_dict()}, folder / "base.pt")
    return folder / "base.pt"


def run_ours(folder: Path, n: int, size: int) -> float:
    import torch

    from sam2sod.data.io import load_image
    from sam2sod.infer.inference import preprocess
    from sam2sod.models import create_model
    from sam2sod.models.memory import build_memory
    from sam2sod.models.video_tracker import TrackerConfig, VideoTracker

    model = create_model("decoder_only", version="sam2.1", size="tiny", image_size=size,
                         checkpoint=str(folder / "base.pt"))
    tracker = VideoTracker(model, build_memory(model), TrackerConfig(
        keyframe_every=0, redetect_score=None, check_every=0, num_frames=n))
    start = time.perf_counter()
    frames = (preprocess(load_image(folder / "frames" / f"{t:05d}.jpg"), size)[None] for t in range(n))
    for out in tracker.track(frames, masks={0: torch.from_numpy(seed_mask(size))}):
        out.logits.float()
    return time.perf_counter() - start


def run_sam2(folder: Path, n: int, size: int) -> float:
    from sam2.build_sam import build_sam2_video_predictor

    from sam2sod.models.sam2_backbone import config_name

    pred = build_sam2_video_predictor(config_name("sam2.1", "tiny"), str(folder / "base.pt"), device="cpu",
                                      hydra_overrides_extra=[f"++model.image_size={size}"],
                                      apply_postprocessing=False)
    frames_dir = folder / "frames"
    start = time.perf_counter()
    state = pred.init_state(str(frames_dir))
    pred.add_new_mask(state, frame_idx=0, obj_id=1, mask=seed_mask(size))
    for _, _, masks in pred.propagate_in_video(state):
        masks.float()
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    seconds = (run_ours if args.child == "ours" else run_sam2)(folder, args.frames, args.size)
    print(json.dumps({"seconds": seconds, "fps": args.frames / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(which: str, folder: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--folder", str(folder), "--frames", str(args.frames),
           "--size", str(args.size), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="model input size (multiple of 32)")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", choices=("ours", "sam2"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "frames").mkdir()
        base = prepare(folder / "frames", args.frames, args.size)
        base.rename(folder / "base.pt")
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for which in ("sam2", "ours"):
                r = measure(which, folder, args)
                if which not in best or r["seconds"] < best[which]["seconds"]:
                    best[which] = r
    for which in ("sam2", "ours"):
        print(f"{which}: {json.dumps(best[which])}")
    print(f"RANDOM INIT hiera-tiny, {args.size} px, {args.frames} frames, {args.threads} torch thread(s), CPU, "
          f"best of {args.rounds} round(s); ratio = our frames/s / SAM2VideoPredictor frames/s")
    print(f"ratio={best['ours']['fps'] / best['sam2']['fps']:.2f} target={TARGET:.2f}")


if __name__ == "__main__":
    main()
