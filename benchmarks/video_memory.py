"""Peak memory of streaming video prediction does not grow with video length.

Each measurement runs in a fresh subprocess (peak RSS = the child's ru_maxrss): a random-init SAM2.1
hiera-tiny `decoder_only` model and its memory track a synthetic video (a bright disc moving over noise,
frames made one at a time as they are pulled) with `VideoTracker`, keyframes every 10 frames and the
default re-detection rule; each output is turned into an 8-bit map and dropped. The ratio is peak RSS for
400 frames / peak RSS for 50 frames (target: at most 1.10). With `--sam2`, sam2's own `SAM2VideoPredictor`
(`init_state` on a JPEG folder + `add_new_mask` + `propagate_in_video`, same weights) is measured the same
way, for contrast: it holds every frame and every frame's output. Usage:
    .venv/bin/python benchmarks/video_memory.py [--size 128] [--short 50] [--long 400] [--sam2]
The last line is `ratio=X.XX target=1.10`.
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
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TARGET = 1.10
warnings.filterwarnings("ignore")


def synthetic_frame(t: int, size: int) -> np.ndarray:
    """uint8 (size,size,3): noise with a bright disc that moves with t."""
    rng = np.random.default_rng(t)
    yy, xx = np.mgrid[:size, :size]
    img = rng.integers(0, 120, size=(size, size, 3))
    cx = size * (0.25 + 0.5 * ((t % 100) / 100))
    img[(xx - cx) ** 2 + (yy - size / 2) ** 2 <= (size * 0.15) ** 2] = 230
    return img.astype(np.uint8)


def run_ours(n: int, size: int) -> dict[str, float]:
    import torch

    from sam2sod.infer.inference import logits_to_uint8, preprocess
    from sam2sod.models import create_model
    from sam2sod.models.memory import build_memory
    from sam2sod.models.video_tracker import TrackerConfig, VideoTracker

    torch.set_num_threads(1)
    model = create_model("decoder_only", image_size=size, seed=0)
    tracker = VideoTracker(model, build_memory(model), TrackerConfig(keyframe_every=10))

    def frames() -> Iterator[torch.Tensor]:
        for t in range(n):
            yield preprocess(synthetic_frame(t, size), size)[None]

    start, kinds = time.perf_counter(), {}
    for out in tracker.track(frames()):
        logits_to_uint8(out.logits[0], (size, size))
        kinds[out.kind] = kinds.get(out.kind, 0) + 1
    wall = time.perf_counter() - start
    return {"fps": n / wall, "state_bytes": tracker.state_nbytes(), **{f"n_{k}": v for k, v in kinds.items()}}


def run_sam2(n: int, size: int) -> dict[str, float]:
    import torch
    from PIL import Image
    from sam2.build_sam import build_sam2_video_predictor

    from sam2sod.models import build_sam2_model
    from sam2sod.models.sam2_backbone import config_name

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(n):
            Image.fromarray(synthetic_frame(t, size)).save(Path(tmp) / f"{t:05d}.jpg", quality=95)
        ckpt = Path(tmp) / "base.pt"
        torch.save({"model": build_sam2_model("sam2.1", "tiny", size, seed=0).state_dict()}, ckpt)
        pred = build_sam2_video_predictor(config_name("sam2.1", "tiny"), str(ckpt), device="cpu",
                                          hydra_overrides_extra=[f"++model.image_size={size}"],
                                          apply_postprocessing=False)
        start = time.perf_counter()
        state = pred.init_state(tmp)
        yy, xx = np.mgrid[:size, :size]
        pred.add_new_mask(state, 0, 1, (xx - size * 0.25) ** 2 + (yy - size / 2) ** 2 <= (size * 0.15) ** 2)
        for _ in pred.propagate_in_video(state):
            pass
        return {"fps": n / (time.perf_counter() - start)}


def child(which: str, n: int, size: int) -> None:
    result = (run_ours if which == "ours" else run_sam2)(n, size)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(which: str, n: int, size: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", which, "--frames", str(n), "--size", str(size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="model input size (multiple of 32)")
    ap.add_argument("--short", type=int, default=50)
    ap.add_argument("--long", type=int, default=400)
    ap.add_argument("--sam2", action="store_true", help="also measure sam2's SAM2VideoPredictor")
    ap.add_argument("--child", choices=("ours", "sam2"), help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.frames, args.size)
        return
    sides = ("sam2", "ours") if args.sam2 else ("ours",)
    ratios = {}
    for which in sides:
        short, long = measure(which, args.short, args.size), measure(which, args.long, args.size)
        ratios[which] = long["peak_rss_mb"] / short["peak_rss_mb"]
        print(f"{which}: {args.short} frames {json.dumps(short)}")
        print(f"{which}: {args.long} frames {json.dumps(long)}")
        print(f"{which}: peak RSS {args.long}/{args.short} frames = {ratios[which]:.3f}")
    print(f"ratio={ratios['ours']:.2f} target={TARGET:.2f}")


if __name__ == "__main__":
    main()
