"""sam2sod.data: dataset discovery, robust decoding, the torch dataset, joint transforms, synthetic data."""

from sam2sod.data.dataset import SODDataset, check_pairs, sample_seed
from sam2sod.data.discovery import (
    IMAGE_SUFFIXES,
    KNOWN_LAYOUTS,
    Pair,
    find_layout,
    find_pairs,
    list_images,
    match_by_stem,
)
from sam2sod.data.io import MAX_PIXELS_ENV, image_size, load_image, load_mask
from sam2sod.data.synthetic import make_synthetic
from sam2sod.data.transforms import (
    SAM2_MEAN,
    SAM2_STD,
    AugmentConfig,
    ColorJitter,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomRotation,
    RandomScaleCrop,
    RandomVerticalFlip,
    Resize,
    build_transform,
    denormalize,
    rotate,
)

__all__ = [
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
