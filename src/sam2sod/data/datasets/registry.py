"""The standard SOD and COD benchmark sets: expected image counts, roles and the folder layouts of their releases.

The counts are those of the releases the literature benchmarks on (e.g. the 2026 camouflaged test images of
COD10K, not all 4000 of its Test folder). Layouts are (images folder, masks folder) relative to the set's root;
the ones `sam2sod.data.find_layout` detects by itself are marked ``detected=True``; the others need the folders
moved (or a root made with symlinks) into a detected layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["REGISTRY", "DatasetInfo", "Layout", "lookup", "normalize_name"]


@dataclass(frozen=True)
class Layout:
    """One folder layout of a release: `images` and `masks` folders relative to the root, and a note."""

    images: str
    masks: str
    note: str = ""
    detected: bool = True

    def __str__(self) -> str:
        return f"{self.images}/ + {self.masks}/" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class DatasetInfo:
    """A registered set: canonical `name`, `task` ("sod" | "cod"), `expected` image count, `role`
    ("train" | "test"), the `layouts` its public releases use, other spellings (`aliases`) and a `note`."""

    name: str
    task: str
    expected: int
    role: str
    layouts: tuple[Layout, ...]
    aliases: tuple[str, ...] = ()
    note: str = ""


_IMGS_GT = Layout("Imgs", "GT", "common re-packaging (SOD benchmark collections, SINet test sets)")
_IMAGES_MASKS = Layout("images", "masks", "sam2sod's own layout")


def _sod(name: str, expected: int, role: str, layouts: tuple[Layout, ...], aliases: tuple[str, ...] = (),
         note: str = "") -> DatasetInfo:
    return DatasetInfo(name, "sod", expected, role, layouts + (_IMAGES_MASKS,), aliases, note)


def _cod(name: str, expected: int, layouts: tuple[Layout, ...], aliases: tuple[str, ...] = (),
         note: str = "") -> DatasetInfo:
    return DatasetInfo(name, "cod", expected, "test", layouts + (_IMAGES_MASKS,), aliases, note)


_ENTRIES = (
    _sod("DUTS-TR", 10553, "train", (Layout("DUTS-TR-Image", "DUTS-TR-Mask", "official release"), _IMGS_GT),
         ("DUTS-train",)),
    _sod("DUTS-TE", 5019, "test", (Layout("DUTS-TE-Image", "DUTS-TE-Mask", "official release"), _IMGS_GT),
         ("DUTS-test",)),
    _sod("ECSSD", 1000, "test", (Layout("images", "ground_truth_mask", "official release"), _IMGS_GT)),
    _sod("HKU-IS", 4447, "test", (Layout("imgs", "gt", "official release"), _IMGS_GT)),
    _sod("PASCAL-S", 850, "test", (
        _IMGS_GT,
        Layout("datasets/imgs/pascal", "datasets/masks/pascal", "official salObj release", detected=False),
    )),
    _sod("DUT-OMRON", 5168, "test", (
        Layout("DUT-OMRON-image", "pixelwiseGT-new-PNG", "official release"),
        Layout("DUT-OMRON-Image", "DUT-OMRON-Mask", "DUTS-style re-packaging"),
        _IMGS_GT,
    ), ("DUT-O", "OMRON")),
    _sod("SOD", 300, "test", (_IMGS_GT,), note="the 300 BSDS300-based images of Movahedi & Elder"),
    _cod("CAMO-test", 250, (
        _IMGS_GT,
        Layout("Images/Test", "GT", "official CAMO-V.1.0-CVIU2019; GT/ also holds the training masks",
               detected=False),
    ), ("CAMO",)),
    _cod("COD10K-test", 2026, (
        _IMGS_GT,
        Layout("Image", "GT_Object",
               "official COD10K-v3: map the name to its Test/ folder; Test/Image also holds 1974 "
               "non-camouflaged COD10K-NonCAM-* images that the benchmark leaves out"),
    ), ("COD10K",)),
    _cod("CHAMELEON", 76, (_IMGS_GT,)),
    _cod("NC4K", 4121, (_IMGS_GT,)),
)

REGISTRY: dict[str, DatasetInfo] = {info.name: info for info in _ENTRIES}


def normalize_name(name: str) -> str:
    """Lower case without separators: ``DUTS-TE``, ``duts_te`` and ``DUTSTE`` are one name."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


_BY_KEY: dict[str, DatasetInfo] = {}
for _info in _ENTRIES:
    for _key in (_info.name, *_info.aliases):
        _BY_KEY[normalize_name(_key)] = _info


def lookup(name: str) -> DatasetInfo | None:
    """The registered set called `name` (any case, with or without ``-``/``_``, or an alias), else None."""
    return _BY_KEY.get(normalize_name(name))
