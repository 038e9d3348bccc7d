"""Batched prompt-free (or oracle-prompted) inference at each image's original size.

Used by validation during training, `sam2sod evaluate` and `sam2sod predict`, so all three see the
same preprocessing: bilinear (antialiased) resize to the model's square input, SAM2 mean/std.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, default_collate

from sam2sod.data.io import load_image, load_mask
from sam2sod.data.tiles import letterbox, tiled_saliency
from sam2sod.data.transforms import SAM2_MEAN, SAM2_STD
from sam2sod.errors import SodError
from sam2sod.infer.forward import check_refine, logits_to_uint8, probability, run_model

ORACLE_LABEL = "oracle prompt (uses ground truth)"


RESIZE_MODES = ("squash", "pad")


def preprocess(image: np.ndarray, size: int, resize: str = "squash") -> torch.Tensor:
    """uint8 HxWx3 -> float32 3xSxS, resized (bilinear, antialias) and normalised with SAM2's mean/std.

    `resize` "squash": to SxS; "pad": aspect ratio kept (`sam2sod.data.tiles.letterbox`), centred on a canvas
    of zeros (SAM2's mean colour after normalisation). Channel by channel: a full-size float copy of one
    channel (4 bytes per pixel) instead of three.
    """
    src = torch.from_numpy(np.ascontiguousarray(image))
    box = letterbox(image.shape[0], image.shape[1], size) if resize == "pad" else None
    hw = (size, size) if box is None else (box.h, box.w)
    out = torch.empty(3, *hw)
    for c in range(3):
        x = src[..., c].float().div_(255.0)[None, None]
        out[c] = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)[0, 0]
        del x
    mean = torch.tensor(SAM2_MEAN).view(3, 1, 1)
    std = torch.tensor(SAM2_STD).view(3, 1, 1)
    out = out.sub_(mean).div_(std)
    if box is None:
        return out
    canvas = torch.zeros(3, size, size)
    canvas[:, box.top:box.top + box.h, box.left:box.left + box.w] = out
    return canvas


def to_uint8_map(logits: torch.Tensor, size_hw: tuple[int, int], size: int, resize: str = "squash") -> np.ndarray:
    """Logits (1,h,w) of the model's SxS canvas -> uint8 (H,W) map; "pad": the image's part is cropped out
    of the logits (at their resolution) before the upsampling."""
    if resize == "pad":
        logits = letterbox(size_hw[0], size_hw[1], size).crop(logits)
    return logits_to_uint8(logits, size_hw)


def default_workers(n_images: int, batch_size: int, device: torch.device | None = None) -> int:
    """Image-decoding DataLoader workers: none for a single batch, else `auto_workers(device)` (on CPU
    usually none, on CUDA one per core beyond the first, at most 4)."""
    from sam2sod.runs.runtime import auto_workers

    return 0 if n_images <= batch_size else auto_workers(device)


class ImageListDataset(Dataset):
    """Images (and optionally masks, for oracle prompts) by path; returns model-ready tensors.

    With `skip_unreadable`, an image that cannot be decoded gives ``{"index", "error"}`` instead of raising,
    so one bad file does not stop a batch (see `collate_skipping`).
    """

    def __init__(self, items: Sequence[tuple[str, Path, Path | None]], size: int, skip_unreadable: bool = False,
                 resize: str = "squash"):
        self.items = list(items)
        self.size = size
        self.skip_unreadable = skip_unreadable
        self.resize = resize

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        name, image_path, mask_path = self.items[i]
        try:
            image = load_image(image_path)
        except SodError as err:
            if self.skip_unreadable:
                return {"index": i, "error": str(err)}
            raise
        out = {"image": preprocess(image, self.size, self.resize), "name": name,
               "orig_size": torch.tensor(image.shape[:2])}
        if mask_path is not None:
            m = torch.from_numpy(load_mask(mask_path)).float().div_(255.0)[None, None]
            out["mask"] = F.interpolate(m, size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        return out


def collate_skipping(samples: list[dict]) -> dict:
    """`default_collate` of the readable samples (None if there are none) plus ``errors``: [(index, message)]."""
    good = [s for s in samples if "error" not in s]
    return {"batch": default_collate(good) if good else None,
            "errors": [(s["index"], s["error"]) for s in samples if "error" in s]}


def predict_items(model: torch.nn.Module, items: Sequence[tuple[str, Path, Path | None]], image_size: int,
                  device: torch.device, batch_size: int = 8, oracle: str | None = None, workers: int | None = 0,
                  multimask: bool = False, autocast_dtype: torch.dtype | None = None,
                  refine: int = 0, tta: str | None = None,
                  on_unreadable: Callable[[tuple[str, Path, Path | None], SodError], object] | None = None,
                  resize: str = "squash", tiles: int | str | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (name, uint8 saliency map at the original size) for each item, in order.

    `oracle` in {None, "box", "points", "mask"}: prompts derived from the GT mask (an upper bound that
    leaks the answer; callers must label such results with `ORACLE_LABEL`). `refine` / `tta`: self-prompted
    refinement passes and flip TTA (`sam2sod.infer.forward.run_model`; no ground truth is read for them).
    `workers`: DataLoader processes decoding the next batches while the model runs (None: `default_workers`).
    `on_unreadable(item, error)`: called for an image that cannot be decoded, which is then skipped (without
    it the error is raised). `resize` "squash" | "pad" (`preprocess`); `tiles` None, "auto" or N: each image
    alone through `sam2sod.data.tiles.tiled_saliency` (a global pass plus overlapping tiles, `tiled_maps`).
    """
    from sam2sod.data.prompts import collate_prompts, oracle_prompts

    if not items:
        return
    tta = check_refine(refine, tta, model)
    if refine and oracle is not None:
        raise SodError("--refine starts prompt-free; it cannot be combined with an oracle --prompt")
    check_resize(resize, tiles, oracle)
    if tiles is not None:
        yield from tiled_maps(model, items, image_size, device, tiles, multimask, autocast_dtype, refine, tta,
                              resize, on_unreadable)
        return
    workers = default_workers(len(items), batch_size, device) if workers is None else workers
    dataset = ImageListDataset(items, image_size, skip_unreadable=on_unreadable is not None, resize=resize)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping,
                        pin_memory=device.type == "cuda", prefetch_factor=2 if workers else None)
    was_training = model.training
    model.eval()
    try:
        for loaded in loader:
            for index, message in loaded["errors"]:
                on_unreadable(dataset.items[index], SodError(message))
            batch = loaded["batch"]
            if batch is None:
                continue
            with torch.no_grad():  # not inference_mode: validation shares sam2's caches with training
                images = batch["image"].to(device, non_blocking=True)
                prompts = None
                if oracle is not None:
                    prompts = collate_prompts([oracle_prompts(m, oracle) for m in batch["mask"]], image_size)
                    prompts = prompts.to(device) if prompts is not None else None
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    out = run_model(model, images, prompts, multimask, refine=refine, tta=tta)
                maps = [to_uint8_map(out["logits"][j], tuple(batch["orig_size"][j].tolist()), image_size, resize)
                        for j in range(len(batch["name"]))]
            yield from zip(batch["name"], maps, strict=True)
    finally:
        model.train(was_training)


def parse_tiles(text: str | int | None) -> int | str | None:
    """`--tiles` text -> None (not given), "auto" or an integer N in [1, 64]; SodError (one line) otherwise."""
    if text is None or text == "auto" or (isinstance(text, int) and not isinstance(text, bool)):
        return text
    try:
        return int(str(text))
    except ValueError:
        raise SodError(f"--tiles must be auto or an integer in [1, 64], got {text!r}") from None


def check_resize(resize: str, tiles: int | str | None = None, oracle: str | None = None) -> None:
    """One-line SodError for an unknown --resize, a --tiles outside auto / 1..64, or oracle prompts with them."""
    from sam2sod.data.tiles import tile_count

    if resize not in RESIZE_MODES:
        raise SodError(f"--resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if tiles is not None:
        tile_count(1, 1, 1, tiles)  # validates the value
    if oracle is not None and (resize != "squash" or tiles is not None):
        raise SodError("oracle --prompt works with --resize squash and no --tiles")


def tile_prob_fn(model: torch.nn.Module, size: int, device: torch.device, multimask: bool = False,
                 autocast_dtype: torch.dtype | None = None, refine: int = 0, tta: str | None = None,
                 resize: str = "squash") -> Callable[[np.ndarray, tuple[int, int]], torch.Tensor]:
    """fn(rgb HxWx3 uint8, (h, w)) -> float32 (h, w) probability through the one forward (`run_model`)."""

    def prob(rgb: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
        x = preprocess(rgb, size, resize)[None].to(device)
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = run_model(model, x, None, multimask, refine=refine, tta=tta)["logits"][0]
        if resize == "pad":
            logits = letterbox(rgb.shape[0], rgb.shape[1], size).crop(logits)
        return probability(logits, hw).cpu()

    return prob


def tiled_maps(model: torch.nn.Module, items: Sequence[tuple[str, Path, Path | None]], size: int,
               device: torch.device, tiles: int | str, multimask: bool = False,
               autocast_dtype: torch.dtype | None = None, refine: int = 0, tta: str | None = None,
               resize: str = "squash",
               on_unreadable: Callable[[tuple[str, Path, Path | None], SodError], object] | None = None,
               ) -> Iterator[tuple[str, np.ndarray]]:
    """(name, uint8 map) per item from a global pass plus overlapping tiles (`tiled_saliency`), one image at
    a time; with one tile (small images under "auto", or tiles=1) the plain global pass."""
    prob = tile_prob_fn(model, size, device, multimask, autocast_dtype, refine, tta, resize)
    was_training = model.training
    model.eval()
    try:
        for item in items:
            try:
                image = load_image(item[1])
            except SodError as err:
                if on_unreadable is None:
                    raise
                on_unreadable(item, err)
                continue
            yield item[0], tiled_saliency(image, size, prob, tiles)
            del image
    finally:
        model.train(was_training)
