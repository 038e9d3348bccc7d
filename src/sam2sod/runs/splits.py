"""Datasets for a training run: the fixed train/val split by file name and the augmented train set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sam2sod.data import SODDataset, check_pairs, find_pairs
from sam2sod.data.discovery import Pair
from sam2sod.data.transforms import AugmentConfig, build_transform
from sam2sod.errors import SodError
from sam2sod.runs.config import DataConfig, TrainConfig

SPLITS = ("train", "val", "test")


def split_pairs(cfg: DataConfig, pairs: list[Pair] | None = None) -> dict[str, list[Pair]]:
    """{"train", "val", "test"} pairs of `data.root` (or of `pairs`, e.g. another root), by sorted name.

    The first `train_count` names train, the next `val_count` validate (they pick `best.pt`), the rest are
    the held-out test split, never seen during training or checkpoint selection. `val_count: null` ->
    everything after the train part validates and "test" is empty; `train_count: null` -> the last
    `val_fraction` of the names validate. With `val_root`, all of `root` trains and val_root validates.
    """
    if pairs is None:
        if cfg.root is None and cfg.images is None:
            raise SodError("no training data: set data.root (or data.images and data.masks) in the config")
        pairs = find_pairs(cfg.root, cfg.images, cfg.masks)
    if cfg.val_root is not None:
        return {"train": pairs, "val": find_pairs(cfg.val_root), "test": []}
    n = len(pairs)
    n_train = cfg.train_count if cfg.train_count is not None else round(n * (1 - cfg.val_fraction))
    n_val = cfg.val_count if cfg.val_count is not None else n - n_train
    if not (0 < n_train < n and 0 < n_val <= n - n_train):
        raise SodError(f"cannot split {n} pairs into {n_train} train + {n_val} val "
                       f"(+ {n - n_train - n_val} test): {_split_hint(cfg, n, n_train)}")
    return {"train": pairs[:n_train], "val": pairs[n_train:n_train + n_val], "test": pairs[n_train + n_val:]}


def _split_hint(cfg: DataConfig, n: int, n_train: int, unit: str = "pairs") -> str:
    """Which config value fixed the impossible split, and how to change it (`unit`: pairs or sequences)."""
    if n < 2:
        return f"training needs at least 2 {unit} (train + val), the data holds {n}"
    if cfg.train_count is not None and not 0 < n_train < n:
        return (f"data.train_count is {cfg.train_count} but the data holds {n} {unit}; set it between 1 and {n - 1}, "
                f"e.g. --set data.train_count={max(1, round(0.8 * n))} (or data.train_count=null to split by "
                f"data.val_fraction)")
    if cfg.train_count is None and not 0 < n_train < n:
        return (f"data.val_fraction {cfg.val_fraction} leaves {n - n_train} of {n} {unit} to validate; set it so "
                f"both parts get one {unit[:-1]} at least, e.g. --set data.val_fraction=0.2")
    return (f"data.val_count is {cfg.val_count} but only {n - n_train} {unit} follow the {n_train} training "
            f"{unit}; set it between 1 and {n - n_train}, or data.val_count=null to validate on all of them")


def as_items(pairs: list[Pair]) -> list[tuple[str, object, object]]:
    """Pairs -> (name, image path, mask path) items for `predict_items` / validation."""
    return [(p.name, p.image, p.mask) for p in pairs]


def split_train_val(cfg: DataConfig) -> tuple[list[Pair], list[tuple[str, object, object]]]:
    """(train pairs, val items as (name, image path, mask path)); the test split is left out entirely."""
    splits = split_pairs(cfg)
    check_pairs(splits["train"], resize_mask=cfg.resize_mask)
    check_pairs(splits["val"], resize_mask=cfg.resize_mask)
    return splits["train"], as_items(splits["val"])


def decode_files(jobs: list[tuple[Callable[[Any], Any], Any]], desc: str, show: bool = True,
                 workers: int | None = None) -> None:
    """Run every `(loader, path)` job once in threads with a progress bar; the first SodError (naming the broken
    file) stops the rest."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(fn, path) for fn, path in jobs]
        try:
            for f in tqdm(futures, desc=desc, unit="file", disable=not show, leave=False):
                f.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def decode_check(train: list[Pair], val_items: list[tuple[str, object, object]], show: bool = True,
                 workers: int | None = None) -> None:
    """Fully decode every train and val image and mask once (threads, progress bar), so a truncated file
    stops the run before the first step instead of after an epoch. SodError names the first broken file."""
    from sam2sod.data.io import load_image, load_mask

    jobs = [(load_image, p.image) for p in train] + [(load_mask, p.mask) for p in train]
    jobs += [(load_image, img) for _, img, _ in val_items] + [(load_mask, mask) for _, _, mask in val_items]
    decode_files(jobs, "checking images", show, workers)


def augment_config(cfg: TrainConfig) -> AugmentConfig:
    """The run's `data.augment` at the model's input size (images and video clips share it)."""
    a = cfg.data.augment
    return AugmentConfig(size=cfg.model.image_size, hflip=a.hflip, vflip=a.vflip, rotate_deg=a.rotate_deg,
                         rotate_p=a.rotate_p, scale=(a.scale_min, a.scale_max), crop_prob=a.crop_prob,
                         brightness=a.brightness, contrast=a.contrast, saturation=a.saturation,
                         jitter_p=a.jitter_p)


def build_train_dataset(pairs: list[Pair], cfg: TrainConfig) -> SODDataset:
    """Augmented training set at the model's input size, seeded from the run seed."""
    return SODDataset(pairs, transform=build_transform(augment_config(cfg), train=True),
                      resize_mask=cfg.data.resize_mask, seed=cfg.seed)


def is_video_data(cfg: DataConfig) -> bool:
    """`data.video`, or (auto) whether `data.root` is a video dataset (DAVIS, DAVSOD or SEQ/images + SEQ/masks)."""
    from sam2sod.data.video_layouts import is_video_dataset

    if cfg.video != "auto":
        return bool(cfg.video)
    return cfg.images is None and cfg.root is not None and is_video_dataset(cfg.root)


def split_sequences(cfg: DataConfig) -> dict[str, list]:
    """{"train", "val", "test"} sequences (`sam2sod.data.video.Video`) of the video dataset `data.root`.

    Whole sequences, never frames of one sequence in two splits: `val_sequences` validate and the rest train;
    else `val_root`'s sequences validate; else `split_pairs`' rule on the sequences sorted by name
    (`train_count` / `val_count` / `val_fraction` count sequences; what follows train + val is the test split).
    """
    from sam2sod.data.video_layouts import load_video_dataset

    if cfg.root is None:
        raise SodError("no training data: set data.root to a video dataset folder for clip training")
    if cfg.images is not None or cfg.masks is not None:
        raise SodError("data.images / data.masks are for image data; a video dataset is given by data.root alone")
    seqs = list(load_video_dataset(cfg.root).sequences)
    if cfg.val_sequences is not None:
        names = {v.name for v in seqs}
        missing = [n for n in cfg.val_sequences if n not in names]
        if missing:
            raise SodError(f"config key data.val_sequences: no sequence {', '.join(missing)} in {cfg.root} "
                           f"(sequences: {', '.join(sorted(names))})")
        val = [v for v in seqs if v.name in cfg.val_sequences]
        train = [v for v in seqs if v.name not in cfg.val_sequences]
        if not train:
            raise SodError(f"config key data.val_sequences: it names all {len(seqs)} sequences, none is left to train")
        return {"train": train, "val": val, "test": []}
    if cfg.val_root is not None:
        return {"train": seqs, "val": list(load_video_dataset(cfg.val_root).sequences), "test": []}
    n = len(seqs)
    n_train = cfg.train_count if cfg.train_count is not None else round(n * (1 - cfg.val_fraction))
    n_val = cfg.val_count if cfg.val_count is not None else n - n_train
    if not (0 < n_train < n and 0 < n_val <= n - n_train):
        raise SodError(f"cannot split {n} sequences into {n_train} train + {n_val} val "
                       f"(+ {n - n_train - n_val} test): {_split_hint(cfg, n, n_train, 'sequences')}")
    return {"train": seqs[:n_train], "val": seqs[n_train:n_train + n_val], "test": seqs[n_train + n_val:]}


def link_subset(items: list[tuple[str, object, object]], out: Path) -> Path:
    """Make `out/images` + `out/masks` of symlinks to the (name, image, mask) items (e.g. a val split)."""
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for _name, img, mask in items:
        for sub, src in (("images", Path(img)), ("masks", Path(mask))):
            dst = out / sub / src.name
            if not dst.is_symlink():
                dst.symlink_to(src.resolve())
    return out
