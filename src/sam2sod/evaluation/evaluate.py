"""`sam2sod evaluate` and `sam2sod predict`: run a trained checkpoint on images, write PNGs (and scores).

Evaluation is prompt-free by default. `prompt="oracle-box|oracle-points|oracle-mask"` derives prompts from
the ground truth: an upper bound only, and every output made that way says so.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from sam2sod.atomic import atomic_write_bytes, atomic_write_text
from sam2sod.data import check_pairs, find_layout, find_pairs, list_images
from sam2sod.data.io import image_size, load_mask
from sam2sod.errors import SodError
from sam2sod.evaluation.score import format_table, score, warn_nested
from sam2sod.infer.formats import encode_image
from sam2sod.infer.inference import ORACLE_LABEL, predict_items
from sam2sod.outputs import prepare_output_dir
from sam2sod.runs.checkpoints import build_model_from_checkpoint, config_of, read_checkpoint
from sam2sod.runs.runtime import inference_dtype, select_device
from sam2sod.runs.splits import SPLITS, link_subset, split_pairs

PROMPTS = ("none", "oracle-box", "oracle-points", "oracle-mask")
RANDOM_INIT_NOTE = "RANDOM INIT: no pretrained weights (SAM2 / ImageNet); not comparable to published numbers"
Item = tuple[str, Path, Path | None]


def _notes(ckpt: dict, prompt: str) -> list[str]:
    notes = []
    if not ckpt.get("pretrained", False):
        notes.append(RANDOM_INIT_NOTE)
    if prompt != "none":
        notes.append(f"{ORACLE_LABEL}: {prompt}")
    return notes


def check_counts(batch_size: int, workers: int | None = None) -> None:
    """`--batch-size` and `--workers` must be >= 1 (workers may be None: all cores)."""
    if batch_size < 1:
        raise SodError(f"--batch-size must be >= 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise SodError(f"--workers must be >= 1, got {workers}")


def _check_masks_readable(pairs: Sequence) -> None:
    """Decode every mask (they are small) so a broken one is reported before any prediction."""
    for p in pairs:
        load_mask(p.mask)


def _named_datasets(datasets: Sequence[str | Path | tuple[str, str | Path]]) -> list[tuple[str, Path]]:
    """(name, folder) pairs: a plain folder is named after itself, a (name, folder) pair keeps its name."""
    named = [(str(d[0]), Path(d[1])) if isinstance(d, tuple) else (Path(d).resolve().name, Path(d))
             for d in datasets]
    names = [n for n, _ in named]
    bad = [n for n in names if n in ("", ".", "..") or "/" in n or "\\" in n]
    if bad:
        raise SodError(f"invalid dataset name {bad[0]!r}: use a plain name (it names the output folder)")
    if len({n.lower() for n in names}) != len(names):
        raise SodError(f"--data folders must have distinct names, got {', '.join(names)}; name them apart with "
                       "--data NAME=DIR")
    return named


def evaluate(checkpoint: str | Path, datasets: Sequence[str | Path | tuple[str, str | Path]], out: str | Path,
             prompt: str = "none", device: str = "auto", batch_size: int = 8, workers: int | None = None,
             base_checkpoint: str | None = None, *, recursive: bool = False,
             overwrite: bool = False, split: str = "all", refine: int = 0,
             tta: str | None = None, exclude_overlap: bool = False) -> dict[str, dict]:
    """Predict every dataset with the checkpoint, write `OUT/NAME/pred/*.png` and the score outputs.

    Every input is checked (image headers, every mask decoded) and `out` is prepared with
    `prepare_output_dir` before the model is built. `recursive` includes sub-folders (outputs mirror them).
    `split` "train" | "val" | "test" applies the run's own split by name (`data.train_count` / `val_count`)
    to each root and scores only that part, e.g. the held-out test split of the root it trained on.
    `datasets` holds folders (named after the folder) or (name, folder) pairs, e.g. from
    `sam2sod.data.datasets.resolve_data_args`, so two folders called ``test`` can be told apart.
    `refine` K / `tta` "flip": self-prompted refinement and flip TTA (`sam2sod.infer.refine`; no ground truth).
    """
    if prompt not in PROMPTS:
        raise SodError(f"--prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
    if split not in ("all", *SPLITS):
        raise SodError(f"--split must be all, {', '.join(SPLITS)}; got {split!r}")
    check_counts(batch_size, workers)
    tta = _check_variant(refine, tta, prompt)
    named = _named_datasets(datasets)
    names = [n for n, _ in named]
    datasets = [d for _, d in named]
    ckpt = read_checkpoint(checkpoint) if split != "all" else None  # the split rule is the run's
    plans, inputs = [], []
    for data_dir in datasets:
        image_dir, mask_dir = find_layout(data_dir)
        pairs = find_pairs(data_dir, recursive=recursive)
        if ckpt is not None:
            pairs = _split_of(pairs, config_of(ckpt), split, data_dir)
        if not recursive:
            warn_nested(image_dir, "image")
            warn_nested(mask_dir, "mask")
        check_pairs(pairs, resize_mask=True)
        _check_masks_readable(pairs)
        plans.append((pairs, mask_dir))
        inputs += [Path(data_dir), image_dir, mask_dir]
    out = prepare_output_dir(out, overwrite=overwrite, inputs=inputs, command="evaluate")
    if ckpt is None:
        ckpt = read_checkpoint(checkpoint)
        for data_dir in datasets:
            _warn_training_root(config_of(ckpt), data_dir)
    cfg = config_of(ckpt)
    plans = [(_check_overlap(pairs, cfg, d, exclude_overlap), m) for (pairs, m), d in zip(plans, datasets, strict=True)]
    dev = select_device(device)
    model = build_model_from_checkpoint(ckpt, dev, base_checkpoint)
    notes = _notes(ckpt, prompt)
    oracle = None if prompt == "none" else prompt.split("-", 1)[1]
    summary = {}
    for (pairs, mask_dir), name in zip(plans, names, strict=True):
        pred_dir = out / name / "pred"
        if split != "all" or exclude_overlap:  # score exactly these pairs' masks (symlinks; the dataset is untouched)
            subset = f"{split}_split" if split != "all" else "no_overlap"
            mask_dir = link_subset([(p.name, p.image, p.mask) for p in pairs], out / name / subset) / "masks"
        items = [(p.name, p.image, p.mask if oracle else None) for p in pairs]
        with tqdm(total=len(items), desc=f"predict {name}", unit="img", file=sys.stderr) as bar:
            for img_name, pred in predict_items(model, items, cfg.model.image_size, dev, batch_size, oracle=oracle,
                                                workers=None, multimask=cfg.model.multimask, refine=refine, tta=tta):
                atomic_write_bytes(pred_dir / f"{img_name}.png", encode_image(pred))
                bar.update()
        method = cfg.model.method + _variant_label(refine, tta) + ("" if prompt == "none" else f" [{ORACLE_LABEL}]")
        results = score({method: pred_dir}, mask_dir, out / name, workers=workers,
                        notes={method: "; ".join(notes)} if notes else None, recursive=recursive,
                        nested_warning=False)
        print(f"\n{name}:\n" + format_table(results, {method: "; ".join(notes)} if notes else None))
        summary[name] = results[0].metrics
    if notes:
        atomic_write_text(out / "WARNING.txt", "\n".join(notes) + "\n")
    atomic_write_text(out / "summary.json", json.dumps(
        {"checkpoint": str(ckpt["path"]), "prompt": prompt, "split": split, "refine": refine, "tta": tta or "none",
         "notes": notes, "datasets": summary},
        indent=2) + "\n")
    return summary


def _check_variant(refine: int, tta: str | None, prompt: str) -> str | None:
    """Validate `refine` / `tta` for evaluate (refinement starts prompt-free: no oracle prompt with it)."""
    from sam2sod.infer.refine import check_refine

    tta = check_refine(refine, tta)
    if refine and prompt != "none":
        raise SodError(f"--refine starts prompt-free; it cannot be combined with --prompt {prompt}")
    return tta


def _variant_label(refine: int, tta: str | None) -> str:
    """' [self-refine K]' / ' [tta flip]' for the method name in tables (empty for the plain model)."""
    return (f" [self-refine {refine}]" if refine else "") + (f" [tta {tta}]" if tta else "")


def _check_overlap(pairs: list, cfg, data_dir: Path, exclude: bool) -> list:
    """Warn when test images duplicate (exactly or nearly) the run's training images; drop them with `exclude`."""
    from sam2sod.data.datasets import describe_overlap, find_overlap, overlap_names

    train_root = cfg.data.root
    if not train_root or not Path(train_root).is_dir() or Path(train_root).resolve() == Path(data_dir).resolve():
        return pairs
    report = find_overlap(train_root, data_dir)
    found = overlap_names(report)
    if not found:
        return pairs
    lines = "; ".join(describe_overlap(report, str(train_root)))
    print(f"warning: {data_dir}: {len(found)} images duplicate the run's training data ({lines}); "
          + ("excluded from scoring" if exclude else "use --exclude-overlap to leave them out"), file=sys.stderr)
    return [p for p in pairs if p.name not in found] if exclude else pairs


def _warn_training_root(cfg, data_dir: str | Path) -> None:
    """Warn when all of the root the run trained on is scored (its train and val images included)."""
    if cfg.data.root is not None and Path(cfg.data.root).resolve() == Path(data_dir).resolve():
        print(f"warning: {data_dir} is the root this run trained on; scoring all of it includes its train and "
              f"val images (use --split test for the held-out part)", file=sys.stderr)


def _split_of(pairs: list, cfg, split: str, data_dir: str | Path) -> list:
    """The `split` part ("train" | "val" | "test") of a root's pairs under the run's split rule by name."""
    if cfg.data.val_root is not None:
        raise SodError(f"--split {split}: the run validated on a separate data.val_root, so it has no split of "
                       f"{data_dir} by name; evaluate a held-out root without --split")
    part = split_pairs(cfg.data, pairs)[split]
    if not part:
        raise SodError(f"--split {split}: the run's config holds out no {split} split (data.train_count "
                       f"{cfg.data.train_count}, data.val_count {cfg.data.val_count}) of the {len(pairs)} pairs of "
                       f"{data_dir}")
    return part


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


def _collect_images(src: Path, recursive: bool) -> dict[str, Path]:
    if src.is_file():
        return {src.stem: src}
    if src.is_dir():
        images = list_images(src, recursive=recursive)
        if not recursive:
            warn_nested(src, "image")
        return images
    raise SodError(f"--input {src} does not exist")


def predict_report(checkpoint: str | Path, inputs: str | Path, out: str | Path, with_overlay: bool = False,
                   device: str = "auto", batch_size: int | None = None, base_checkpoint: str | None = None, *,
                   strict: bool = False, recursive: bool = False, overwrite: bool = False,
                   formats: Sequence[str] | None = None, threshold: float | None = None, refine: int = 0,
                   tta: str | None = None, points: object = None, labels: object = None,
                   box: object = None, workers: int | None = None, dtype: str = "fp32") -> PredictReport:
    """`predict`, returning a `PredictReport`. An unreadable image is reported on one line and skipped;
    with `strict` the first one raises `SodError`. Inputs and `out` are checked before the model is built.

    `formats` (map | mask | alpha | overlay, `sam2sod.infer.formats`) at `threshold` (None: adaptive);
    `points` (N,2) + `labels` (N,) / `box` (4,) in original pixels prompt a single image file; `refine` /
    `tta` as for `evaluate`. `report.written` lists every file written. `workers` decode the next images
    while the model runs (None: `default_workers`); PNGs are encoded here and written by a thread; `dtype`
    fp32 | bf16 | fp16 runs the model under autocast (`sam2sod.runs.runtime.inference_dtype`).
    """
    from sam2sod.infer.formats import write_files
    from sam2sod.infer.predict_options import encode_outputs, predict_options, prompted_maps

    dev = select_device(device)
    batch_size = default_batch_size(dev) if batch_size is None else batch_size
    check_counts(batch_size)
    if workers is not None and workers < 0:
        raise SodError(f"--workers must be >= 0 (0 decodes in the main process), got {workers}")
    src = Path(inputs)
    images = _collect_images(src, recursive)
    opts = predict_options(src, formats, threshold, refine, tta, points, labels, box)
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
    amp = inference_dtype(dev, dtype)
    out = prepare_output_dir(out, overwrite=overwrite, inputs=[src], command="predict")
    ckpt = read_checkpoint(checkpoint)
    cfg = config_of(ckpt)
    model = build_model_from_checkpoint(ckpt, dev, base_checkpoint) if items else None
    with torch.no_grad(), tqdm(total=len(items), desc="predict", unit="img", file=sys.stderr) as bar, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2sod-write") as writer:
        if opts.prompted:
            maps = prompted_maps(model, items, cfg.model.image_size, dev, cfg.model.multimask, opts)
        else:
            maps = predict_items(model, items, cfg.model.image_size, dev, batch_size, workers=workers,
                                 multimask=cfg.model.multimask, autocast_dtype=amp, refine=opts.refine, tta=opts.tta,
                                 on_unreadable=lambda item, err: (bad(item[1], err), bar.update()))
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
    for note in _notes(ckpt, "none"):
        print(f"warning: {note}")
    return report


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
