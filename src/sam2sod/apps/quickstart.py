"""`sam2sod quickstart`: a no-download demo on synthetic data.

Builds a synthetic SOD dataset, scores the untrained (random-init) adapter+CBAM model on its validation
split, trains it on CPU for a few minutes, evaluates the best checkpoint prompt-free with the full
`score` outputs, and prints before/after S and MAE plus where everything is.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from sam2sod.errors import SodError
from sam2sod.outputs import in_output_scope
from sam2sod.runs.config import load_config
from sam2sod.wording import plural


def centre_prior(h: int, w: int, sigma: float = 0.3) -> np.ndarray:
    """A centred Gaussian blob map (uint8 HxW): the trivial SOD baseline."""
    y = (np.arange(h) - (h - 1) / 2) / (sigma * h)
    x = (np.arange(w) - (w - 1) / 2) / (sigma * w)
    g = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return np.round(255 * g).astype(np.uint8)


def degrade_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An imperfect prediction from a mask: shifted, blurred and noisy (uint8 HxW)."""
    from PIL import Image, ImageFilter

    h, w = mask.shape
    dy, dx = rng.integers(-max(1, h // 16), max(1, h // 16) + 1, size=2)
    shifted = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
    blurred = np.asarray(Image.fromarray(shifted).filter(ImageFilter.GaussianBlur(radius=max(1.0, h / 40))))
    noisy = blurred.astype(np.float64) + rng.normal(0, 20, size=mask.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


MIN_PAIRS = 10


def split_counts(n: int) -> tuple[int, int]:
    """(train, val) image counts for `n` synthetic pairs: about 1/6 validate (120 -> 100 + 20)."""
    if n < MIN_PAIRS:
        raise SodError(f"quickstart needs --n >= {MIN_PAIRS} synthetic pairs (split into train and validation "
                       f"images), got {n}")
    n_val = max(2, round(n / 6))
    return n - n_val, n_val


def _clear_links(folder: Path) -> None:
    """Remove the symlinks an earlier run left in `folder/images` and `folder/masks` (nothing else)."""
    for sub in ("images", "masks"):
        if (folder / sub).is_dir():
            for p in (folder / sub).iterdir():
                if p.is_symlink():
                    p.unlink()


@in_output_scope
def run_quickstart(out: Path, workers: int | None = None, n: int = 120, size: int = 96,
                   overrides: list[str] | None = None, *, overwrite: bool = False) -> int:
    """Synthetic data -> before-training score -> train -> evaluate; returns the exit code."""
    import torch

    from sam2sod.data.synthetic import make_synthetic, remove_stale_pairs
    from sam2sod.evaluation.evaluate import evaluate
    from sam2sod.outputs import prepare_output_dir
    from sam2sod.runs.checkpoints import model_from_config
    from sam2sod.runs.runtime import select_device
    from sam2sod.runs.splits import link_subset, split_train_val
    from sam2sod.train.trainer import train, validate_model

    t0 = time.time()
    n_train, _ = split_counts(n)
    if size < 16:
        raise SodError(f"quickstart needs --size >= 16, got {size}")
    if workers is not None and workers < 1:
        raise SodError(f"--workers must be >= 1, got {workers}")
    out = prepare_output_dir(out, overwrite=overwrite, inputs=[], command="quickstart")
    data, run = out / "synthetic", out / "run"
    remove_stale_pairs(data, make_synthetic(data, n=n, size=size, seed=0))
    print(f"[1/4] synthetic dataset: {data} ({plural(n, 'pair')}, {size} px)")
    cfg = load_config("quickstart", [f"data.root={data}", f"data.train_count={n_train}", *(overrides or [])])
    device = select_device(cfg.device)
    _, val_items = split_train_val(cfg.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = model_from_config(cfg.model, device, cfg.seed)
    torch.manual_seed(cfg.seed)
    before = validate_model(model, val_items, cfg, device, None)
    del model
    print(f"[2/4] untrained (random-init) model on {plural(len(val_items), 'val image')}: "
          f"S {before['S']:.4f}  MAE {before['MAE']:.4f}")
    if (run / "last.pt").exists() or (run / "metrics.csv").exists():  # an earlier quickstart run: start afresh
        import shutil

        shutil.rmtree(run)
    summary = train(cfg, run)
    print(f"[3/4] trained {plural(summary['step'], 'step')} in {summary['train_time_s']:.0f} s: {run}")
    _clear_links(out / "val")
    val_dir = link_subset(val_items, out / "val")
    after = evaluate(run / "best.pt", [val_dir], out / "eval", device=cfg.device, workers=workers,
                     overwrite=overwrite)["val"]
    print(f"\n[4/4] prompt-free validation, before -> after training:\n"
          f"  S   {before['S']:.4f} -> {after['Smeasure']:.4f}\n  MAE {before['MAE']:.4f} -> {after['MAE']:.4f}")
    print(f"\nrun dir (checkpoints, metrics.csv, tb/): {run}\nscores, curves, predictions: {out / 'eval' / 'val'}"
          f"\ntotal time {time.time() - t0:.0f} s")
    return 0
