"""`sam2sod quickstart`: a no-download demo on synthetic data that ends with a score table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from sam2sod.atomic import atomic_save_image
from sam2sod.data.discovery import list_images
from sam2sod.data.io import load_mask


def centre_prior(h: int, w: int, sigma: float = 0.3) -> np.ndarray:
    """A centred Gaussian blob map (uint8 HxW): the trivial SOD baseline."""
    y = (np.arange(h) - (h - 1) / 2) / (sigma * h)
    x = (np.arange(w) - (w - 1) / 2) / (sigma * w)
    g = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return np.round(255 * g).astype(np.uint8)


def degrade_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An imperfect prediction from a mask: shifted, blurred and noisy (uint8 HxW)."""
    h, w = mask.shape
    dy, dx = rng.integers(-max(1, h // 16), max(1, h // 16) + 1, size=2)
    shifted = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
    blurred = np.asarray(Image.fromarray(shifted).filter(ImageFilter.GaussianBlur(radius=max(1.0, h / 40))))
    noisy = blurred.astype(np.float64) + rng.normal(0, 20, size=mask.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_baseline_predictions(mask_dir: Path, out: Path, seed: int = 0) -> dict[str, Path]:
    """Write a 'degraded-gt' and a 'centre-prior' prediction folder; return {method: folder}."""
    rng = np.random.default_rng(seed)
    folders = {"degraded-gt": out / "degraded-gt", "centre-prior": out / "centre-prior"}
    for name, path in sorted(list_images(mask_dir).items()):
        mask = load_mask(path)
        atomic_save_image(Image.fromarray(degrade_mask(mask, rng)), folders["degraded-gt"] / f"{name}.png")
        atomic_save_image(Image.fromarray(centre_prior(*mask.shape)), folders["centre-prior"] / f"{name}.png")
    return folders


def run_quickstart(out: Path, workers: int | None = None) -> int:
    """Synthetic dataset -> imperfect predictions -> `score` outputs; prints where results are."""
    from sam2sod.data.synthetic import make_synthetic
    from sam2sod.engine.score import format_table, score

    out = Path(out)
    data = out / "synthetic"
    make_synthetic(data, n=40, size=128, seed=0)
    print(f"[1/3] synthetic dataset: {data} (40 pairs, 128 px)")
    preds = write_baseline_predictions(data / "masks", out / "predictions")
    print(f"[2/3] predictions: {', '.join(str(p) for p in preds.values())}")
    results = score(preds, data / "masks", out / "scores", workers=workers)
    print("[3/3] scores:\n" + format_table(results))
    print(f"\nresults: {out / 'scores'} (metrics.json, per_image.csv, curves.csv, pr_curve.png, f_curve.png)")
    return 0
