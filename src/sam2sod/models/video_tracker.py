"""Streaming, causal video SOD with a tuned SAM2SOD and SAM2's memory.

    tracker = VideoTracker(model, build_memory(model), TrackerConfig(keyframe_every=10))
    for out in tracker.track(frames):          # frames: iterable of (1,3,S,S) preprocessed tensors
        out.logits                             # (1,1,S,S) saliency logits of this frame

Per frame the tuned image encoder runs once. Keyframes (frame 0 and every `keyframe_every`-th frame) are
detected prompt-free by the tuned model itself (`model.decode(model.encode_image(x))`: what image predict
computes, so `keyframe_every=1` equals frame-wise image prediction bit for bit). Other frames are SAM2's
tracking step: memory attention over the memory bank (the conditioning frames -- keyframes, re-detections,
seeded masks -- and the recent frames), then the tuned prompt encoder + mask decoder, as
`SAM2Base.track_step` does; their logits are gated by the object score as sam2 gates them. Heads a method
adds after SAM2's decoder (Tuned SAM's FAD, the edge head) act on keyframes only.

Re-detection on a tracked frame (its features are reused, only the decoder runs again):
- `redetect_score`: the tracked object score < this (default 0: SAM2's own "object absent" test);
- `check_every` / `check_iou`: every `check_every` frames after the last keyframe, a fresh detection is
  compared with the tracked mask; IoU(tracked > 0, detected > 0) < `check_iou` replaces the tracked output
  by the detection (two empty masks agree: IoU 1).
A re-detected frame becomes a conditioning frame, as a keyframe does.

Memory is bounded (`MemoryBank`): frames are not stored, only the memory sam2 can still read. The output of
frame t is computed before frame t+1 is read (`track` pulls one frame per output).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models.memory import SAM2Memory, SamView, check_supports_memory
from sam2sod.models.video_core import MemoryBank, detect, detection_entry, encode_frames, seed, track, write_memory

UNBOUNDED = 1 << 31  # the frame count used when the video length is not known (streams)


@dataclass
class TrackerConfig:
    """Options of `VideoTracker` (checked by `check`, each SodError names the option and its range)."""

    keyframe_every: int = 10  # K >= 0: detect on frame 0 and every K-th frame; 1 frame-wise, 0 only frame 0
    max_cond_frames: int = 4  # >= 1: conditioning frames kept in memory (the most recent)
    redetect_score: float | None = 0.0  # re-detect when the tracked object score is below this; None: never
    check_every: int = 5  # >= 0: compare with a fresh detection every M frames after a keyframe; 0: never
    check_iou: float = 0.5  # in [0, 1]: re-detect when IoU(tracked, fresh detection) is below this
    multimask: bool | None = None  # tracked frames decode 3 masks and keep the best; None: SAM2's config
    detect_multimask: bool = False  # keyframes decode 3 masks and keep the best (a run trained multimask)
    num_frames: int | None = None  # the video length when known (sam2 caps object pointers by it)
    store_dtype: torch.dtype | None = field(default=torch.bfloat16)  # memory features as sam2 stores them

    def check(self) -> TrackerConfig:
        def integer(name: str, low: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SodError(f"{name} must be an integer >= {low}, got {v!r}")

        integer("keyframe_every", 0)
        integer("max_cond_frames", 1)
        integer("check_every", 0)
        if self.num_frames is not None:
            integer("num_frames", 1)
        if not isinstance(self.check_iou, int | float) or not 0.0 <= float(self.check_iou) <= 1.0:
            raise SodError(f"check_iou must be in [0, 1], got {self.check_iou!r}")
        if self.redetect_score is not None and not isinstance(self.redetect_score, int | float):
            raise SodError(f"redetect_score must be a number or None, got {self.redetect_score!r}")
        if not isinstance(self.detect_multimask, bool):
            raise SodError(f"detect_multimask must be true or false, got {self.detect_multimask!r}")
        return self


@dataclass
class FrameOutput:
    """One frame's prediction. kind: seed | detect | track | redetect; reason: why a redetect happened."""

    index: int
    logits: torch.Tensor  # (1,1,S,S)
    low_res_logits: torch.Tensor  # (1,1,S/4,S/4)
    object_score: float
    kind: str
    reason: str | None = None  # "score" | "iou" for kind "redetect"
    iou: float | None = None  # IoU with the fresh detection when one was compared


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of the positive pixels of two logit maps; 1.0 when both are empty."""
    pa, pb = a > 0, b > 0
    union = int((pa | pb).sum())
    return 1.0 if union == 0 else int((pa & pb).sum()) / union


def redetect_reason(score: float, iou: float | None, config: TrackerConfig) -> str | None:
    """The re-detection rule: "score" if score < redetect_score, "iou" if iou < check_iou, else None."""
    if config.redetect_score is not None and score < float(config.redetect_score):
        return "score"
    if iou is not None and iou < float(config.check_iou):
        return "iou"
    return None


class VideoTracker:
    """Causal streaming tracker (see the module docstring). `memory` may be None only for keyframe_every 1
    (frame-wise: any model with the image `forward`, classical baselines included)."""

    def __init__(self, model: nn.Module, memory: SAM2Memory | None = None, config: TrackerConfig | None = None):
        self.config = (config or TrackerConfig()).check()
        self.model = model
        self.memory = memory
        self.framewise = self.config.keyframe_every == 1
        if memory is None and not self.framewise:
            raise SodError("propagation needs SAM2's memory (build_memory(model)); without it use keyframe_every 1")
        self.view: SamView | None = None
        if memory is not None:
            check_supports_memory(model)
            self.view = SamView(model, memory)
        self.reset()

    def reset(self) -> None:
        """Forget the video: the next frame is frame 0."""
        self.frame_idx = 0
        self.last_key = 0
        n = self.config.num_frames or UNBOUNDED
        self.bank = MemoryBank(self.view, self.config.max_cond_frames, n) if self.view is not None else None

    @property
    def multimask(self) -> bool:
        if self.config.multimask is not None:
            return bool(self.config.multimask)
        return self.memory.tracking_multimask() if self.memory is not None else False

    def _check_frame(self, frame: torch.Tensor) -> None:
        s = int(self.model.image_size)
        if not isinstance(frame, torch.Tensor) or tuple(frame.shape) != (1, 3, s, s):
            shape = tuple(frame.shape) if isinstance(frame, torch.Tensor) else type(frame).__name__
            raise SodError(f"video frames must be preprocessed tensors of shape (1,3,{s},{s}), got {shape}")

    def _check_mask(self, mask: torch.Tensor) -> torch.Tensor:
        s = int(self.model.image_size)
        m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(mask)
        m = m.reshape(m.shape[-2:]) if m.ndim > 2 and all(d == 1 for d in m.shape[:-2]) else m
        if m.ndim != 2:
            raise SodError(f"a seed mask must be 2-D (H,W), got shape {tuple(m.shape)}")
        m = m.to(self.model.device).float()[None, None]
        if tuple(m.shape[-2:]) != (s, s):  # as sam2's add_new_mask: antialiased resize, then >= 0.5
            m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        return m

    @torch.no_grad()
    def step(self, frame: torch.Tensor, mask: torch.Tensor | None = None) -> FrameOutput:
        """Process the next frame (1,3,S,S); `mask` (H,W) seeds this frame with a given object mask
        (sam2's `add_new_mask`: a conditioning frame whose output is the mask)."""
        self._check_frame(frame)
        if mask is not None and self.view is None:
            raise SodError("seeding a frame with a mask needs SAM2's memory (build_memory(model))")
        idx = self.frame_idx
        self.frame_idx += 1
        if self.framewise and mask is None:
            out = self.model(frame, None, True) if self.config.detect_multimask else self.model(frame)
            return FrameOutput(idx, out["logits"], out["low_res_logits"], _score(out), "detect")
        ff = encode_frames(self.model, frame)
        store = self.config.store_dtype
        if mask is not None:
            entry, low, score = seed(self.view, ff, self._check_mask(mask), store)
            self._keyframe(idx, entry)
            logits = F.interpolate(low, size=frame.shape[-2:], mode="bilinear", align_corners=False)
            return FrameOutput(idx, logits, low, float(score.max()), "seed")
        k = self.config.keyframe_every
        if idx == 0 or not self.bank.cond or (k > 0 and idx % k == 0):
            return self._detect(idx, ff, "detect")
        tr = track(self.view, ff, self.bank.output_dict(), idx, self.config.num_frames or UNBOUNDED, self.multimask)
        score = float(tr["object_score_logits"].max())
        iou, det = None, None
        m = self.config.check_every
        if m > 0 and (idx - self.last_key) % m == 0 and redetect_reason(score, None, self.config) is None:
            det = detect(self.model, ff, self.config.detect_multimask)
            iou = mask_iou(tr["logits"], det[0]["logits"])
        reason = redetect_reason(score, iou, self.config)
        if reason is not None:
            return self._detect(idx, ff, "redetect", reason, iou, det)
        entry = write_memory(self.view, ff, tr["logits"], tr["object_score_logits"], tr["obj_ptr"],
                             from_mask=False, store_dtype=store)
        self.bank.add(idx, entry, cond=False)
        return FrameOutput(idx, tr["logits"], tr["low_res"], score, "track", iou=iou)

    def _detect(self, idx: int, ff, kind: str, reason: str | None = None, iou: float | None = None,
                det: tuple | None = None) -> FrameOutput:
        out, token = det if det is not None else detect(self.model, ff, self.config.detect_multimask)
        if not self.framewise:
            self._keyframe(idx, detection_entry(self.view, ff, out, token, self.config.store_dtype))
        return FrameOutput(idx, out["logits"], out["low_res_logits"], _score(out), kind, reason, iou)

    def _keyframe(self, idx: int, entry: dict) -> None:
        self.last_key = idx
        if self.bank is not None:
            self.bank.non_cond.pop(idx, None)
            self.bank.add(idx, entry, cond=True)

    def track(self, frames: Iterable[torch.Tensor], masks: Mapping[int, torch.Tensor] | None = None
              ) -> Iterator[FrameOutput]:
        """Yield one FrameOutput per frame, pulling frame t+1 only after frame t's output was consumed.

        `masks`: {frame index: (H,W) mask} seeds (e.g. {0: first-frame mask}); the tracker is reset first.
        """
        self.reset()
        masks = dict(masks or {})
        for i, frame in enumerate(frames):
            yield self.step(frame, masks.get(i))

    def state_nbytes(self) -> int:
        """Bytes of the tensors the tracker holds between frames (its memory bank)."""
        return self.bank.nbytes() if self.bank is not None else 0

    def stored_frames(self) -> dict[str, list[int]]:
        """Frame indices held in memory: {"cond": ..., "spatial": ..., "pointer_only": ...}."""
        return self.bank.frames() if self.bank is not None else {"cond": [], "spatial": [], "pointer_only": []}


def _score(out: dict[str, torch.Tensor]) -> float:
    s = out.get("object_score_logits")
    return float(s.max()) if s is not None else float("nan")

