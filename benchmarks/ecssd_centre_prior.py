"""The trivial SOD baseline on a config's held-out test split: a centred Gaussian blob for every image.

    .venv/bin/python benchmarks/ecssd_centre_prior.py [--config ecssd700_compare] [--out runs/centre_prior]

Uses the same split as the config (ECSSD-700 500/100/100: test = names 0601..0700; a config without a
test split uses its validation split) and the same scoring code as `sam2sod score`, so its row sits beside
a trained model's in one table. Nothing is trained or selected, so no split is used for choosing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from sam2sod.apps.quickstart import centre_prior
from sam2sod.atomic import atomic_save_image
from sam2sod.data.io import image_size
from sam2sod.evaluation.score import format_table, score
from sam2sod.runs.config import load_config
from sam2sod.runs.splits import as_items, link_subset, split_pairs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="ecssd700_compare")
    ap.add_argument("--out", type=Path, default=Path("runs/centre_prior"))
    args = ap.parse_args()
    cfg = load_config(args.config)
    splits = split_pairs(cfg.data)
    split = "test" if splits["test"] else "val"
    items = as_items(splits[split])
    gt_dir = link_subset(items, args.out / split)
    for name, _, mask in items:
        atomic_save_image(Image.fromarray(centre_prior(*image_size(mask))), args.out / "pred" / f"{name}.png")
    results = score({"centre-prior": args.out / "pred"}, gt_dir / "masks", args.out / "scores")
    print(f"{len(items)} {split} images ({items[0][0]}..{items[-1][0]}) from {cfg.data.root}\n"
          + format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
