"""Datasets for a training run: the fixed train/val split by file name and the augmented train set."""

from __future__ import annotations

from pathlib import Path

from sam2sod.data import SODDataset, check_pairs, find_pairs
from sam2sod.data.discovery import Pair
from sam2sod.data.transforms import AugmentConfig, build_transform
from sam2sod.engine.config import DataConfig, TrainConfig
from sam2sod.errors import SodError


def split_train_val(cfg: DataConfig) -> tuple[list[Pair], list[tuple[str, object, object]]]:
    """(train pairs, val items as (name, image path, mask path)).

    With `val_root`, all of `root` trains. Otherwise the pairs sorted by name are split: the first
    `train_count` train and the rest validate, or the last `val_fraction` validate.
    """
    if cfg.root is None and cfg.images is None:
        raise SodError("no training data: set data.root (or data.images and data.masks) in the config")
    pairs = find_pairs(cfg.root, cfg.images, cfg.masks)
    check_pairs(pairs, resize_mask=cfg.resize_mask)
    if cfg.val_root is not None:
        train, val = pairs, find_pairs(cfg.val_root)
        check_pairs(val, resize_mask=cfg.resize_mask)
    else:
        n_train = cfg.train_count if cfg.train_count is not None else round(len(pairs) * (1 - cfg.val_fraction))
        if not 0 < n_train < len(pairs):
            raise SodError(f"cannot split {len(pairs)} pairs into {n_train} train + {len(pairs) - n_train} val "
                           f"(data.train_count / data.val_fraction)")
        train, val = pairs[:n_train], pairs[n_train:]
    return train, [(p.name, p.image, p.mask) for p in val]


def build_train_dataset(pairs: list[Pair], cfg: TrainConfig) -> SODDataset:
    """Augmented training set at the model's input size, seeded from the run seed."""
    a = cfg.data.augment
    aug = AugmentConfig(size=cfg.model.image_size, hflip=a.hflip, vflip=a.vflip, rotate_deg=a.rotate_deg,
                        rotate_p=a.rotate_p, scale=(a.scale_min, a.scale_max), crop_prob=a.crop_prob,
                        brightness=a.brightness, contrast=a.contrast, saturation=a.saturation, jitter_p=a.jitter_p)
    return SODDataset(pairs, transform=build_transform(aug, train=True), resize_mask=cfg.data.resize_mask,
                      seed=cfg.seed)


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
