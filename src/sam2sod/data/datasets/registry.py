"""The standard SOD and COD benchmark sets: expected image counts, roles and the folder layouts of their releases.

The counts are those of the releases the literature benchmarks on (e.g. the 2026 camouflaged test images of
COD10K, not all 4000 of its Test folder). Layouts are (images folder, masks folder) relative to the set's root;
the ones `sam2sod.data.find_layout` detects by itself are marked ``detected=True``; the others need the folders
moved (or a root made with symlinks) into a detected layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["REGISTRY", "VIDEO_REGISTRY", "DatasetInfo", "Layout", "VideoDatasetInfo", "lookup", "lookup_video",
           "normalize_name"]


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
    # High-resolution sets (predict them with --tiles). DIS5K: Qin et al., "Highly Accurate Dichotomous Image
    # Segmentation", ECCV 2022: 5470 images = DIS-TR 3000 + DIS-VD 470 + DIS-TE1..4 500 each.
    _sod("DIS-TR", 3000, "train", (Layout("im", "gt", "official DIS5K release: DIS5K/DIS-TR/"),), ("DIS5K-TR",),
         note="high-resolution (DIS5K)"),
    _sod("DIS-VD", 470, "test", (Layout("im", "gt", "official DIS5K release: DIS5K/DIS-VD/"),), ("DIS5K-VD",),
         note="high-resolution (DIS5K validation set, reported as a test set in DIS papers)"),
    *(_sod(f"DIS-TE{k}", 500, "test", (Layout("im", "gt", f"official DIS5K release: DIS5K/DIS-TE{k}/"),),
           (f"DIS5K-TE{k}",), note="high-resolution (DIS5K)") for k in (1, 2, 3, 4)),
    # HRSOD: Zeng et al., "Towards High-Resolution Salient Object Detection", ICCV 2019: 2010 images,
    # 1610 train + 400 test.
    _sod("HRSOD-TR", 1610, "train", (Layout("HRSOD_train", "HRSOD_train_mask", "official release",
                                            detected=False), _IMGS_GT), note="high-resolution"),
    _sod("HRSOD-TE", 400, "test", (Layout("HRSOD_test", "HRSOD_test_mask", "official release", detected=False),
                                   _IMGS_GT), ("HRSOD",), note="high-resolution"),
    # UHRSD: Xie et al., "Pyramid Grafting Network for One-Stage High Resolution Saliency Detection", CVPR 2022:
    # 5920 4K images, 4932 train + 988 test.
    _sod("UHRSD-TR", 4932, "train", (Layout("image", "mask", "official release: UHRSD_TR_2K/", detected=False),
                                     _IMGS_GT), note="high-resolution (4K)"),
    _sod("UHRSD-TE", 988, "test", (Layout("image", "mask", "official release: UHRSD_TE_2K/", detected=False),
                                   _IMGS_GT), ("UHRSD",), note="high-resolution (4K)"),
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


@dataclass(frozen=True)
class VideoDatasetInfo:
    """A registered video (VSOD) set: `sequences` and annotated-frame count `expected` (None where no count is
    known with confidence, then it is not checked), the `layouts` its releases use (`sam2sod.data.video_layouts`
    detects them), other spellings and a `note`. `task` is "vsod", `role` "test"."""

    name: str
    sequences: int | None
    expected: int | None
    layouts: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    note: str = ""
    task: str = "vsod"
    role: str = "test"


_DAVSOD_LAYOUT = "SEQ/Imgs/ + SEQ/ground-truth/ (the DAVSOD toolkit's unified re-packaging)"
_VIDEO_ENTRIES = (
    # Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation", CVPR 2016:
    # 50 sequences, 3455 annotated 480p frames; the val split has 20 sequences, 1376 frames, every frame annotated.
    VideoDatasetInfo("DAVIS-16", 20, 1376, ("JPEGImages/480p/SEQ/ + Annotations/480p/SEQ/ (official)", _DAVSOD_LAYOUT),
                     ("DAVIS", "DAVIS2016", "DAVIS-2016"), "the val split (the VSOD test set)"),
    # Fan et al., "Shifting More Attention to Video Salient Object Detection", CVPR 2019: 226 sequences split
    # 90 train / 46 val / 80 test (test = easy 35 + normal 25 + difficult 20). The annotated-frame count of the
    # test split is not known here with confidence, so it is not checked.
    VideoDatasetInfo("DAVSOD", 80, None, (_DAVSOD_LAYOUT,), ("DAVSOD-test",), "the test split (easy + normal + "
                     "difficult); annotated-frame count not checked"),
    # Ochs, Malik, Brox, "Segmentation of Moving Objects by Long Term Video Analysis", TPAMI 2014 (FBMS-59):
    # 59 sequences, 29 train + 30 test, annotated every 20th frame or so. The test split's annotated-frame count
    # is not known here with confidence (720 annotated frames is the figure quoted for all 59 sequences).
    VideoDatasetInfo("FBMS", 30, None, (_DAVSOD_LAYOUT,), ("FBMS-59", "FBMS-test"),
                     "the 30 test sequences; annotated-frame count not checked"),
    # Li et al., "Video Segmentation by Tracking Many Figure-Ground Segments", ICCV 2013: 14 sequences; 1065
    # annotated frames as VSOD papers (e.g. the DAVSOD benchmark) quote it.
    VideoDatasetInfo("SegTrack-V2", 14, 1065, (_DAVSOD_LAYOUT,), ("SegTrackV2", "SegV2"), "all 14 sequences"),
    # Wang, Shen, Shao, "Consistent Video Saliency Using Local Gradient Flow Optimization and Global
    # Refinement", TIP 2015: 17 sequences. VSOD papers quote 193 annotated frames; not checked here because the
    # figure could not be verified against the release.
    VideoDatasetInfo("ViSal", 17, None, (_DAVSOD_LAYOUT,), (), "annotated-frame count not checked"),
    # Li et al., "A Benchmark Dataset and Saliency-Guided Stacked Autoencoders for Video-Based Salient Object
    # Detection", TIP 2018: 200 sequences, 116,103 frames of which 7,467 are annotated. The sizes of its test
    # split (as VSOD papers use it) are not known here with confidence, so neither count is checked.
    VideoDatasetInfo("VOS", None, None, (_DAVSOD_LAYOUT,), ("VOS-test",),
                     "the test split; sequence and annotated-frame counts not checked"),
)

#: The video sets, apart from `REGISTRY` (image sets): `datasets check` checks their sequence and frame counts.
VIDEO_REGISTRY: dict[str, VideoDatasetInfo] = {info.name: info for info in _VIDEO_ENTRIES}
_VIDEO_BY_KEY = {normalize_name(key): info for info in _VIDEO_ENTRIES for key in (info.name, *info.aliases)}


def lookup_video(name: str) -> VideoDatasetInfo | None:
    """The registered video set called `name` (any case, with or without ``-``/``_``, or an alias), else None."""
    return _VIDEO_BY_KEY.get(normalize_name(name))
