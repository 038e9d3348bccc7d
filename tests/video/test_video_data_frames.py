"""Videos: frame ordering of frames folders, lazy decoding, video files through PyAV, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sam2sod.data.video as video_mod
from sam2sod.data.video import frame_number, iter_video_file, list_frames, open_video
from sam2sod.errors import SodError


def write_frames(folder: Path, names: list[str], size: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size, size, 3), 10 * i, np.uint8)).save(folder / name)


def write_mp4(path: Path, n: int = 6, size: int = 32) -> None:
    """A tiny mp4 whose frame i is uniform gray 30 * i + 20."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 30 * i + 20, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def one_line_error(match: str, fn: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(SodError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_frame_number_is_the_last_number_in_the_stem():
    assert frame_number("00012") == 12
    assert frame_number("blackswan_00007") == 7
    assert frame_number("cam2_frame10_left") == 10
    assert frame_number("frame") is None


def test_frames_sort_by_number_not_by_text(tmp_path):
    write_frames(tmp_path, ["frame10.png", "frame9.png", "frame100.jpg", "frame0.JPEG", ".hidden1.png"])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert [name for name, _ in list_frames(tmp_path)] == ["frame0", "frame9", "frame10", "frame100"]


def test_davis_and_prefixed_names_both_work(tmp_path):
    write_frames(tmp_path / "a", ["00001.jpg", "00000.jpg"])
    write_frames(tmp_path / "b", ["blackswan_00001.jpg", "blackswan_00000.jpg"])
    assert [n for n, _ in list_frames(tmp_path / "a")] == ["00000", "00001"]
    assert [n for n, _ in list_frames(tmp_path / "b")] == ["blackswan_00000", "blackswan_00001"]


@pytest.mark.parametrize(("names", "match"), [
    (["1.jpg", "001.jpg"], "share a frame number.*001.jpg and 1.jpg"),
    (["00003.jpg", "00003.png"], "share a frame number.*00003.jpg and 00003.png"),
    (["a_1.jpg", "b_1.jpg"], "share a frame number"),
    (["00000.jpg", "cover.jpg"], "must hold a frame number.*cover.jpg"),
])
def test_ambiguous_orders_are_refused(tmp_path, names, match):
    write_frames(tmp_path, names)
    one_line_error(match, list_frames, tmp_path)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(r"no frame files in .*empty", list_frames, tmp_path / "empty")
    one_line_error("does not exist", list_frames, tmp_path / "nope")
    one_line_error("does not exist", open_video, tmp_path / "nope")


def test_frames_are_decoded_only_when_reached(tmp_path, monkeypatch):
    write_frames(tmp_path / "seq", [f"{i:05d}.png" for i in range(5)])
    calls = []
    real = video_mod.load_image
    monkeypatch.setattr(video_mod, "load_image", lambda p: calls.append(Path(p).name) or real(p))
    video = open_video(tmp_path / "seq")
    assert video.name == "seq" and video.num_frames == 5 and not video.is_file and calls == []
    frames = video.iter_frames()
    name, frame = next(frames)
    assert (name, frame.shape, frame.dtype) == ("00000", (8, 8, 3), np.uint8)
    assert calls == ["00000.png"]
    assert [n for n, _ in frames] == ["00001", "00002", "00003", "00004"]
    assert int(frame.max()) == 0


def test_video_file_decodes_in_order(tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(path, n=6)
    video = open_video(path)
    assert video.is_file and video.name == "clip"
    frames = list(video.iter_frames())
    assert [n for n, _ in frames] == [f"{i:05d}" for i in range(6)]
    for i, (_, rgb) in enumerate(frames):
        assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
        assert abs(float(rgb.mean()) - (30 * i + 20)) < 6  # lossy codec: near the written gray
    assert video.frame_names == [f"{i:05d}" for i in range(6)]


def test_video_file_is_streamed(tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(path, n=4)
    frames = iter_video_file(path)
    first = next(frames)
    assert first[0] == "00000"
    frames.close()  # closing the generator closes the container without decoding the rest


def test_video_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video at all" * 50)
    message = one_line_error("broken.mp4", lambda: list(iter_video_file(bad)))
    assert "cannot" in message
    one_line_error("broken.mp4", open_video, bad)
    one_line_error("file not found", lambda: list(iter_video_file(tmp_path / "gone.mp4")))
    (tmp_path / "notes.txt").write_text("x")
    one_line_error("is not a video", open_video, tmp_path / "notes.txt")


def test_missing_pyav_says_which_extra(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "av", None)
    one_line_error(r"install sam2sod\[video\]", lambda: list(iter_video_file(path)))
