"""sam2sod.data.datasets: the standard sets, `--data NAME` resolution, dataset checks, train/test overlap."""

from sam2sod.data.datasets.overlap import (
    OverlapPair,
    OverlapReport,
    describe_overlap,
    find_overlap,
    hash_images,
    match_hashes,
    overlap_names,
)
from sam2sod.data.datasets.registry import REGISTRY, DatasetInfo, Layout, lookup, normalize_name
from sam2sod.data.datasets.resolve import DATASETS_ENV, find_datasets_file, load_mapping, resolve_data_args

__all__ = [
    "DATASETS_ENV",
    "REGISTRY",
    "DatasetInfo",
    "Layout",
    "OverlapPair",
    "OverlapReport",
    "describe_overlap",
    "find_datasets_file",
    "find_overlap",
    "hash_images",
    "load_mapping",
    "lookup",
    "match_hashes",
    "normalize_name",
    "overlap_names",
    "resolve_data_args",
]
