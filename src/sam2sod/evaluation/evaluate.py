"""`sam2sod evaluate`: predict datasets with any model `load_model` opens, write the PNGs and score them.

Evaluation is prompt-free by default. `prompt="oracle-box|oracle-points|oracle-mask"` derives prompts from
the ground truth: an upper bound only, and every output made that way says so.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from sam2sod.atomic import atomic_write_bytes, atomic_write_text
from sam2sod.data import check_pairs, find_layout, find_pairs
from sam2sod.data.discovery import warn_nested
from sam2sod.data.io import load_mask
from sam2sod.errors import SodError
from sam2sod.evaluation.score import format_table, score
from sam2sod.infer.engines import check_engine, load_engine, use_engine
from sam2sod.infer.formats import encode_image
from sam2sod.infer.inference import ORACLE_LABEL, check_resize, parse_tiles, predict_items
from sam2sod.infer.predict import RANDOM_INIT_NOTE, check_counts
from sam2sod.infer.refine import count_refine_skips
from sam2sod.names import check_name, check_relative, check_stem, inside
from sam2sod.outputs import check_output_dir, in_output_scope, prepare_output_dir
from sam2sod.runs.loader import ModelSource, open_source
from sam2sod.runs.runtime import inference_dtype, select_device
from sam2sod.runs.splits import SPLITS, link_subset, split_pairs

PROMPTS = ("none", "oracle-box", "oracle-points", "oracle-mask")
Item = tuple[str, Path, Path | None]


def _notes(source: ModelSource, prompt: str) -> list[str]:
    notes = []
    if not source.pretrained:
        notes.append(RANDOM_INIT_NOTE)
    if prompt != "none":
        notes.append(f"{ORACLE_LABEL}: {prompt}")
    return notes


def _check_masks_readable(pairs: Sequence) -> None:
    """Decode every mask (they are small) so a broken one is reported before any prediction."""
    for p in pairs:
        load_mask(p.mask)


def _named_datasets(datasets: Sequence[str | Path | tuple[str, str | Path]]) -> list[tuple[str, Path]]:
    """(name, folder) pairs: a plain folder is named after itself, a (name, folder) pair keeps its name."""
    named = [(str(d[0]), Path(d[1])) if isinstance(d, tuple) else (Path(d).resolve().name, Path(d))
             for d in datasets]
    names = [n for n, _ in named]
    for (n, folder), given in zip(named, datasets, strict=True):  # a given name is checked, a folder's own name fits
        (check_name if isinstance(given, tuple) else check_stem)(n, "dataset name", f"of {folder}")
    if len({n.lower() for n in names}) != len(names):
        raise SodError(f"--data folders must have distinct names, got {', '.join(names)}; name them apart with "
                       "--data NAME=DIR")
    return named


@in_output_scope
def evaluate(checkpoint: str | Path, datasets: Sequence[str | Path | tuple[str, str | Path]], out: str | Path,
             prompt: str = "none", device: str = "auto", batch_size: int = 8, workers: int | None = None,
             base_checkpoint: str | None = None, *, recursive: bool = False,
             overwrite: bool = False, split: str = "all", refine: int = 0,
             tta: str | None = None, exclude_overlap: bool = False, progress: bool = True,
             zero_shot: object = None, engine: str = "torch", dtype: str = "fp32", resize: str = "squash",
             tiles: int | str | None = None) -> dict[str, dict]:
    """Predict every dataset with the checkpoint, write `OUT/NAME/pred/*.png` and the score outputs.

    Every input is checked (image headers, every mask decoded) and `out` is prepared with
    `prepare_output_dir` before the model is built. `recursive` includes sub-folders (outputs mirror them).
    `split` "train" | "val" | "test" applies the run's own split by name (`data.train_count` / `val_count`)
    to each root and scores only that part, e.g. the held-out test split of the root it trained on.
    `datasets` holds folders (named after the folder) or (name, folder) pairs, e.g. from
    `sam2sod.data.datasets.resolve_data_args`, so two folders called ``test`` can be told apart.
    `refine` K / `tta` "flip": self-prompted refinement and flip TTA (`sam2sod.infer.refine`; no ground truth).
    `checkpoint`: anything `sam2sod.load_model` opens (checked before anything is written). `progress`: bars.
    `zero_shot`: a mode name or `sam2sod.runs.zero_shot_options.ZeroShotOptions` for an official SAM2 name or
    file (the method is then called "zero-shot SAM2 (<mode>)" in every output). `engine` / `dtype` /
    `resize` / `tiles`: as for `sam2sod.infer.predict.predict_report`.
    """
    if prompt not in PROMPTS:
        raise SodError(f"--prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
    if split not in ("all", *SPLITS):
        raise SodError(f"--split must be all, {', '.join(SPLITS)}; got {split!r}")
    check_counts(batch_size, workers)
    check_engine(engine, select_device(device), dtype, refine)
    tiles = parse_tiles(tiles)
    check_resize(resize, tiles, None if prompt == "none" else prompt)
    amp = inference_dtype(select_device(device), dtype)
    tta = _check_variant(refine, tta, prompt)
    named = _named_datasets(datasets)
    names = [n for n, _ in named]
    datasets = [d for _, d in named]
    source = open_source(checkpoint, base_checkpoint, zero_shot) if split != "all" else None  # its split rule
    plans, inputs = [], []
    for data_dir in datasets:
        image_dir, mask_dir = find_layout(data_dir)
        pairs = find_pairs(data_dir, recursive=recursive)
        if split != "all":  # the split rule is the run's
            pairs = _split_of(pairs, source, split, data_dir)
        if not recursive:
            warn_nested(image_dir, "image")
            warn_nested(mask_dir, "mask")
        for p in pairs:  # names become output files: checked before any folder is made
            check_relative(p.name, "image name", f"in {data_dir}")
        check_pairs(pairs, resize_mask=True)
        _check_masks_readable(pairs)
        plans.append((pairs, mask_dir))
        inputs += [Path(data_dir), image_dir, mask_dir]
    check_output_dir(out, overwrite=overwrite, inputs=inputs, command="evaluate")
    source = source or open_source(checkpoint, base_checkpoint, zero_shot)  # a bad model fails before --out exists
    out = prepare_output_dir(out, overwrite=overwrite, inputs=inputs, command="evaluate")
    if split == "all":
        for data_dir in datasets:
            _warn_training_root(source, data_dir)
    plans = [(_check_overlap(pairs, source, d, exclude_overlap), m)
             for (pairs, m), d in zip(plans, datasets, strict=True)]
    dev = select_device(device)
    load_engine(engine)
    model = use_engine(source.build(dev).model, engine, source.multimask)
    notes = _notes(source, prompt)
    oracle = None if prompt == "none" else prompt.split("-", 1)[1]
    summary, refine_skipped = {}, {}
    for (pairs, mask_dir), name in zip(plans, names, strict=True):
        pred_dir = inside(out, name, "pred")
        for p in pairs:
            inside(pred_dir, f"{p.name}.png")
        if split != "all" or exclude_overlap:  # score exactly these pairs' masks (symlinks; the dataset is untouched)
            subset = f"{split}_split" if split != "all" else "no_overlap"
            mask_dir = link_subset([(p.name, p.image, p.mask) for p in pairs], inside(out, name, subset)) / "masks"
        items = [(p.name, p.image, p.mask if oracle else None) for p in pairs]
        with tqdm(total=len(items), desc=f"predict {name}", unit="img", file=sys.stderr, disable=not progress) as bar, \
                count_refine_skips() as skipped:
            for img_name, pred in predict_items(model, items, source.image_size, dev, batch_size, oracle=oracle,
                                                workers=None, multimask=source.multimask, refine=refine, tta=tta,
                                                autocast_dtype=amp, resize=resize, tiles=tiles):
                atomic_write_bytes(inside(pred_dir, f"{img_name}.png"), encode_image(pred))
                bar.update()
        set_notes = [*notes, *_refine_note(refine, skipped[0], len(items), name)]
        if refine:
            refine_skipped[name] = skipped[0]
        method = source.method + _variant_label(refine, tta) + ("" if prompt == "none" else f" [{ORACLE_LABEL}]")
        results = score({method: pred_dir}, mask_dir, inside(out, name), workers=workers, progress=progress,
                        notes={method: "; ".join(set_notes)} if set_notes else None, recursive=recursive,
                        nested_warning=False)
        print(f"\n{name}:\n" + format_table(results, {method: "; ".join(set_notes)} if set_notes else None))
        summary[name] = results[0].metrics
    if notes:
        atomic_write_text(inside(out, "WARNING.txt"), "\n".join(notes) + "\n")
    atomic_write_text(inside(out, "summary.json"), json.dumps(
        {"checkpoint": str(source.path), "model": source.method, "prompt": prompt, "split": split, "refine": refine,
         "tta": tta or "none", "notes": notes, "datasets": summary,
         **({"refine_skipped": refine_skipped} if refine else {})},
        indent=2) + "\n")
    return summary


def _check_variant(refine: int, tta: str | None, prompt: str) -> str | None:
    """Validate `refine` / `tta` for evaluate (refinement starts prompt-free: no oracle prompt with it)."""
    from sam2sod.infer.forward import check_refine

    tta = check_refine(refine, tta)
    if refine and prompt != "none":
        raise SodError(f"--refine starts prompt-free; it cannot be combined with --prompt {prompt}")
    return tta


def _refine_note(refine: int, skipped: int, total: int, name: str) -> list[str]:
    """Say once (stderr) and return as a table note how many images refinement left prompt-free."""
    if not refine or not skipped:
        return []
    note = (f"--refine {refine} skipped {skipped} of {total} image{'s' if total != 1 else ''}: the first pass "
            "found no object to prompt with, so those maps are the prompt-free ones")
    print(f"note: {name}: {note}", file=sys.stderr)
    return [note]


def _variant_label(refine: int, tta: str | None) -> str:
    """' [self-refine K]' / ' [tta flip]' for the method name in tables (empty for the plain model)."""
    return (f" [self-refine {refine}]" if refine else "") + (f" [tta {tta}]" if tta else "")


def _check_overlap(pairs: list, source: ModelSource, data_dir: Path, exclude: bool) -> list:
    """Warn when test images duplicate (exactly or nearly) the run's training images; drop them with `exclude`."""
    from sam2sod.data.datasets import describe_overlap, find_overlap, overlap_names

    train_root = source.data.root if source.data is not None else None
    if not train_root or not Path(train_root).is_dir() or Path(train_root).resolve() == Path(data_dir).resolve():
        return pairs
    report = find_overlap(train_root, data_dir)
    found = overlap_names(report)
    if not found:
        return pairs
    lines = "; ".join(describe_overlap(report, str(train_root)))
    print(f"warning: {data_dir}: {len(found)} images duplicate the run's training data ({lines}); "
          + ("excluded from scoring" if exclude else "use --exclude-overlap to leave them out"), file=sys.stderr)
    kept = [p for p in pairs if p.name not in found] if exclude else pairs
    if not kept:
        raise SodError(f"--exclude-overlap: all {len(pairs)} images of {data_dir} duplicate the run's training data "
                       f"in {train_root}, so nothing is left to score; evaluate on another dataset")
    return kept


def _warn_training_root(source: ModelSource, data_dir: str | Path) -> None:
    """Warn when all of the root the run trained on is scored (its train and val images included)."""
    root = source.data.root if source.data is not None else None
    if root is not None and Path(root).resolve() == Path(data_dir).resolve():
        print(f"warning: {data_dir} is the root this run trained on; scoring all of it includes its train and "
              f"val images (use --split test for the held-out part)", file=sys.stderr)


def _split_of(pairs: list, source: ModelSource, split: str, data_dir: str | Path) -> list:
    """The `split` part ("train" | "val" | "test") of a root's pairs under the run's split rule by name."""
    if source.data is None:
        raise SodError(f"--split {split}: {source.path} does not record how its training data was split; "
                       f"evaluate a held-out root without --split")
    data = source.data
    if data.val_root is not None:
        raise SodError(f"--split {split}: the run validated on a separate data.val_root, so it has no split of "
                       f"{data_dir} by name; evaluate a held-out root without --split")
    part = split_pairs(data, pairs)[split]
    if not part:
        raise SodError(f"--split {split}: the run's config holds out no {split} split (data.train_count "
                       f"{data.train_count}, data.val_count {data.val_count}) of the {len(pairs)} pairs of "
                       f"{data_dir}")
    return part
