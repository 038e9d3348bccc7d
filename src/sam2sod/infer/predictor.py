"""`Predictor`: a trained sam2sod model for one image at a time (cached embedding, prompts) or for many.

Modelled on sam2's ``SAM2ImagePredictor``: ``set_image`` runs the image encoder once and caches the
embedding; ``predict`` decodes it prompt-free or with points / a box / a previous low-res mask, as often
as wanted, without running the encoder again.

Coordinates are in ORIGINAL image pixels, ``(x, y)`` = (column, row), pixel indices (a pixel's centre is
its index). The model sees the image resized (not padded) to its square input of side ``S``, so x and y
are scaled separately: ``x_in = (x + 0.5) * S / W - 0.5`` (pixel centre to pixel centre; same for y with
H). Classical baselines are prompt-free: they work with ``predict()`` / ``predict_batch`` only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

from sam2sod.data.prompts import PromptBatch, Prompts, collate_prompts
from sam2sod.errors import SodError
from sam2sod.infer.forward import check_refine, is_promptable, run_model, saliency_from_logits, saliency_to_uint8
from sam2sod.infer.refine import best_low_res

if TYPE_CHECKING:
    from sam2sod.runs.loader import LoadedModel

__all__ = ["Prediction", "Predictor", "load_rgb", "make_prompt_batch", "saliency_from_logits"]

ImageLike = Any  # numpy HxWx3 uint8, PIL.Image, or a path
_DTYPES = {"float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


class Prediction(NamedTuple):
    """One prediction. saliency (H,W) float32 in 0..1 at the image's original size; low_res_logits
    (1,S/4,S/4) float32 (feed back as ``mask_input``; None for baselines); iou: the predicted IoU of the
    returned mask (None for baselines)."""

    saliency: np.ndarray
    low_res_logits: np.ndarray | None
    iou: float | None

    def to_uint8(self) -> np.ndarray:
        """(H,W) uint8, rounded exactly as the saliency PNGs of `sam2sod predict` / `evaluate`."""
        return saliency_to_uint8(self.saliency)


def load_rgb(image: ImageLike) -> np.ndarray:
    """numpy HxWx3 uint8 (HxW gray or HxWx4 accepted), a PIL image or a path -> RGB uint8 HxWx3."""
    from sam2sod.data.io import load_image

    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        im = ImageOps.exif_transpose(image)
        im = im.convert("RGBA") if im.mode in ("P", "PA") else im
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    if not isinstance(image, np.ndarray):
        raise SodError(f"image must be a numpy array, a PIL image or a path, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise SodError(f"image array must be uint8 (0..255), got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise SodError(f"image array must be HxWx3 (RGB), got shape {image.shape}")
    return np.ascontiguousarray(image[..., :3])


def _array(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SodError(f"{what} must be numeric, got {value!r}") from None
    if not np.isfinite(arr).all():
        raise SodError(f"{what} must be finite numbers, got {value!r}")
    return arr


def _to_input(xy: np.ndarray, orig_hw: tuple[int, int], size: int) -> np.ndarray:
    """Original-pixel (..., 2) xy -> model-input pixels (separate x / y scales, pixel centres kept)."""
    h, w = orig_hw
    scale = np.array([size / w, size / h])
    return np.clip((xy + 0.5) * scale - 0.5, 0, size - 1)


def make_prompt_batch(orig_hw: tuple[int, int], size: int, points: Any = None, labels: Any = None,
                      box: Any = None, mask_input: Any = None) -> PromptBatch | None:
    """Validate user prompts in original pixels and map them to a 1-row `PromptBatch` (None: prompt-free).

    points (N,2) xy with 0 <= x < W, 0 <= y < H; labels (N,) in {0 bg, 1 fg} (default all 1); box
    (x0, y0, x1, y1) with 0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H; mask_input (1,S/4,S/4) or (S/4,S/4) logits.
    """
    h, w = orig_hw
    pts = lbl = bx = mask = None
    if points is None and labels is not None:
        raise SodError("labels given without points")
    if points is not None:
        pts = _array(points, "points")
        if pts.ndim == 1 and pts.shape == (2,):
            pts = pts[None]
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise SodError(f"points must have shape (N, 2) as (x, y) pairs, got {pts.shape}")
        lbl = np.ones(len(pts)) if labels is None else _array(labels, "labels").reshape(-1)
        if lbl.shape != (len(pts),):
            raise SodError(f"labels must have shape (N,) = ({len(pts)},) to match the points, got {lbl.shape}")
        if not np.isin(lbl, (0, 1)).all():
            shown = sorted({int(v) if v == int(v) else v for v in lbl.tolist()})
            raise SodError(f"labels must be 1 (foreground) or 0 (background), got {shown}")
        outside = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
        if outside.any():
            x, y = pts[int(np.argmax(outside))]
            raise SodError(f"point ({x:g}, {y:g}) is outside the image (width {w}, height {h}; need 0 <= x < {w}, "
                           f"0 <= y < {h}, in original-image pixels)")
        if len(pts) == 0:
            pts = lbl = None
    if box is not None:
        b = _array(box, "box").reshape(-1)
        if b.shape != (4,):
            raise SodError(f"box must be 4 numbers x0, y0, x1, y1, got {b.size}")
        x0, y0, x1, y1 = b.tolist()
        if not (x0 < x1 and y0 < y1):
            raise SodError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) needs x0 < x1 and y0 < y1")
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise SodError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside the image (width {w}, height {h})")
        bx = torch.from_numpy(_to_input(b.reshape(2, 2), orig_hw, size).reshape(4)).float()
    if mask_input is not None:
        m = _array(mask_input, "mask_input")
        s = size // 4
        if m.shape not in ((s, s), (1, s, s)):
            raise SodError(f"mask_input must be low-res logits of shape (1, {s}, {s}) or ({s}, {s}) (the "
                           f"low_res_logits of a previous predict), got {m.shape}")
        mask = torch.from_numpy(m.reshape(1, s, s)).float()
    prompts = Prompts(points=None if pts is None else torch.from_numpy(_to_input(pts, orig_hw, size)).float(),
                      labels=None if lbl is None else torch.from_numpy(lbl).long(), box=bx, mask_input=mask)
    return collate_prompts([prompts], size)


class Predictor:
    """A trained model with a cached image embedding; see the module docstring for coordinates."""

    def __init__(self, model: torch.nn.Module, image_size: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype | str | None = None, multimask: bool = False, pretrained: bool | None = None,
                 resize: str = "squash", tiles: int | str | None = None):
        self.set_resize(resize, tiles)
        self.model = model.eval()
        self.image_size = int(image_size)
        self.device = torch.device(device)
        self.dtype = _DTYPES[dtype] if isinstance(dtype, str) and dtype in _DTYPES else dtype
        self.dtype = None if self.dtype == torch.float32 else self.dtype  # float32: no autocast
        if self.dtype is not None and not isinstance(self.dtype, torch.dtype):
            raise SodError(f"dtype must be one of {', '.join(_DTYPES)} or a torch dtype, got {dtype!r}")
        self.multimask = bool(multimask)
        self.pretrained = pretrained
        self.checkpoint: dict | None = None  # a run's checkpoint (its trained video memory, if any)
        self.reset_image()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto", dtype: torch.dtype | str | None = None,
                        base_checkpoint: str | None = None, zero_shot: Any = None, engine: str = "torch",
                        resize: str = "squash", tiles: int | str | None = None) -> Predictor:
        """From anything `sam2sod.load_model` opens: a run directory, a run checkpoint (best.pt / last.pt), an
        exported model folder, an official SAM2 name or file (zero-shot SAM2), or a Hugging Face repo
        ("user/repo[@revision]" that is not a local path, or "hf://user/repo[@revision]"). `device`: auto | cpu |
        cuda[:N] | mps; `dtype`: autocast dtype; `zero_shot`: prompt-free | centre-point | amg (or
        `sam2sod.runs.zero_shot_options.ZeroShotOptions`) for an official SAM2. `engine`: torch | onnxruntime
        (`sam2sod.infer.engines`); `resize` squash | pad and `tiles` None | "auto" | N apply to `predict_batch`."""
        from sam2sod.infer.engines import check_engine, load_engine, use_engine
        from sam2sod.runs.loader import as_hub_ref, load_model
        from sam2sod.runs.runtime import select_device

        amp = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
        check_engine(engine, select_device(device), None if amp in (None, torch.float32) else str(dtype))
        load_engine(engine)
        loaded = load_model(as_hub_ref(path), device, base_checkpoint, zero_shot)
        loaded.model = use_engine(loaded.model, engine, loaded.multimask)
        predictor = cls.from_loaded(loaded, dtype)
        predictor.set_resize(resize, tiles)
        return predictor

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, dtype: torch.dtype | str | None = None) -> Predictor:
        """From a `sam2sod.runs.loader.LoadedModel` (its model, image size, device and multimask setting)."""
        predictor = cls(loaded.model, loaded.image_size, loaded.device, dtype, loaded.multimask, loaded.pretrained)
        predictor.checkpoint = loaded.checkpoint
        return predictor

    def set_resize(self, resize: str = "squash", tiles: int | str | None = None) -> None:
        """How `predict_batch` fits images to the model: resize squash | pad, tiles None | "auto" | N."""
        from sam2sod.infer.inference import check_resize, parse_tiles

        tiles = parse_tiles(tiles)
        check_resize(resize, tiles)
        self.resize, self.tiles = resize, tiles

    # ------------------------------------------------------------------ image state
    @property
    def is_promptable(self) -> bool:
        """False for classical baselines (prompt-free only)."""
        return is_promptable(self.model)

    @property
    def orig_hw(self) -> tuple[int, int] | None:
        """(H, W) of the image given to `set_image`, None before."""
        return self._orig_hw

    def reset_image(self) -> None:
        """Forget the cached image and its embedding."""
        self._image: torch.Tensor | None = None
        self._orig_hw: tuple[int, int] | None = None
        self._features: list[dict[str, Any] | None] = [None, None]  # image, mirrored image
        self._plain: dict[str | None, dict[str, torch.Tensor]] = {}  # baseline outputs per tta

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def _batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        from sam2sod.infer.inference import preprocess

        return torch.stack([preprocess(im, self.image_size) for im in images]).to(self.device)

    @torch.no_grad()
    def set_image(self, image: ImageLike) -> None:
        """Load `image` (numpy HxWx3 uint8, PIL or path), run the image encoder once and cache the embedding."""
        rgb = load_rgb(image)
        self.reset_image()
        self._image = self._batch([rgb])  # (1,3,S,S)
        self._orig_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        if self.is_promptable:
            with self._autocast():
                self._features[0] = self.model.encode_image(self._image)

    def _mirror_features(self) -> dict[str, Any]:
        if self._features[1] is None:
            with self._autocast():
                self._features[1] = self.model.encode_image(self._image.flip(-1))
        return self._features[1]

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(self, points: Any = None, labels: Any = None, box: Any = None, mask_input: Any = None,
                multimask: bool | None = None, refine: int = 0, tta: str | None = None) -> Prediction:
        """Saliency of the current image; prompt-free when no prompt is given.

        points (N,2) xy and labels (N,) 1 fg / 0 bg, box (4,) x0,y0,x1,y1 in original pixels; mask_input
        (1,S/4,S/4) logits (a previous `low_res_logits`). multimask None: the run's setting (best of 3 by
        predicted IoU). refine K: K self-prompted passes (prompt-free only); tta "flip": mirror averaging.
        """
        if self._image is None:
            raise SodError("call set_image(image) before predict()")
        tta = check_refine(refine, tta, self.model)
        prompts = make_prompt_batch(self._orig_hw, self.image_size, points, labels, box, mask_input)
        if not self.is_promptable:
            if prompts is not None:
                name = getattr(self.model, "method", None) or type(self.model).__name__
                raise SodError(f"{name} is a prompt-free model (e.g. a classical baseline): it takes no prompts "
                               "(points, box, mask_input); call predict() without them")
            if tta not in self._plain:
                with self._autocast():
                    self._plain[tta] = run_model(self.model, self._image, None, tta=tta)
            return Prediction(saliency_from_logits(self._plain[tta]["logits"][0], self._orig_hw), None, None)
        mm = self.multimask if multimask is None else bool(multimask)
        feats = (self._features[0], self._mirror_features() if tta else None)
        with self._autocast():
            out = run_model(self.model, self._image, None if prompts is None else prompts.to(self.device), mm,
                            refine, tta, features=feats)
        low = best_low_res(out)[0].float().cpu().numpy() if "best_index" in out else \
            out["low_res_logits"][0, :1].float().cpu().numpy()
        iou = out["iou"][0]
        best = int(out["best_index"][0]) if "best_index" in out and iou.numel() > 1 else 0
        return Prediction(saliency_from_logits(out["logits"][0], self._orig_hw), low, float(iou[best]))

    @torch.no_grad()
    def predict_batch(self, images: Sequence[ImageLike], batch_size: int = 8, refine: int = 0,
                      tta: str | None = None) -> list[np.ndarray]:
        """Prompt-free saliency (H,W) float32 0..1 of many images at their original sizes, `batch_size` at a time.

        Does not touch the image cached by `set_image`.
        """
        if batch_size < 1:
            raise SodError(f"batch_size must be >= 1, got {batch_size}")
        tta = check_refine(refine, tta, self.model)
        if self.resize != "squash" or self.tiles is not None:
            return self._batch_resized(images, refine, tta)
        out: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            rgbs = [load_rgb(im) for im in images[start:start + batch_size]]
            with self._autocast():
                res = run_model(self.model, self._batch(rgbs), None, self.multimask, refine, tta)
            out += [saliency_from_logits(res["logits"][j], rgb.shape[:2]) for j, rgb in enumerate(rgbs)]
        return out

    def predict_video(self, video: Any, keyframe_every: int = 10, *, redetect_score: float | None = 0.0,
                      check_every: int = 5, check_iou: float = 0.5, checkpoint: dict | None = None,
                      base_checkpoint: str | None = None) -> Any:
        """Yield a `sam2sod.infer.video.VideoFrame` (name, saliency (H,W) float32 0..1, kind) per frame.

        `video`: a frames folder or video file path, a `sam2sod.data.video.Video`, or a sequence of images
        (named 00000, 00001, ...); frames are decoded one at a time. keyframe_every 1 is frame-wise (each
        map equals `predict()`'s); otherwise SAM2's memory propagates keyframe detections (re-detection options
        as `sam2sod.models.video_tracker.TrackerConfig`). Models memory cannot drive run frame-wise.
        `checkpoint`: a run checkpoint dict whose trained memory state to use (`from_pretrained` keeps it).
        """
        from sam2sod.infer.video import VideoRunner
        from sam2sod.models.video_tracker import TrackerConfig

        config = TrackerConfig(keyframe_every=keyframe_every, redetect_score=redetect_score,
                               check_every=check_every, check_iou=check_iou)
        runner = VideoRunner.build(self.model, self.image_size, self.device, self.multimask, config,
                                   checkpoint=checkpoint if checkpoint is not None else self.checkpoint,
                                   base_checkpoint=base_checkpoint, dtype=self.dtype)
        return runner.frames(video)

    def _batch_resized(self, images: Sequence[ImageLike], refine: int, tta: str | None) -> list[np.ndarray]:
        """`predict_batch` with resize "pad" and / or tiles, one image at a time (float32 maps in 0..1)."""
        from sam2sod.data.tiles import tiled_saliency
        from sam2sod.infer.inference import tile_prob_fn

        prob = tile_prob_fn(self.model, self.image_size, self.device, self.multimask, self.dtype, refine, tta,
                            self.resize)
        out = []
        for im in images:
            rgb = load_rgb(im)
            if self.tiles is None:
                out.append(prob(rgb, rgb.shape[:2]).float().numpy())
            else:
                out.append(tiled_saliency(rgb, self.image_size, prob, self.tiles).astype(np.float32) / 255.0)
        return out
