"""Zero-shot SAM2: an untrained (official or random) SAM2 as a saliency model, no fine-tuning.

`build_zero_shot(weights, mode)` returns a model with SAM2SOD's calling contract: `model(images)` with
images (B,3,S,S) normalised with SAM2 mean/std returns {"logits": (B,1,S,S), ...}; saliency is
sigmoid(logits). Modes (`ZERO_SHOT_MODES`):

- ``prompt-free``: the mask decoder with no prompt, 3 masks, the one with the highest predicted IoU.
- ``centre-point``: one positive click at the image centre (S/2, S/2) (SAM's single-point protocol), 3
  masks, the best by predicted IoU. Rows that come with their own prompts use those instead.
- ``amg``: sam2's `SAM2AutomaticMaskGenerator` (point grid, predicted-IoU and stability filtering, box NMS)
  on each image, then the masks are combined into one map by the rule in `sam2sod.models.zero_shot_amg`
  (IoU x stability x centre prior x size prior, summed, divided by the maximum). `logits` is
  logit(clip(saliency, 1e-6, 1 - 1e-6)); the map itself is returned as "saliency" (B,1,S,S).

prompt-free and centre-point models are promptable (`encode_image` + `decode`, cached embeddings, refine);
amg is not (it runs the generator on the image itself). `model.label` is "zero-shot SAM2 (<mode>)".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sam2sod.errors import SodError
from sam2sod.models.sod_sam2 import SAM2SOD

__all__ = ["AMG_OPTIONS", "ZERO_SHOT_MODES", "ZeroShotAMG", "ZeroShotSAM2", "build_zero_shot", "check_amg_options",
           "check_mode", "zero_shot_label"]

ZERO_SHOT_MODES = ("prompt-free", "centre-point", "amg")
_MODE_ALIASES = {"prompt-free": "prompt-free", "promptfree": "prompt-free", "none": "prompt-free",
                 "centre-point": "centre-point", "center-point": "centre-point", "centre": "centre-point",
                 "center": "centre-point", "amg": "amg", "auto": "amg"}
# name -> (default, low, high, integer?); ranges are inclusive.
AMG_OPTIONS: dict[str, tuple[float, float, float, bool]] = {
    "points_per_side": (32, 1, 128, True),
    "points_per_batch": (64, 1, 4096, True),
    "pred_iou_thresh": (0.8, 0.0, 1.0, False),
    "stability_score_thresh": (0.95, 0.0, 1.0, False),
    "box_nms_thresh": (0.7, 0.0, 1.0, False),
    "min_mask_region_area": (0, 0, 1 << 20, True),
}
EPS = 1e-6  # saliency is clipped to [EPS, 1 - EPS] before logit


def check_mode(mode: str) -> str:
    """'prompt-free' | 'centre-point' | 'amg' (aliases center-point, centre, auto); SodError otherwise."""
    key = str(mode).strip().lower().replace("_", "-")
    if key not in _MODE_ALIASES:
        raise SodError(f"--zero-shot must be one of {', '.join(ZERO_SHOT_MODES)}, got {mode!r}")
    return _MODE_ALIASES[key]


def check_amg_options(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every AMG setting with defaults filled in; one-line SodError for an unknown name or a value out of range."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(AMG_OPTIONS))
    if unknown:
        raise SodError(f"unknown AMG option(s) {', '.join(unknown)}: accepted are {', '.join(AMG_OPTIONS)}")
    out = {}
    for name, (default, lo, hi, integer) in AMG_OPTIONS.items():
        value = options.get(name, default)
        kind = "an integer" if integer else "a number"
        types = int if integer else (int, float)
        ok_type = isinstance(value, types) and not isinstance(value, bool)
        if not ok_type or not lo <= value <= hi:
            fmt = (lambda v: str(int(v))) if integer else (lambda v: f"{v:g}")
            raise SodError(f"AMG option {name} must be {kind} in [{fmt(lo)}, {fmt(hi)}], got {value!r}")
        out[name] = int(value) if integer else float(value)
    return out


def zero_shot_label(mode: str) -> str:
    """'zero-shot SAM2 (<mode>)': the name of a zero-shot model in outputs and tables."""
    return f"zero-shot SAM2 ({check_mode(mode)})"


@dataclass
class _Prompts:
    """PromptBatchLike (see SAM2SOD): points (B,N,2) xy input pixels, labels (B,N)."""

    points: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    mask_input: torch.Tensor | None = None
    has_mask: torch.Tensor | None = None


class ZeroShotSAM2(SAM2SOD):
    """Untrained SAM2 decoding 'prompt-free' or 'centre-point' (see the module docstring)."""

    def __init__(self, sam: torch.nn.Module, mode: str = "prompt-free") -> None:
        super().__init__(sam)
        self.mode = check_mode(mode)
        if self.mode == "amg" and type(self) is ZeroShotSAM2:
            raise SodError("mode amg needs ZeroShotAMG (build_zero_shot chooses it)")
        self.method = "zero_shot"
        self.method_cfg = {"mode": self.mode}
        self.multimask = True  # SAM's protocol: 3 masks, the best by predicted IoU

    @property
    def label(self) -> str:
        """'zero-shot SAM2 (<mode>)' for outputs and tables."""
        return zero_shot_label(self.mode)

    def centre_prompts(self, prompts: Any, batch_size: int) -> _Prompts:
        """`prompts` with a positive click at (S/2, S/2) in every row that has no real point and no mask.

        Returns points (B,N',2) / labels (B,N') with N' = max(N, 1); rows with points keep theirs.
        """
        dev = self.device
        points = getattr(prompts, "points", None) if prompts is not None else None
        labels = getattr(prompts, "labels", None) if prompts is not None else None
        mask_input = getattr(prompts, "mask_input", None) if prompts is not None else None
        has_mask = getattr(prompts, "has_mask", None) if prompts is not None else None
        if points is None or labels is None or labels.shape[1] == 0:
            points = torch.zeros((batch_size, 1, 2), device=dev)
            labels = torch.full((batch_size, 1), -1, dtype=torch.int64, device=dev)
        points, labels = points.clone().float(), labels.clone()
        empty = (labels < 0).all(1)
        if has_mask is not None:
            empty &= ~has_mask.to(empty.device).bool()
        elif mask_input is not None:  # a mask_input without has_mask: every row has a mask
            empty = torch.zeros_like(empty)
        centre = self.image_size / 2.0
        points[empty, 0] = centre
        labels[empty, 0] = 1
        return _Prompts(points, labels, mask_input, has_mask)

    def decode(self, features: dict[str, Any], prompts: Any = None, multimask: bool = True) -> dict[str, torch.Tensor]:
        """SAM2SOD.decode with 3 masks (best by predicted IoU) and the mode's prompt where a row has none."""
        b = features["image_embed"].shape[0]
        if self.mode == "centre-point":
            prompts = self.centre_prompts(prompts, b)
        return super().decode(features, prompts, multimask=True)


class ZeroShotAMG(ZeroShotSAM2):
    """Untrained SAM2 + sam2's automatic mask generator, masks combined into saliency (zero_shot_amg)."""

    def __init__(self, sam: torch.nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__(sam, "amg")
        self.amg_options = check_amg_options(options)
        self.method_cfg = {"mode": "amg", **self.amg_options}
        self.__dict__["_base"] = sam  # the SAM2Base sam2's predictor needs; not a submodule (no extra keys)
        self._generator: Any = None

    def generator(self) -> Any:
        """sam2's `SAM2AutomaticMaskGenerator` on this model (built once)."""
        if self._generator is None:
            from sam2sod.models.zero_shot_amg import make_generator

            self._generator = make_generator(self.__dict__["_base"], self.image_size, self.amg_options)
        return self._generator

    def _uint8(self, image: torch.Tensor) -> np.ndarray:
        """(3,S,S) normalised -> (S,S,3) uint8 RGB, the input sam2's generator takes."""
        from sam2sod.data.transforms import SAM2_MEAN, SAM2_STD

        mean = torch.tensor(SAM2_MEAN, device=image.device).view(3, 1, 1)
        std = torch.tensor(SAM2_STD, device=image.device).view(3, 1, 1)
        rgb = ((image.float() * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
        return rgb.permute(1, 2, 0).cpu().numpy()

    @torch.no_grad()
    def forward(self, images: torch.Tensor, prompts: Any = None, multimask: bool = True) -> dict[str, torch.Tensor]:
        """images (B,3,S,S) normalised -> logits (B,1,S,S), saliency (B,1,S,S) in [0,1], n_masks (B,)."""
        from sam2sod.models.zero_shot_amg import clean_masks, saliency_from_masks

        self._check_images(images)
        if prompts is not None and getattr(prompts, "labels", None) is not None and bool((prompts.labels >= 0).any()):
            raise SodError("zero-shot mode amg makes its own grid of point prompts: it takes no points or box "
                           "(use --zero-shot centre-point or prompt-free to prompt the model)")
        gen, s = self.generator(), self.image_size
        maps, counts = [], []
        for image in images:
            anns = clean_masks(gen.generate(self._uint8(image)), self.amg_options["min_mask_region_area"])
            maps.append(torch.from_numpy(saliency_from_masks(anns, (s, s))))
            counts.append(len(anns))
        sal = torch.stack(maps)[:, None].to(images.device)
        logits = torch.logit(sal.clamp(EPS, 1 - EPS))
        return {"logits": logits, "saliency": sal, "n_masks": torch.tensor(counts, device=images.device)}


def _base_from_weights(weights: str | os.PathLike | None, version: str | None, size: str | None,
                       image_size: int, device: str | torch.device, seed: int | None) -> torch.nn.Module:
    """A `SAM2Base`: random init (weights None), an official `.pt` or transformers safetensors (official names are
    resolved to their cached file first: `sam2sod.weights.resolve_checkpoint`, as `sam2sod.load_model` does)."""
    from sam2sod.models.sam2_backbone import build_sam2_model, detect_variant, state_dict_mismatch

    if weights is None:
        return build_sam2_model(version or "sam2.1", size or "tiny", image_size, None, device=device, seed=seed)
    from sam2sod.hf_format import read_base_state_dict

    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise SodError(f"SAM2 weights {path} not found (give an official name such as sam2.1_hiera_tiny or a file)")
    sd, fmt = read_base_state_dict(path)
    got_version, got_size = detect_variant(sd)
    if fmt == "transformers":  # no memory keys: SAM2 and SAM2.1 share the image path, the version cannot be told
        got_version = "sam2.1"
    version, size = version or got_version or "sam2.1", size or got_size or "tiny"
    if fmt == "sam2":
        return build_sam2_model(version, size, image_size, path, device=device)
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.models.sam2_backbone import file_sha256

    with quiet_random_init():
        sam = build_sam2_model(version, size, image_size, None, device="cpu", seed=None)
    from sam2sod.hf_format import image_path_keys

    problem = state_dict_mismatch(image_path_keys(sam.state_dict()), image_path_keys(sd))
    if problem:
        raise SodError(f"{path} (transformers format) does not fit {version} hiera {size}: {problem}")
    sam.load_state_dict(image_path_keys(sd), strict=False)  # the file has no memory modules (unused here)
    sam.sam2sod_base_info.update(checkpoint=os.path.abspath(path), sha256=file_sha256(path), seed=None,
                                 pretrained=True, format="transformers")
    return sam.to(device)


def build_zero_shot(weights: str | os.PathLike | None = None, mode: str = "prompt-free", *,
                    version: str | None = None, size: str | None = None, image_size: int = 1024,
                    device: str | torch.device = "cpu", seed: int | None = 0,
                    amg: dict[str, Any] | None = None) -> ZeroShotSAM2:
    """An eval-mode zero-shot SAM2 for `mode` from `weights`: an official `.pt` (a name such as 'sam2.1_hiera_tiny'
    goes through `sam2sod.load_model`), a transformers `model.safetensors`, or None (seeded random init,
    `version`/`size` default sam2.1 tiny, with the RandomInitWarning). `amg`: AMG settings (`AMG_OPTIONS`),
    only for mode amg. Everything is checked before the model is built."""
    from sam2sod.models.sam2_backbone import check_image_size

    mode = check_mode(mode)
    if amg and mode != "amg":
        raise SodError(f"AMG options ({', '.join(sorted(amg))}) apply to --zero-shot amg only, not {mode}")
    options = check_amg_options(amg) if mode == "amg" else None
    check_image_size(image_size)
    sam = _base_from_weights(weights, version, size, image_size, "cpu", seed)
    model = ZeroShotAMG(sam, options) if mode == "amg" else ZeroShotSAM2(sam, mode)
    if mode != "amg":
        del sam  # drops the memory modules
    return model.to(device).eval()
