"""sam2sod.data: dataset discovery, robust decoding, the torch dataset, joint transforms, synthetic data.

Names are imported on first use (PEP 562), so `sam2sod.data.discovery` / `sam2sod.data.io` (used by `score`)
load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCES = {
    "dataset": ("SODDataset", "check_pairs", "sample_seed"),
    "discovery": ("IMAGE_SUFFIXES", "KNOWN_LAYOUTS", "Pair", "find_layout", "find_pairs", "list_images",
                  "match_by_stem"),
    "io": ("MAX_PIXELS_ENV", "image_size", "load_image", "load_mask"),
    "prompts": ("PromptBatch", "PromptConfig", "Prompts", "collate_prompts", "oracle_prompts", "simulate_prompts"),
    "synthetic": ("make_synthetic",),
    "transforms": ("SAM2_MEAN", "SAM2_STD", "AugmentConfig", "ColorJitter", "Compose", "Normalize",
                   "RandomHorizontalFlip", "RandomRotation", "RandomScaleCrop", "RandomVerticalFlip", "Resize",
                   "build_transform", "denormalize", "rotate"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'sam2sod.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sam2sod.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    "PromptBatch",
    "PromptConfig",
    "Prompts",
    "collate_prompts",
    "oracle_prompts",
    "simulate_prompts",
    "IMAGE_SUFFIXES",
    "KNOWN_LAYOUTS",
    "MAX_PIXELS_ENV",
    "SAM2_MEAN",
    "SAM2_STD",
    "AugmentConfig",
    "ColorJitter",
    "Compose",
    "Normalize",
    "Pair",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomScaleCrop",
    "RandomVerticalFlip",
    "Resize",
    "SODDataset",
    "build_transform",
    "check_pairs",
    "denormalize",
    "find_layout",
    "find_pairs",
    "image_size",
    "list_images",
    "load_image",
    "load_mask",
    "make_synthetic",
    "match_by_stem",
    "rotate",
    "sample_seed",
]
