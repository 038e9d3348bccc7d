"""Synthetic videos for the video command tests: frames folders, a 2-sequence dataset, a tiny mp4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

H, W = 40, 56  # not square, not the model's 64 px: outputs must come back at this size


def moving_square(t: int, h: int = H, w: int = W, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 frame, HxW uint8 0/255 mask): a bright square moving right over noise."""
    rng = np.random.default_rng(seed * 1000 + t)
    img = rng.integers(0, 90, size=(h, w, 3)).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x0, y0 = 4 + 3 * t, h // 4
    mask[y0:y0 + h // 2, x0:x0 + w // 4] = 255
    img[mask > 0] = 220
    return img, mask


def write_frames(folder: Path, n: int, masks: Path | None = None, seed: int = 0, prefix: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        img, mask = moving_square(t, seed=seed)
        Image.fromarray(img).save(folder / f"{prefix}{t:05d}.png")
        if masks is not None:
            masks.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(masks / f"{prefix}{t:05d}.png")
    return folder


@pytest.fixture()
def frames_dir(tmp_path: Path) -> Path:
    """A 5-frame folder named ``clip`` (PNG, 56x40)."""
    return write_frames(tmp_path / "clip", 5)


@pytest.fixture()
def video_ds(tmp_path: Path) -> Path:
    """Two sequences (``seqA`` 5 frames, ``seqB`` 4 frames) in the SEQ/images + SEQ/masks layout."""
    root = tmp_path / "vds"
    for name, n, seed in (("seqA", 5, 1), ("seqB", 4, 2)):
        write_frames(root / name / "images", n, root / name / "masks", seed)
    return root


@pytest.fixture()
def mp4(tmp_path: Path) -> Path:
    """A 4-frame 64x48 H.264 (or MPEG-4) file ``tiny.mp4`` written with PyAV."""
    av = pytest.importorskip("av")
    path = tmp_path / "tiny.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for t in range(4):
            img, _ = moving_square(t, 48, 64)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
