"""`predict --video --format overlay-video`: an mp4 of each sequence's overlay (contour + fill), via PyAV.

Each frame is `sam2sod.infer.formats.draw_overlay` of the frame and its adaptive mask (`to_mask`), encoded
with H.264 (``libx264``, else MPEG-4 part 2) at 25 frames/s, yuv420p (so the frame is cropped to an even
width and height). The file is written through a temp file next to it and renamed when complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from sam2sod.errors import SodError

__all__ = ["FPS", "OverlayVideoWriter", "check_overlay_video"]

FPS = 25


def check_overlay_video() -> Any:
    """The `av` module; SodError naming the extra to install when PyAV is missing."""
    try:
        import av
    except ImportError:
        raise SodError("--format overlay-video needs PyAV: pip install 'sam2sod[video]'") from None
    return av


def _codec(av: Any) -> str:
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises its own errors for an unknown codec
            continue
    raise SodError("--format overlay-video: this PyAV build has no H.264 or MPEG-4 encoder")


class OverlayVideoWriter:
    """Context manager: ``add(name, uint8 map (H,W), rgb (H,W,3))`` per frame; the mp4 appears on exit."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.av = check_overlay_video()
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._container: Any = None
        self._stream: Any = None
        self.frames = 0

    def __enter__(self) -> OverlayVideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = self.av.open(str(self._tmp), mode="w", format="mp4")
        return self

    def add(self, name: str, pred: np.ndarray, rgb: np.ndarray) -> None:
        """Encode the overlay of one frame (all frames must have the first frame's size)."""
        from sam2sod.infer.formats import draw_overlay, to_mask

        h, w = (pred.shape[0] // 2) * 2, (pred.shape[1] // 2) * 2
        if h == 0 or w == 0:
            raise SodError(f"--format overlay-video: frame {name} is too small ({pred.shape[1]}x{pred.shape[0]})")
        if self._stream is None:
            self._stream = self._container.add_stream(_codec(self.av), rate=FPS)
            self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, "yuv420p"
        if (h, w) != (self._stream.height, self._stream.width):
            raise SodError(f"--format overlay-video: frame {name} is {pred.shape[1]}x{pred.shape[0]}, the first "
                           f"frame {self._stream.width}x{self._stream.height}: one video has one size")
        image = np.ascontiguousarray(draw_overlay(rgb, to_mask(pred))[:h, :w])
        for packet in self._stream.encode(self.av.VideoFrame.from_ndarray(image, format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None and self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
            if kind is None and self.frames:
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
