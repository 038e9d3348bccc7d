"""`sam2sod evaluate` and `sam2sod predict`: run a trained checkpoint on images, write PNGs (and scores).

Evaluation is prompt-free by default. `prompt="oracle-box|oracle-points|oracle-mask"` derives prompts from
the ground truth: an upper bound only, and every output made that way says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from sam2sod.atomic import atomic_save_image, atomic_write_text
from sam2sod.data import find_pairs, list_images
from sam2sod.data.io import load_image
from sam2sod.engine.checkpoint import build_model_from_checkpoint, config_of, read_checkpoint
from sam2sod.engine.inference import ORACLE_LABEL, predict_items
from sam2sod.engine.runtime import select_device
from sam2sod.engine.score import format_table, score
from sam2sod.errors import SodError

PROMPTS = ("none", "oracle-box", "oracle-points", "oracle-mask")
RANDOM_INIT_NOTE = "RANDOM INIT: no pretrained weights (SAM2 / ImageNet); not comparable to published numbers"


def _notes(ckpt: dict, prompt: str) -> list[str]:
    notes = []
    if not ckpt.get("pretrained", False):
        notes.append(RANDOM_INIT_NOTE)
    if prompt != "none":
        notes.append(f"{ORACLE_LABEL}: {prompt}")
    return notes


def evaluate(checkpoint: str | Path, datasets: list[str | Path], out: str | Path, prompt: str = "none",
             device: str = "auto", batch_size: int = 8, workers: int | None = None,
             base_checkpoint: str | None = None) -> dict[str, dict]:
    """Predict every dataset with the checkpoint, write `OUT/NAME/pred/*.png` and the score outputs."""
    if prompt not in PROMPTS:
        raise SodError(f"--prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
    ckpt = read_checkpoint(checkpoint)
    cfg = config_of(ckpt)
    dev = select_device(device)
    model = build_model_from_checkpoint(ckpt, dev, base_checkpoint)
    notes = _notes(ckpt, prompt)
    oracle = None if prompt == "none" else prompt.split("-", 1)[1]
    out = Path(out)
    summary = {}
    names = [Path(d).resolve().name for d in datasets]
    if len(set(names)) != len(names):
        raise SodError(f"--data folders must have distinct names, got {', '.join(names)}")
    for data_dir, name in zip(datasets, names, strict=True):
        pairs = find_pairs(data_dir)
        pred_dir, mask_dir = out / name / "pred", pairs[0].mask.parent
        items = [(p.name, p.image, p.mask if oracle else None) for p in pairs]
        bar = tqdm(total=len(items), desc=f"predict {name}", unit="img")
        for img_name, pred in predict_items(model, items, cfg.model.image_size, dev, batch_size, oracle=oracle,
                                            multimask=cfg.model.multimask):
            atomic_save_image(Image.fromarray(pred), pred_dir / f"{img_name}.png")
            bar.update()
        bar.close()
        method = cfg.model.method + ("" if prompt == "none" else f" [{ORACLE_LABEL}]")
        results = score({method: pred_dir}, mask_dir, out / name, workers=workers,
                        notes={method: "; ".join(notes)} if notes else None)
        print(f"\n{name}:\n" + format_table(results, {method: "; ".join(notes)} if notes else None))
        summary[name] = results[0].metrics
    if notes:
        atomic_write_text(out / "WARNING.txt", "\n".join(notes) + "\n")
    atomic_write_text(out / "summary.json", json.dumps(
        {"checkpoint": str(ckpt["path"]), "prompt": prompt, "notes": notes, "datasets": summary}, indent=2) + "\n")
    return summary


def overlay(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB uint8 HxWx3: the image with the saliency map blended in red."""
    s = saliency.astype(np.float32)[..., None] / 255.0
    red = np.zeros_like(image, dtype=np.float32)
    red[..., 0] = 255
    out = image.astype(np.float32) * (1 - alpha * s) + red * (alpha * s)
    return np.clip(out, 0, 255).astype(np.uint8)


def predict(checkpoint: str | Path, inputs: str | Path, out: str | Path, with_overlay: bool = False,
            device: str = "auto", batch_size: int = 8, base_checkpoint: str | None = None) -> list[Path]:
    """Write an 8-bit saliency PNG per image (original size) to `out`, and overlays to `out/overlay`."""
    ckpt = read_checkpoint(checkpoint)
    cfg = config_of(ckpt)
    dev = select_device(device)
    src = Path(inputs)
    if src.is_file():
        images = {src.stem: src}
    elif src.is_dir():
        images = list_images(src)
    else:
        raise SodError(f"--input {src} does not exist")
    model = build_model_from_checkpoint(ckpt, dev, base_checkpoint)
    out = Path(out)
    written = []
    items = [(n, p, None) for n, p in sorted(images.items())]
    with torch.no_grad():
        bar = tqdm(total=len(items), desc="predict", unit="img")
        for name, pred in predict_items(model, items, cfg.model.image_size, dev, batch_size,
                                        multimask=cfg.model.multimask):
            atomic_save_image(Image.fromarray(pred), out / f"{name}.png")
            if with_overlay:
                blend = overlay(load_image(images[name]), pred)
                atomic_save_image(Image.fromarray(blend), out / "overlay" / f"{name}.jpg")
            written.append(out / f"{name}.png")
            bar.update()
        bar.close()
    for note in _notes(ckpt, "none"):
        print(f"warning: {note}")
    return written
