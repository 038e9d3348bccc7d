"""`sam2sod predict` options beyond prompt-free maps: prompts for one image, output formats, refine, TTA.

`predict_options` checks everything before the output folder is made or the model is built (a prompt
against the image's size read from its header); `prompted_maps` runs the `Predictor` on the one image;
`encode_outputs` encodes the requested formats (and the legacy `--overlay` JPEG) for `predict` to write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sam2sod.data.io import image_size, load_image
from sam2sod.errors import SodError
from sam2sod.infer.formats import (
    check_formats,
    check_threshold,
    draw_overlay,
    encode_formats,
    encode_image,
    to_mask,
)
from sam2sod.infer.forward import check_refine
from sam2sod.names import inside

__all__ = ["PredictOptions", "parse_box", "parse_point", "predict_options", "prompted_maps", "encode_outputs"]


@dataclass(frozen=True)
class PredictOptions:
    """Validated options; points (N,2) / labels (N,) / box (4,) in original pixels, or None."""

    formats: tuple[str, ...] = ("map",)
    threshold: float | None = None
    refine: int = 0
    tta: str | None = None
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None

    @property
    def prompted(self) -> bool:
        return self.points is not None or self.box is not None


def _numbers(text: str, what: str, counts: Sequence[int]) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        form = {"--point": "X,Y or X,Y,LABEL (LABEL 1 foreground, 0 background)", "--box": "X0,Y0,X1,Y1"}[what]
        raise SodError(f"{what} {text!r}: expected {form} in original-image pixels")
    return values


def parse_point(text: str) -> tuple[float, float, int]:
    """``"X,Y"`` or ``"X,Y,LABEL"`` -> (x, y, label); label defaults to 1 (foreground)."""
    v = _numbers(text, "--point", (2, 3))
    label = v[2] if len(v) == 3 else 1.0
    if label not in (0.0, 1.0):
        raise SodError(f"--point {text!r}: LABEL must be 1 (foreground) or 0 (background), got {label:g}")
    return v[0], v[1], int(label)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"X0,Y0,X1,Y1"`` -> (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = _numbers(text, "--box", (4,))
    return x0, y0, x1, y1


def predict_options(src: Path, formats: Sequence[str] | None = None, threshold: float | None = None,
                    refine: int = 0, tta: str | None = None, points: Any = None, labels: Any = None,
                    box: Any = None) -> PredictOptions:
    """Check the options (and prompts against the image header's size); SodError on the first problem."""
    from sam2sod.infer.predictor import make_prompt_batch

    fmts = check_formats(formats)
    thr = check_threshold(threshold)
    tta = check_refine(refine, tta)
    pts = lbl = bx = None
    if points is not None and len(points) == 0:
        points = labels = None
    if points is not None or box is not None:
        if not src.is_file():
            raise SodError(f"--point / --box prompt one image: --input must be an image file, not the folder {src}")
        if refine:
            raise SodError("--refine starts from the prompt-free prediction; it cannot be combined with --point / "
                           "--box")
        hw = image_size(src, "image")
        make_prompt_batch(hw, 64, points, labels, box)  # validation only (the size does not matter here)
        if points is not None:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            lbl = np.ones(len(pts), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        bx = None if box is None else np.asarray(box, dtype=np.float64).reshape(4)
    return PredictOptions(fmts, thr, refine, tta, pts, lbl, bx)


def prompted_maps(model: torch.nn.Module, items: Sequence[tuple[str, Path, Any]], image_size_: int,
                  device: torch.device, multimask: bool, opts: PredictOptions) -> Iterator[tuple[str, np.ndarray]]:
    """(name, uint8 HxW map) of the one prompted image, through `sam2sod.Predictor`."""
    from sam2sod.infer.predictor import Predictor

    if not items:
        return
    predictor = Predictor(model, image_size_, device, multimask=multimask)
    for name, path, _ in items:
        predictor.set_image(path)
        pred = predictor.predict(points=opts.points, labels=opts.labels, box=opts.box, tta=opts.tta)
        yield name, pred.to_uint8()


def encode_outputs(out: Path, name: str, saliency: np.ndarray, image_path: Path, opts: PredictOptions,
                   legacy_overlay: bool = False) -> list[tuple[Path, bytes]]:
    """(path, encoded bytes) of `opts.formats` of one map (and `overlay/NAME.jpg` for `--overlay`), unwritten."""
    image = load_image(image_path) if legacy_overlay or {"alpha", "overlay"} & set(opts.formats) else None
    files = encode_formats(out, name, saliency, opts.formats, image, opts.threshold)
    if legacy_overlay:
        files.append((inside(out, "overlay", f"{name}.jpg"), encode_image(draw_overlay(image, to_mask(saliency,
                                                                                         opts.threshold)), "JPEG")))
    return files
