"""The trivial SOD baseline on a run's validation split: a centred Gaussian blob for every image.

    .venv/bin/python benchmarks/ecssd_centre_prior.py [--config ecssd700_cpu] [--out runs/centre_prior]

Uses the same data split as the config (ECSSD-700: names 0601..0700) and the same scoring code as
`sam2sod score`, so its row sits beside a trained model's in one table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from sam2sod.atomic import atomic_save_image
from sam2sod.data.io import image_size
from sam2sod.engine.config import load_config
from sam2sod.engine.data import link_subset, split_train_val
from sam2sod.engine.quickstart import centre_prior
from sam2sod.engine.score import format_table, score


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="ecssd700_cpu")
    ap.add_argument("--out", type=Path, default=Path("runs/centre_prior"))
    args = ap.parse_args()
    cfg = load_config(args.config)
    _, val = split_train_val(cfg.data)
    val_dir = link_subset(val, args.out / "val")
    for name, _, mask in val:
        atomic_save_image(Image.fromarray(centre_prior(*image_size(mask))), args.out / "pred" / f"{name}.png")
    results = score({"centre-prior": args.out / "pred"}, val_dir / "masks", args.out / "scores")
    print(f"{len(val)} validation images from {cfg.data.root}\n" + format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
