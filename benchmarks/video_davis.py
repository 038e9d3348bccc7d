"""Video SOD on a DAVIS-layout set: frame-wise against SAM2-memory propagation, with and without re-detection.

Each configuration runs in its own child process (so its peak RSS, resource.getrusage ru_maxrss, is its
own): the run is loaded, every sequence is predicted with `sam2sod.infer.video.VideoRunner` into a temp
folder (OUT/SEQ/FRAME.png, as `predict --video` writes), the prediction time gives frames/s (model loading
and scoring excluded; PNG encoding and writing included), then `sam2sod.metrics.video.score_video` scores
per sequence (mean over sequences; --skip-frames, default first-last). Configurations (names for
--configs): k1 (frame-wise), k5 / k10 / k25 (keyframes every K frames, default re-detection: object score
< 0, check every 5 frames, IoU < 0.5), k5-noredetect / k10-noredetect / k25-noredetect (keyframes only).
Usage:
    .venv/bin/python benchmarks/video_davis.py --run /work/runs/ecssd_cbam --data /work/shared/data/davis16-dev
        [--configs k1,k5,k10,k25,k10-noredetect] [--max-frames N] [--threads 1] [--skip-frames first-last]
`--max-frames N` keeps the first N frames of each sequence (a quicker, partial measurement; said in the
output). The last line is `ratio=X.XX target=1.00`: the J&F of k10 over the J&F of k1 (propagation does
not lose accuracy when it is at least 1).
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

warnings.filterwarnings("ignore")
CONFIGS = {"k1": (1, True), "k5": (5, True), "k10": (10, True), "k25": (25, True),
           "k5-noredetect": (5, False), "k10-noredetect": (10, False), "k25-noredetect": (25, False)}
COLUMNS = (("S", "Smeasure"), ("MAE", "MAE"), ("maxF", "maxFm"), ("J", "J"), ("F", "F"), ("J&F", "JF"),
           ("flicker", "flicker"))


def _subset(dataset, max_frames: int):
    """The dataset with the first `max_frames` frames of each sequence (all when 0)."""
    from sam2sod.data.video import Video
    from sam2sod.data.video_layouts import VideoDataset

    if max_frames <= 0:
        return dataset
    seqs = []
    for v in dataset.sequences:
        frames = v.frames[:max_frames]
        keep = {n for n, _ in frames}
        seqs.append(Video(v.name, v.source, frames, {k: p for k, p in v.masks.items() if k in keep}))
    return VideoDataset(dataset.root, dataset.layout, tuple(seqs))


def child(args: argparse.Namespace) -> None:
    import torch

    from sam2sod.data.video_layouts import load_video_dataset
    from sam2sod.infer.video import VideoRunner, write_sequence
    from sam2sod.metrics.video import score_video
    from sam2sod.models.video_tracker import TrackerConfig
    from sam2sod.runs.loader import load_model

    torch.set_num_threads(args.threads)
    k, redetect = CONFIGS[args.child]
    config = TrackerConfig(keyframe_every=k) if redetect else TrackerConfig(keyframe_every=k, redetect_score=None,
                                                                             check_every=0)
    dataset = _subset(load_video_dataset(args.data), args.max_frames)
    loaded = load_model(args.run, "cpu")
    runner = VideoRunner.from_loaded(loaded, config)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for video in dataset.sequences:
            write_sequence(runner, video, Path(tmp))
        seconds = time.perf_counter() - start
        scores = score_video(tmp, dataset, skip_frames=args.skip_frames)
    frames = sum(runner.kinds.values())
    print(json.dumps({"values": scores.values, "counts": scores.counts(), "fps": frames / seconds,
                      "frames": frames, "kinds": runner.kinds, "image_size": loaded.image_size,
                      "pretrained": loaded.pretrained, "mode": runner.describe(),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(args: argparse.Namespace, name: str) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--run", args.run, "--data", args.data, "--threads",
           str(args.threads), "--max-frames", str(args.max_frames), "--skip-frames", args.skip_frames]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="/work/runs/ecssd_cbam")
    ap.add_argument("--data", default="/work/shared/data/davis16-dev")
    ap.add_argument("--configs", default="k1,k5,k10,k25,k10-noredetect")
    ap.add_argument("--max-frames", type=int, default=0, help="first N frames of each sequence (0: all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per child")
    ap.add_argument("--skip-frames", default="first-last")
    ap.add_argument("--child", choices=tuple(CONFIGS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown --configs {unknown}; choose from {', '.join(CONFIGS)}")
    results = {}
    for name in names:
        results[name] = measure(args, name)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    head = ["config", *(c for c, _ in COLUMNS), "frames/s", "peak RSS MB", "steps"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, r in results.items():
        v = r["values"]
        steps = ", ".join(f"{k} {n}" for k, n in sorted(r["kinds"].items()))
        print(f"| {name} | " + " | ".join(f"{v[key]:.4f}" for _, key in COLUMNS)
              + f" | {r['fps']:.2f} | {r['peak_rss_mb']:.0f} | {steps} |")
    any_r = next(iter(results.values()))
    c = any_r["counts"]
    print(f"\n{'RANDOM INIT, ' if not any_r['pretrained'] else ''}{any_r['image_size']} px, {args.threads} torch "
          f"thread(s) per config, CPU; {c['sequences']} sequences, {c['frames']} frames predicted"
          + (f" (first {args.max_frames} of each sequence)" if args.max_frames else "")
          + f"; scored {c['frames_scored']} of {c['annotated_frames']} annotated frames (--skip-frames "
            f"{args.skip_frames}), per frame -> mean per sequence -> mean over sequences")
    if "k1" in results and "k10" in results:
        ratio = results["k10"]["values"]["JF"] / max(results["k1"]["values"]["JF"], 1e-9)
        print(f"ratio={ratio:.2f} target=1.00")


if __name__ == "__main__":
    main()
