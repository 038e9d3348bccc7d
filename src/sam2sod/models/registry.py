"""Fine-tuning methods by name and `create_model`."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from sam2sod.errors import SodError
from sam2sod.models.freeze import freeze, unfreeze
from sam2sod.models.peft.adapter_cbam import apply_adapter_cbam
from sam2sod.models.peft.lora import apply_lora
from sam2sod.models.peft.sam2unet import apply_sam2unet
from sam2sod.models.peft.sam_adapter import apply_sam_adapter
from sam2sod.models.peft.tuned_sam import apply_tuned_sam
from sam2sod.models.sam2_backbone import build_sam2_model
from sam2sod.models.sod_sam2 import SAM2SOD


class MethodSpec(NamedTuple):
    builder: Callable[..., None]  # builder(model: SAM2SOD, **method_cfg) modifies the model in place
    description: str
    trains_with_prompts: bool = False  # does the method's paper train with prompts simulated from the GT?


def apply_decoder_only(model: SAM2SOD) -> None:
    """Freeze the image encoder (and no_mem_embed); train the prompt encoder and mask decoder."""
    freeze(model)
    unfreeze(model.sam_prompt_encoder)
    unfreeze(model.sam_mask_decoder)


def apply_full(model: SAM2SOD) -> None:
    """Train every parameter."""
    unfreeze(model)


METHODS: dict[str, MethodSpec] = {
    "adapter_cbam": MethodSpec(
        apply_adapter_cbam,
        "report 000: frozen Hiera + Adapter after each stage + CBAM after each block; "
        "prompt encoder and mask decoder trained",
        True,  # report 000 trains with simulated point / box / mask prompts
    ),
    "decoder_only": MethodSpec(apply_decoder_only, "frozen image encoder; prompt encoder and mask decoder trained"),
    "full": MethodSpec(apply_full, "every SAM2 image-path parameter trained"),
    "lora": MethodSpec(apply_lora, "LoRA on the Hiera blocks' attention (qkv, proj; optionally MLP) linears; "
                       "prompt encoder and mask decoder trained"),
    "sam_adapter": MethodSpec(apply_sam_adapter, "report 002: SAM-Adapter, frozen Hiera prompted per block from "
                              "high-frequency + patch-embedding features; prompt encoder and mask decoder trained"),
    "sam2unet": MethodSpec(apply_sam2unet, "SAM2-UNet: frozen Hiera + adapter before each block, RFBs and a "
                           "deeply supervised U-Net decoder (no SAM2 mask decoder, prompt-free)"),
    "tuned_sam": MethodSpec(apply_tuned_sam, "report 001: Tuned SAM, frozen Hiera + Tuned Blocks side network, "
                            "Multi-scale Refiner and Feature Aggregation Decoder"),
}


def trains_with_prompts(method: str) -> bool:
    """The method's prompt policy: only report 000 (adapter_cbam) trains with simulated prompts. Tuned SAM
    (report 001) and SAM-Adapter (report 002) are prompt-free methods, as are SAM2-UNet and the classical
    baselines; decoder_only, full and lora have no paper recipe and train as SOD is tested, prompt-free."""
    return METHODS[method].trains_with_prompts if method in METHODS else False


def all_methods() -> dict[str, str]:
    """Every trainable model by name -> one-line description: SAM2 methods, then classical baselines."""
    from sam2sod.models.baselines import BASELINES

    return {**{k: v.description for k, v in METHODS.items()}, **{k: d for k, (_, d) in BASELINES.items()}}


def create_baseline(method: str, *, image_size: int, device: str | torch.device = "cpu", seed: int | None = 0,
                    backbone_weights: str | os.PathLike | None = None, **cfg: Any) -> torch.nn.Module:
    """Build a classical baseline with the attributes the engine expects of any model (method, method_cfg,
    base_info with the backbone weights' identity, model_is_pretrained)."""
    from sam2sod.models.baselines import build_baseline
    from sam2sod.models.sam2_backbone import file_sha256

    model = build_baseline(method, image_size=image_size, device=device, seed=seed,
                           backbone_weights=backbone_weights, **cfg)
    model.method = method
    model.method_cfg = {k: v for k, v in model.baseline_cfg.items() if k != "backbone_weights"}
    pretrained = bool(getattr(model, "pretrained_backbone", False))
    model.base_info = {"version": "baseline", "size": method, "image_size": image_size, "seed": seed,
                       "checkpoint": os.fspath(backbone_weights) if backbone_weights else None,
                       "sha256": file_sha256(backbone_weights) if backbone_weights else None,
                       "pretrained": pretrained}
    model.model_is_pretrained = pretrained
    return model


def method_options(method: str) -> dict[str, Any]:
    """Keyword options of a method with their defaults, e.g. {'adapter_ratio': 0.25, ...}."""
    spec = _spec(method)
    params = inspect.signature(spec.builder).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _no_backbone(method: str) -> None:
    raise SodError(f"model.backbone_weights is for the classical baselines; {method} is a SAM2 method whose "
                   f"weights go in model.checkpoint")


def _spec(method: str) -> MethodSpec:
    if method not in METHODS:
        raise SodError(f"unknown method {method!r}: known methods are {', '.join(sorted(all_methods()))}")
    return METHODS[method]


def create_model(
    method: str,
    *,
    version: str = "sam2.1",
    size: str = "tiny",
    image_size: int = 1024,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    seed: int | None = 0,
    **method_cfg: Any,
) -> SAM2SOD:
    """Build SAM2 (official weights from `checkpoint`, else seeded random init with a warning),
    wrap it in SAM2SOD and apply `method`. Returned in eval mode; call .train() to train.

    `model.method`, `model.method_cfg` (with defaults filled in), `model.base_info` and
    `model.model_is_pretrained` describe what was built.
    """
    from sam2sod.models.baselines import BASELINES

    if method in BASELINES:
        if checkpoint is not None:
            raise SodError(f"{method} is a classical baseline: SAM2 weights (model.checkpoint) do not apply; "
                           f"ImageNet backbone weights go in model.backbone_weights")
        return create_baseline(method, image_size=image_size, device=device, seed=seed, **method_cfg)
    if method_cfg.pop("backbone_weights", None) is not None:
        _no_backbone(method)
    spec = _spec(method)
    options = method_options(method)
    unknown = sorted(set(method_cfg) - set(options))
    if unknown:
        known = ", ".join(options) or "none"
        raise SodError(f"unknown option(s) for method {method!r}: {', '.join(unknown)} (accepted: {known})")
    sam = build_sam2_model(version, size, image_size, checkpoint, device=device, seed=seed)
    model = SAM2SOD(sam)
    del sam  # drops the memory modules
    cfg = {**options, **method_cfg}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        spec.builder(model, **cfg)
    model.method, model.method_cfg = method, cfg
    return model.to(device).eval()
