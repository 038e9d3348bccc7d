"""`sam2sod predict`: saliency maps (and masks, cut-outs, overlays) for images, from any model `load_model` opens.

Prompt-free and batched by default (`sam2sod.infer.inference.predict_items`); with `points` / `box` one image
goes through `Predictor`. Both share one forward and one logits-to-map conversion (`sam2sod.infer.forward`).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from sam2sod.data import list_images
from sam2sod.data.discovery import warn_nested
from sam2sod.data.io import image_size
from sam2sod.errors import SodError
from sam2sod.infer.engines import check_engine, load_engine, use_engine
from sam2sod.infer.formats import check_output_names, write_files
from sam2sod.infer.inference import check_resize, parse_tiles, predict_items
from sam2sod.infer.predict_options import encode_outputs, predict_options, prompted_maps
from sam2sod.outputs import check_output_dir, in_output_scope, prepare_output_dir
from sam2sod.runs.loader import open_source
from sam2sod.runs.runtime import inference_dtype, select_device

__all__ = ["RANDOM_INIT_NOTE", "PredictReport", "check_counts", "default_batch_size", "predict", "predict_report"]

RANDOM_INIT_NOTE = "RANDOM INIT: no pretrained weights (SAM2 / ImageNet); not comparable to published numbers"
Item = tuple[str, Path, Path | None]


def check_counts(batch_size: int, workers: int | None = None) -> None:
    """`--batch-size` and `--workers` must be >= 1 (workers may be None: all cores)."""
    if batch_size < 1:
        raise SodError(f"--batch-size must be >= 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise SodError(f"--workers must be >= 1, got {workers}")


def default_batch_size(device: torch.device) -> int:
    """`predict`'s batch size: 1 on CPU (batching gains nothing there and costs memory: hiera-tiny at 1024 px
    ran at 0.41 img/s with batch 1 and 0.31 with batch 8 on 2 cores), 8 on accelerators."""
    return 1 if device.type == "cpu" else 8


@dataclass
class PredictReport:
    """What `predict_report` did: the maps written, and one message per image it skipped (unreadable)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    total: int = 0
    model: str = ""  # "zero-shot SAM2 (<mode>)" for an untrained SAM2, else ""


def _collect_images(src: Path, recursive: bool) -> dict[str, Path]:
    if src.is_file():
        return {src.stem: src}
    if src.is_dir():
        images = list_images(src, recursive=recursive)
        if not recursive:
            warn_nested(src, "image")
        return images
    raise SodError(f"--input {src} does not exist")


@in_output_scope
def predict_report(checkpoint: str | Path, inputs: str | Path, out: str | Path, with_overlay: bool = False,
                   device: str = "auto", batch_size: int | None = None, base_checkpoint: str | None = None, *,
                   strict: bool = False, recursive: bool = False, overwrite: bool = False,
                   formats: Sequence[str] | None = None, threshold: float | None = None, refine: int = 0,
                   tta: str | None = None, points: object = None, labels: object = None,
                   box: object = None, workers: int | None = None, dtype: str = "fp32",
                   progress: bool = True, engine: str = "torch", resize: str = "squash",
                   tiles: int | str | None = None, zero_shot: object = None) -> PredictReport:
    """`predict`, returning a `PredictReport`. An unreadable image is reported on one line and skipped;
    with `strict` the first one raises `SodError`. Inputs and `out` are checked before the model is built.

    `formats` (map | mask | alpha | overlay, `sam2sod.infer.formats`) at `threshold` (None: adaptive);
    `points` (N,2) + `labels` (N,) / `box` (4,) in original pixels prompt a single image file; `refine` /
    `tta` as for `evaluate`. `report.written` lists every file written. `workers` decode the next images
    while the model runs (None: `default_workers`); PNGs are encoded here and written by a thread; `dtype`
    fp32 | bf16 | fp16 runs the model under autocast (`sam2sod.runs.runtime.inference_dtype`); `engine`
    torch | onnxruntime (`sam2sod.infer.engines`); `resize` squash | pad and `tiles` None | "auto" |
    N (`sam2sod.infer.inference`). `checkpoint`: anything
    `sam2sod.load_model` opens; `progress`: the progress bar; `zero_shot`: a mode name or
    `sam2sod.runs.zero_shot_options.ZeroShotOptions` for an official SAM2 name or file.
    """
    dev = select_device(device)
    check_engine(engine, dev, dtype, refine)
    tiles = parse_tiles(tiles)
    check_resize(resize, tiles)
    batch_size = default_batch_size(dev) if batch_size is None else batch_size
    check_counts(batch_size)
    if workers is not None and workers < 0:
        raise SodError(f"--decode-workers must be >= 0 (0 decodes in the main process), got {workers}")
    src = Path(inputs)
    images = _collect_images(src, recursive)
    opts = predict_options(src, formats, threshold, refine, tta, points, labels, box)
    if opts.prompted and (resize != "squash" or tiles is not None):
        raise SodError("--point / --box work with --resize squash and no --tiles")
    report = PredictReport(total=len(images))

    def bad(path: Path, err: SodError) -> None:
        if strict:
            raise SodError(f"{err} (--strict stops at the first unreadable image)")
        report.skipped.append(str(err))
        tqdm.write(f"skipped: {err}", file=sys.stderr)

    items: list[Item] = []
    for name, path in images.items():
        try:
            image_size(path, "image")
        except SodError as err:
            bad(path, err)
            continue
        items.append((name, path, None))
    if not items:
        raise SodError(_none_readable(len(images), src))
    amp = inference_dtype(dev, dtype)
    extra = ["overlay/{name}.jpg"] if with_overlay else []
    check_output_names(list(images), opts.formats, extra)
    check_output_dir(out, overwrite=overwrite, inputs=[src], command="predict")
    source = open_source(checkpoint, base_checkpoint, zero_shot)  # a bad model path fails here, before --out exists
    report.model = source.method if source.kind == "official" else ""
    load_engine(engine)
    out = prepare_output_dir(out, overwrite=overwrite, inputs=[src], command="predict")
    check_output_names(list(images), opts.formats, extra, out)  # no symbolic link inside out leads outside
    model = use_engine(source.build(dev).model, engine, source.multimask) if items else None
    with torch.no_grad(), tqdm(total=len(items), desc="predict", unit="img", file=sys.stderr,
                               disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2sod-write") as writer:
        if opts.prompted:
            maps = prompted_maps(model, items, source.image_size, dev, source.multimask, opts)
        else:
            maps = predict_items(model, items, source.image_size, dev, batch_size, workers=workers,
                                 multimask=source.multimask, autocast_dtype=amp, refine=opts.refine, tta=opts.tta,
                                 on_unreadable=lambda item, err: (bad(item[1], err), bar.update()),
                                 resize=resize, tiles=tiles)
        pending: deque = deque()  # encoded here; the writes (and their fsync waits) overlap the next batch
        for name, pred in maps:
            files = encode_outputs(out, name, pred, images[name], opts, with_overlay)
            pending.append(writer.submit(write_files, files))
            while len(pending) > 2 * batch_size or (pending and pending[0].done()):
                report.written += pending.popleft().result()
                bar.update()
        while pending:
            report.written += pending.popleft().result()
            bar.update()
    if len(report.skipped) == report.total:
        raise SodError(_none_readable(report.total, src))
    if not source.pretrained:
        print(f"warning: {RANDOM_INIT_NOTE}")
    return report


def _none_readable(n: int, src: Path) -> str:
    what = "the image" if n == 1 else f"any of the {n} images"
    return f"cannot read {what} in --input {src} (listed above as skipped): nothing to predict"


def predict(checkpoint: str | Path, inputs: str | Path, out: str | Path, with_overlay: bool = False,
            device: str = "auto", batch_size: int | None = None, base_checkpoint: str | None = None, *,
            strict: bool = False, recursive: bool = False, overwrite: bool = False,
            **options: object) -> list[Path]:
    """Write an 8-bit saliency PNG per image (original size) to `out`, and overlays to `out/overlay`.

    Returns the written paths; see `predict_report` for skipped images, the checks made first and `options`
    (formats, threshold, refine, tta, points, labels, box).
    """
    return predict_report(checkpoint, inputs, out, with_overlay, device, batch_size, base_checkpoint,
                          strict=strict, recursive=recursive, overwrite=overwrite, **options).written
