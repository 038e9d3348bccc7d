"""Video prediction: one saliency map per frame, with SAM2's memory between keyframes.

    runner = VideoRunner.from_loaded(load_model(RUN), TrackerConfig(keyframe_every=10))
    for frame in runner.frames(open_video("clip.mp4")):   # decoded one at a time
        frame.name, frame.saliency                          # (H,W) float32 0..1 at the frame's size

Every frame is preprocessed as image `predict` preprocesses an image (`infer.inference.preprocess`) and its
logits become a map by the same conversion (`infer.forward.probability`). `keyframe_every` 1 is frame-wise:
each frame goes through `infer.forward.run_model`, exactly image `predict`'s forward, so the maps are image
`predict`'s maps bit for bit. Otherwise `sam2sod.models.video_tracker.VideoTracker` detects keyframes
prompt-free and propagates them with SAM2's memory (re-detection rule: `TrackerConfig`). Models that SAM2's
memory cannot drive (classical baselines, sam2unet, zero-shot AMG) run frame-wise, and say so once.

The memory modules are the run's trained ones when its checkpoint holds a `memory_state` (clip training),
else the base SAM2's (`build_memory(model, train_memory="false")`, official weights or the run's seeded
random init).

`write_sequence` writes OUT/SEQ/FRAME.png at each frame's original size (`sam2sod predict --video` is
`sam2sod.infer.video_predict.predict_video`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from sam2sod.errors import SodError
from sam2sod.infer.forward import probability, run_model, saliency_to_uint8

__all__ = ["CHECKPOINT_MEMORY_KEY", "FLAG_NAMES", "VideoFrame", "VideoRunner", "check_tracker_options",
           "frame_inputs", "write_sequence"]

#: The key of a run checkpoint that holds `sam2sod.models.memory.memory_state` (runs trained on clips).
CHECKPOINT_MEMORY_KEY = "memory"
#: `TrackerConfig` field -> the command-line flag that sets it (for messages).
FLAG_NAMES = {"keyframe_every": "--keyframe-every", "redetect_score": "--redetect-score",
              "check_every": "--check-every", "check_iou": "--check-iou"}


class VideoFrame(NamedTuple):
    """One frame's prediction: saliency (H,W) float32 in 0..1 at the frame's original size; kind: detect |
    track | redetect (what the tracker did; detect for every frame-wise frame)."""

    name: str
    saliency: np.ndarray
    kind: str

    def to_uint8(self) -> np.ndarray:
        """(H,W) uint8, rounded exactly as the saliency PNGs of `sam2sod predict`."""
        return saliency_to_uint8(self.saliency)


def check_tracker_options(config: Any) -> Any:
    """`TrackerConfig.check()` with each message naming the command-line flag (e.g. --keyframe-every)."""
    try:
        return config.check()
    except SodError as err:
        text = str(err)
        for name, flag in FLAG_NAMES.items():
            if text.startswith(name + " "):
                raise SodError(flag + text[len(name):]) from None
        raise


def _method(model: torch.nn.Module) -> str:
    return str(getattr(model, "method", None) or type(model).__name__)


def _trained_memory(model: torch.nn.Module, checkpoint: dict | None, base: str | None) -> Any:
    from sam2sod.models.memory import build_memory, load_memory_state

    state = (checkpoint or {}).get(CHECKPOINT_MEMORY_KEY)
    if isinstance(state, dict):
        return load_memory_state(model, state, checkpoint=base)
    return build_memory(model, train_memory="false", checkpoint=base)


def _resolve_base(model: torch.nn.Module, base_checkpoint: str | None) -> str | None:
    """The base SAM2 file to rebuild memory from: --base-checkpoint (resolved) for official-weight bases."""
    info = getattr(model, "base_info", {}) or {}
    if base_checkpoint is None or not info.get("pretrained"):
        return None
    from sam2sod.weights import resolve_checkpoint

    return str(resolve_checkpoint(base_checkpoint))


@dataclass
class VideoRunner:
    """A model and the tracker that drives it over videos (see the module docstring)."""

    model: torch.nn.Module
    image_size: int
    device: torch.device
    multimask: bool = False
    config: Any = None  # TrackerConfig
    memory: Any = None  # SAM2Memory, None when frame-wise
    dtype: torch.dtype | None = None
    note: str | None = None  # why a model runs frame-wise although propagation was asked for
    kinds: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, model: torch.nn.Module, image_size: int, device: torch.device, multimask: bool = False,
              config: Any = None, *, checkpoint: dict | None = None, base_checkpoint: str | None = None,
              dtype: torch.dtype | None = None) -> VideoRunner:
        """Choose memory or frame-wise for `model` (`config`: a checked `TrackerConfig`, default K = 10)."""
        from sam2sod.models.memory import check_supports_memory
        from sam2sod.models.video_tracker import TrackerConfig

        config = check_tracker_options(config or TrackerConfig())
        memory, note = None, None
        if config.keyframe_every != 1:
            try:
                check_supports_memory(model)
            except SodError:
                note = (f"{_method(model)} does not decode with SAM2's mask decoder: it runs frame-wise (no memory), "
                        f"--keyframe-every {config.keyframe_every} and the re-detection options do not apply")
            else:
                memory = _trained_memory(model, checkpoint, _resolve_base(model, base_checkpoint))
        return cls(model.eval(), int(image_size), torch.device(device), bool(multimask), config, memory, dtype, note)

    @classmethod
    def from_loaded(cls, loaded: Any, config: Any = None, base_checkpoint: str | None = None,
                    dtype: torch.dtype | None = None) -> VideoRunner:
        """From a `sam2sod.runs.loader.LoadedModel` (a run's trained memory is used when it has one)."""
        return cls.build(loaded.model, loaded.image_size, loaded.device, loaded.multimask, config,
                         checkpoint=loaded.checkpoint, base_checkpoint=base_checkpoint, dtype=dtype)

    @property
    def framewise(self) -> bool:
        return self.memory is None

    def describe(self) -> str:
        """One line: frame-wise, or the keyframe and re-detection rule in use."""
        c = self.config
        if self.framewise:
            return "frame-wise (every frame detected on its own, no memory)"
        keys = "frame 0 only" if c.keyframe_every == 0 else f"every {c.keyframe_every} frames"
        score = "off" if c.redetect_score is None else f"object score < {c.redetect_score:g}"
        check = "off" if c.check_every == 0 else f"every {c.check_every} frames, IoU < {c.check_iou:g}"
        return f"SAM2 memory: keyframes {keys}; re-detect: {score}; check against a fresh detection: {check}"

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def _tracker(self, num_frames: int | None) -> Any:
        from sam2sod.models.video_tracker import VideoTracker

        config = dataclasses.replace(self.config, num_frames=num_frames, detect_multimask=self.multimask)
        return VideoTracker(self.model, self.memory, config)

    @torch.no_grad()
    def logits(self, frames: Iterable[tuple[str, np.ndarray]], num_frames: int | None = None
               ) -> Iterator[tuple[str, tuple[int, int], torch.Tensor, str]]:
        """(name, (H,W), logits (1,S,S), kind) per frame of ``(name, HxWx3 uint8)``, in order, one at a time."""
        from sam2sod.infer.inference import preprocess

        tracker = None if self.framewise else self._tracker(num_frames)
        for name, rgb in frames:
            x = preprocess(rgb, self.image_size)[None].to(self.device)
            with self._autocast():
                if tracker is None:
                    logits, kind = run_model(self.model, x, None, self.multimask)["logits"][0], "detect"
                else:
                    out = tracker.step(x)
                    logits, kind = out.logits[0], out.kind
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield name, (int(rgb.shape[0]), int(rgb.shape[1])), logits, kind

    def frames(self, video: Any) -> Iterator[VideoFrame]:
        """`VideoFrame` per frame of `video`: a `sam2sod.data.video.Video`, a path (frames folder or video
        file) or an iterable of images (HxWx3 uint8 arrays, PIL images or paths; named 00000, 00001, ...)."""
        pairs, n = frame_inputs(video)
        for name, hw, logits, kind in self.logits(pairs, n):
            yield VideoFrame(name, probability(logits, hw).cpu().numpy(), kind)


def frame_inputs(video: Any) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """(``(name, HxWx3 uint8)`` iterator, frame count when known without decoding) of a video-like input."""
    from sam2sod.data.video import Video, open_video

    if isinstance(video, str | os.PathLike):
        video = open_video(video)
    if isinstance(video, Video):
        return video.iter_frames(), (len(video.frames) if video.frames is not None else None)
    if isinstance(video, np.ndarray) and video.ndim == 4:
        video = list(video)
    try:
        n: int | None = len(video)
    except TypeError:  # a generator: the length is not known
        n = None
    return ((f"{i:05d}", _rgb(im, i)) for i, im in enumerate(video)), n


def _rgb(image: Any, index: int) -> np.ndarray:
    """An image path, a PIL image or an HxWx3 uint8 array (HxW gray, HxWx4 accepted) as HxWx3 uint8 RGB."""
    from PIL import Image

    from sam2sod.data.io import load_image

    if isinstance(image, str | os.PathLike):
        return load_image(image)
    if isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[..., :3])
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise SodError(f"video frame {index} must be an HxWx3 uint8 RGB array or an image path, got {shape}")
    return image


def write_sequence(runner: VideoRunner, video: Any, out: Path, bar: Any = None,
                   on_frame: Any = None) -> list[Path]:
    """Write OUT/SEQ/FRAME.png (8-bit map, original size) for every frame of `video`; returns the paths.

    `on_frame(name, uint8 map, rgb)` is called per frame (e.g. the overlay video's encoder).
    """
    from sam2sod.atomic import atomic_write_bytes
    from sam2sod.infer.formats import encode_image
    from sam2sod.infer.forward import logits_to_uint8
    from sam2sod.names import inside

    n = len(video.frames) if video.frames is not None else None
    written: list[Path] = []
    last: dict[str, np.ndarray] = {}

    def keep(frames: Iterable[tuple[str, np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
        for name, rgb in frames:
            last["rgb"] = rgb
            yield name, rgb

    for name, hw, logits, _kind in runner.logits(keep(video.iter_frames()), n):
        pred = logits_to_uint8(logits, hw)
        path = inside(out, video.name, f"{name}.png")
        atomic_write_bytes(path, encode_image(pred))
        written.append(path)
        if on_frame is not None:
            on_frame(name, pred, last["rgb"])
        if bar is not None:
            bar.update()
    return written
