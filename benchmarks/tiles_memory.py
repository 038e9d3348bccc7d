"""Peak memory of `--tiles auto` against the image size (issue 21): 24 MP and 100 MP synthetic images.

Each case runs in its own fresh process: build the model (random-init `adapter_cbam`, hiera-tiny, at
--image-size), make a synthetic HxWx3 uint8 image in memory (a bright rectangle crossing the tile borders on a
dark ground), note the RSS, then predict its map through the one inference path (`tile_prob_fn` +
`tiled_saliency`, as `predict --tiles auto` does) and note the peak RSS. The floor any method needs is the
decoded image (3 bytes per pixel) plus the output map (1 byte per pixel); with tiles the working memory above
that floor is one tile's forward and float maps plus the strip of rows two tile rows share (a quarter of a tile
high, float32 over the image's width), not the image area.
A global pass at full size (`--tiles 1`, the squash path) is measured for comparison: it upsamples the logits
to a float32 map of the whole image (4 bytes per pixel more).

Usage:
    .venv/bin/python benchmarks/tiles_memory.py [--image-size 512] [--megapixels 24 100] [--global-pass]
Last lines: per size `ratio=X.XX target=1.00` with ratio = (floor + 1 GiB) / peak RSS above the model's RSS,
i.e. pass when the tiled run stays within 1 GiB of working memory above the floor.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_GIB = 1024 ** 3


def _rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class _Stub:
    """A stand-in model for the tiling machinery alone: logits (B,1,S/4,S/4) = the input's channel mean."""

    training = False

    def __call__(self, images, prompts=None, multimask=False):
        import torch.nn.functional as F

        return {"logits": F.avg_pool2d(images.mean(1, keepdim=True), 4)}

    def eval(self):
        return self

    def train(self, mode=True):
        return self


def child(mp: float, image_size: int, tiles: str, stub: bool = False) -> dict:
    """Run one case in this process; returns its record."""
    import warnings

    import numpy as np
    import torch

    warnings.simplefilter("ignore")
    from sam2sod.data.tiles import tile_count, tiled_saliency
    from sam2sod.infer.inference import tile_prob_fn
    from sam2sod.models import create_model

    torch.manual_seed(0)
    model = _Stub() if stub else create_model("adapter_cbam", image_size=image_size, seed=0).eval()
    w = int(round(math.sqrt(mp * 1e6 * 4 / 3)))
    h = int(round(mp * 1e6 / w))
    image = np.full((h, w, 3), 30, np.uint8)
    image[h // 4:3 * h // 4, w // 5:4 * w // 5] = 230
    prob = tile_prob_fn(model, image_size, torch.device("cpu"))
    with torch.no_grad():
        prob(image[:64, :64], (64, 64))  # warm-up: kernels and allocator at the tile size
    base = _rss_now()
    t0 = time.perf_counter()
    n_tiles = tile_count(h, w, image_size, "auto" if tiles == "auto" else int(tiles))
    out = tiled_saliency(image, image_size, prob, "auto" if tiles == "auto" else int(tiles))
    seconds = time.perf_counter() - t0
    peak = _rss_peak()
    centre = int(out[h // 2, w // 2])
    return {"megapixels": round(h * w / 1e6, 1), "h": h, "w": w, "tiles": tiles, "n_along": n_tiles,
            "image_size": image_size, "rss_before_mb": base / 2**20, "peak_mb": peak / 2**20,
            "above_mb": (peak - base) / 2**20, "image_mb": h * w * 3 / 2**20, "map_mb": h * w / 2**20,
            "seconds": seconds, "centre_value": centre, "model": "stub" if stub else "adapter_cbam"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=512, help="model input size (default 512)")
    ap.add_argument("--megapixels", type=float, nargs="+", default=[24.0, 100.0])
    ap.add_argument("--global-pass", action="store_true", help="also measure --tiles 1 (one pass at full size)")
    ap.add_argument("--stub", action="store_true", help="a stand-in model (channel mean): the tiling path alone, "
                    "fast at 100 MP; the real model adds its per-tile forward, the same for every image size")
    ap.add_argument("--child", nargs=4, metavar=("MP", "SIZE", "TILES", "STUB"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(float(args.child[0]), int(args.child[1]), args.child[2],
                                           args.child[3] == "1")))
        return 0
    import os

    model = "a stand-in (channel mean)" if args.stub else "adapter_cbam hiera-tiny (random init)"
    print(f"{os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; model "
          f"{model} at {args.image_size} px; RSS in MiB")
    rows = []
    for mp in args.megapixels:
        for tiles in (["auto", "1"] if args.global_pass else ["auto"]):
            proc = subprocess.run([sys.executable, __file__, "--child", str(mp), str(args.image_size), tiles,
                                   "1" if args.stub else "0"],
                                  capture_output=True, text=True, cwd=ROOT)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(f"{mp} MP tiles {tiles}: failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
                continue
            r = json.loads(line[0][7:])
            rows.append(r)
            print(f"{r['megapixels']:>6} MP {r['w']}x{r['h']} tiles {tiles:>4} ({r['n_along']} along the longer "
                  f"side): before {r['rss_before_mb']:.0f}, peak {r['peak_mb']:.0f}, above {r['above_mb']:.0f} "
                  f"(floor: image {r['image_mb']:.0f} in the RSS before + map {r['map_mb']:.0f}), "
                  f"{r['seconds']:.1f} s, centre {r['centre_value']}")
    for r in rows:
        if r["tiles"] == "auto":
            limit = r["map_mb"] + _GIB / 2**20
            print(f"{r['megapixels']} MP tiles auto: ratio={limit / max(r['above_mb'], 1e-9):.2f} target=1.00")
    return 0


if __name__ == "__main__":
    sys.exit(main())
