"""Video datasets: the DAVIS, DAVSOD and images/masks layouts, sparse annotations, registry and datasets check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.data.datasets import lookup
from sam2sod.data.datasets.check import check_set, format_checks
from sam2sod.data.datasets.registry import VIDEO_REGISTRY, lookup_video
from sam2sod.data.video_check import check_video_set
from sam2sod.data.video_layouts import find_video_layout, load_video_dataset, open_video_input
from sam2sod.errors import SodError

DAVIS_DEV = Path("/work/shared/data/davis16-dev")


def frames(folder: Path, n: int, suffix: str = ".jpg", size: tuple[int, int] = (8, 10)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((*size, 3), 20 * i, np.uint8)).save(folder / f"{i:05d}{suffix}")


def masks(folder: Path, indices: list[int], size: tuple[int, int] = (8, 10)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        m = np.zeros(size, np.uint8)
        m[2:5, 3:6] = 255
        Image.fromarray(m).save(folder / f"{i:05d}.png")


def one_line(match: str, fn: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(SodError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def make_davis(root: Path, seqs: dict[str, int], resolution: str = "480p") -> Path:
    for name, n in seqs.items():
        frames(root / "JPEGImages" / resolution / name, n)
        masks(root / "Annotations" / resolution / name, list(range(n)))
    return root


def test_davis_layout(tmp_path):
    root = make_davis(tmp_path / "d", {"bear": 4, "cows": 3})
    (tmp_path / "d" / "JPEGImages" / "Full-Resolution").mkdir()  # 480p is preferred
    assert find_video_layout(root) == "davis"
    ds = load_video_dataset(root)
    assert (ds.layout, ds.n_sequences, ds.n_frames, ds.n_annotated) == ("davis", 2, 7, 7)
    bear = ds.sequence("bear")
    assert bear.frame_names == ["00000", "00001", "00002", "00003"] and bear.annotated == bear.frame_names
    assert bear.load_mask("00001").shape == (8, 10)


def test_davis_without_resolution_folder_and_other_resolution(tmp_path):
    for name in ("a", "b"):
        frames(tmp_path / "x" / "JPEGImages" / name, 2)
        masks(tmp_path / "x" / "Annotations" / name, [0, 1])
    assert load_video_dataset(tmp_path / "x").n_sequences == 2
    make_davis(tmp_path / "y", {"a": 2}, resolution="Full-Resolution")
    assert load_video_dataset(tmp_path / "y").n_annotated == 2


@pytest.mark.parametrize(("images", "gt", "layout"), [("Imgs", "ground-truth", "davsod"),
                                                      ("Imgs", "GT_object_level", "davsod"),
                                                      ("images", "masks", "images-masks")])
def test_per_sequence_layouts_with_sparse_masks(tmp_path, images, gt, layout):
    for seq in ("select_0001", "select_0002"):
        frames(tmp_path / seq / images, 6)
        masks(tmp_path / seq / gt, [0, 3, 5])
    ds = load_video_dataset(tmp_path)
    assert (ds.layout, ds.n_sequences, ds.n_frames, ds.n_annotated) == (layout, 2, 12, 6)
    video = ds.sequences[0]
    assert video.name == "select_0001" and len(video.frame_names) == 6
    assert video.annotated == ["00000", "00003", "00005"]
    with pytest.raises(SodError, match="has no mask"):
        video.load_mask("00001")


def test_mask_without_frame_is_named(tmp_path):
    frames(tmp_path / "s" / "images", 3)
    masks(tmp_path / "s" / "masks", [0, 7])
    message = one_line("without a frame", load_video_dataset, tmp_path)
    assert "00007.png" in message


def test_layout_errors_are_one_line(tmp_path):
    frames(tmp_path / "a" / "Imgs", 2)
    masks(tmp_path / "a" / "ground-truth", [0])
    frames(tmp_path / "b" / "images", 2)
    one_line("mix layouts", load_video_dataset, tmp_path)
    other = tmp_path / "other"
    frames(other / "a" / "images", 2)
    masks(other / "a" / "masks", [0])
    (other / "misc").mkdir()
    one_line("misc/", load_video_dataset, other)
    (tmp_path / "plain").mkdir()
    one_line("cannot find a video dataset layout", load_video_dataset, tmp_path / "plain")
    one_line("does not exist", load_video_dataset, tmp_path / "nope")


def test_image_sets_are_not_taken_for_video_sets(tmp_path):
    (tmp_path / "pascal" / "datasets" / "imgs" / "pascal").mkdir(parents=True)
    assert find_video_layout(tmp_path / "pascal") is None
    frames(tmp_path / "voc" / "JPEGImages", 2)
    (tmp_path / "voc" / "Annotations").mkdir()
    assert find_video_layout(tmp_path / "voc") is None
    frames(tmp_path / "ecssd" / "images", 2)
    masks(tmp_path / "ecssd" / "ground_truth_mask", [0, 1])
    assert find_video_layout(tmp_path / "ecssd") is None


def test_annotation_needed_for_scoring_not_for_prediction(tmp_path):
    frames(tmp_path / "a" / "images", 3)
    masks(tmp_path / "a" / "masks", [1])
    frames(tmp_path / "b" / "images", 2)
    one_line("sequence b has no mask folder", load_video_dataset, tmp_path)
    ds = load_video_dataset(tmp_path, annotated=False)
    assert [len(v.masks) for v in ds.sequences] == [1, 0]


def test_prediction_inputs(tmp_path):
    frames(tmp_path / "folder", 3)
    assert open_video_input(tmp_path / "folder").sequences[0].name == "folder"
    root = tmp_path / "many"
    frames(root / "s1", 2)
    frames(root / "s2", 3, ".png")
    (root / "readme.txt").write_text("x")
    ds = open_video_input(root)
    assert (ds.layout, [v.name for v in ds.sequences], ds.n_frames) == ("frames", ["s1", "s2"], 5)
    davis = make_davis(tmp_path / "d", {"bear": 2})
    assert open_video_input(davis).layout == "davis"
    (tmp_path / "none").mkdir()
    one_line("no video in", open_video_input, tmp_path / "none")


def test_video_registry_counts_cite_known_figures():
    assert VIDEO_REGISTRY["DAVIS-16"].sequences == 20 and VIDEO_REGISTRY["DAVIS-16"].expected == 1376
    assert VIDEO_REGISTRY["SegTrack-V2"].sequences == 14 and VIDEO_REGISTRY["SegTrack-V2"].expected == 1065
    assert VIDEO_REGISTRY["ViSal"].sequences == 17
    assert set(VIDEO_REGISTRY) == {"DAVIS-16", "DAVSOD", "FBMS", "SegTrack-V2", "ViSal", "VOS"}
    assert lookup_video("davis2016") is VIDEO_REGISTRY["DAVIS-16"] and lookup_video("ECSSD") is None
    assert lookup("DAVIS-16") is None  # image sets and video sets stay apart
    assert all(info.task == "vsod" and info.role == "test" for info in VIDEO_REGISTRY.values())


def test_datasets_check_counts_sequences_and_frames(tmp_path):
    root = make_davis(tmp_path / "d", {"bear": 3, "cows": 2})
    check = check_set("DAVIS-16", root, progress=False)
    assert (check.n_sequences, check.n_pairs, check.n_images) == (2, 5, 5)
    problems = check.problems()
    assert "found 2 sequences, expected 20 for DAVIS-16" in problems
    assert "found 5 annotated frames, expected 1376 for DAVIS-16" in problems
    table = format_checks([check])
    assert "vsod" in table and "count mismatch" in table
    plain = check_set("mine", root, progress=False)  # not registered, detected by its layout
    assert plain.problems() == [] and plain.layout == "davis"


def test_datasets_check_finds_broken_frames_and_mask_sizes(tmp_path):
    root = make_davis(tmp_path / "d", {"bear": 3})
    (root / "JPEGImages/480p/bear/00001.jpg").write_bytes(b"broken")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "Annotations/480p/bear/00002.png")
    check = check_video_set("x", root, progress=False)
    assert list(check.unreadable) == ["bear/00001"]
    assert check.size_mismatch == ["bear/00002 (mask)"]
    assert len(check.problems()) == 2


@pytest.mark.slow
@pytest.mark.skipif(not DAVIS_DEV.is_dir(), reason="needs /work/shared/data/davis16-dev")
def test_davis16_dev_layout_and_counts():
    ds = load_video_dataset(DAVIS_DEV)
    assert (ds.layout, ds.n_sequences, ds.n_annotated, ds.n_frames) == ("davis", 5, 233, 233)
    assert {v.name: len(v.masks) for v in ds.sequences} == {"blackswan": 50, "car-shadow": 40, "dog": 60,
                                                            "motocross-jump": 40, "scooter-black": 43}
    name, frame = next(ds.sequence("dog").iter_frames())
    assert (name, frame.shape) == ("00000", (480, 854, 3))
