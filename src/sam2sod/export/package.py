"""A finished run as one standalone folder: `config.json` + `model.safetensors` (+ model card `README.md`).

The safetensors file holds the FULL state dict of the tuned model: the base SAM2 (or baseline) weights and
the tuned ones merged, LoRA folded into the linear layers (`merge_lora`), so loading it needs neither the run
nor the base checkpoint. `load_exported` rebuilds the architecture from `config.json` (random init, silenced)
and loads every tensor strictly. Only safetensors is read: pickled files are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from sam2sod.errors import SodError
from sam2sod.outputs import in_output_scope
from sam2sod.runs.exported import CONFIG_FILE, EXPORT_FORMAT, WEIGHTS_FILE, is_export, load_exported, read_export_config
from sam2sod.runs.loader import ModelSource, open_source

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "FORMATS", "WEIGHTS_FILE", "export_model", "is_export",
           "load_exported", "read_export_config"]

CARD_FILE = "README.md"
FORMATS = ("safetensors", "onnx")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": str(torch.__version__)}
    for pkg in ("sam2sod", "sam2"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _plain(value: Any) -> Any:
    """`value` as JSON-safe plain data (paths and other objects as strings)."""
    return json.loads(json.dumps(value, default=str))


def build_export_config(source: ModelSource, model: torch.nn.Module, lora_merged: bool,
                        weights_format: str) -> dict[str, Any]:
    """The `config.json` of an export: what rebuilds the architecture, where it came from, how it was trained.

    The source of an export folder keeps its config.json (training record, metrics), in the new format.
    """
    from sam2sod.data.transforms import SAM2_MEAN, SAM2_STD
    from sam2sod.export.card import run_metrics

    if source.kind == "export":
        kept = {k: v for k, v in source.export_config.items() if k not in ("files", "onnx")}
        return _plain({**kept, "weights_format": weights_format,
                       "lora_merged": bool(kept.get("lora_merged")) or lora_merged, "versions": _versions()})
    ckpt, cfg = source.checkpoint, source.config
    m, d = cfg.model, cfg.data
    base = dict(getattr(model, "base_info", {}) or {})
    pretrained = bool(getattr(model, "model_is_pretrained", False))
    run_dir = Path(ckpt["path"]).parent
    return _plain({
        "format": EXPORT_FORMAT,
        "weights_format": weights_format,
        "method": m.method,
        "lora_merged": lora_merged,
        "version": m.version,
        "size": m.size,
        "image_size": int(getattr(model, "image_size", m.image_size) or m.image_size),
        "method_cfg": dict(getattr(model, "method_cfg", {}) or {}),
        "multimask": bool(m.multimask),
        "base": base,
        "pretrained": pretrained,
        "preprocess": {"resize": "bilinear (antialias) to image_size x image_size", "scale": "RGB / 255",
                       "mean": list(SAM2_MEAN), "std": list(SAM2_STD)},
        "output": "logits (B,1,S,S); saliency = sigmoid(logits), resized back to the image",
        "training": {
            "data": {k: getattr(d, k) for k in ("root", "images", "masks", "val_root", "train_count", "val_count")},
            "steps": ckpt.get("step"), "epochs": ckpt.get("epoch"), "seed": cfg.seed,
            "best": ckpt.get("best"), "init_from": m.init_from, "checkpoint": ckpt["path"],
        },
        "metrics": run_metrics(run_dir),
        "versions": _versions(),
    })


def _state_for_safetensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every state-dict tensor as its own contiguous CPU copy (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def write_safetensors(model: torch.nn.Module, path: Path) -> None:
    """The model's full state dict to `path` (atomically)."""
    from safetensors.torch import save

    from sam2sod.atomic import atomic_write_bytes

    atomic_write_bytes(path, save(_state_for_safetensors(model), metadata={"format": "pt", "sam2sod": EXPORT_FORMAT}))


@in_output_scope
def export_model(checkpoint_or_run: str | os.PathLike, out_dir: str | os.PathLike, format: str = "safetensors", *,
                 overwrite: bool = False, base_checkpoint: str | None = None) -> Path:
    """Export a model (anything `sam2sod.load_model` opens: a run folder, best.pt / last.pt, an export folder)
    to `out_dir`; returns `out_dir`.

    safetensors: config.json + model.safetensors + README.md. onnx: config.json + README.md + model.onnx
    (images -> logits) and, for methods with SAM2's prompt path, image_encoder.onnx + decoder.onnx.
    `base_checkpoint`: the base SAM2 weights when they are not where the run recorded them.
    """
    from sam2sod.atomic import atomic_write_text
    from sam2sod.export.card import model_card
    from sam2sod.models.peft.lora import lora_modules, merge_lora
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.names import inside
    from sam2sod.outputs import prepare_output_dir

    if format not in FORMATS:
        raise SodError(f"unknown export format {format!r}: choose {' or '.join(FORMATS)}")
    if format == "onnx":
        from sam2sod.export.onnx_export import require_onnx

        require_onnx()
    source = open_source(checkpoint_or_run, base_checkpoint)
    if source.kind == "official":
        raise SodError(f"{checkpoint_or_run} is an official SAM2 (zero-shot, untrained): export takes a trained model "
                       "(a run folder, best.pt / last.pt or an export folder); the official weights are on the hub "
                       "already")
    run_dir = source.path.parent if source.kind == "run" else source.path  # never written: no export inside it
    out = prepare_output_dir(out_dir, overwrite=overwrite, inputs=[source.path, run_dir], command="export")
    with quiet_random_init():
        model = source.build("cpu").model
    lora_merged = bool(lora_modules(model))
    if lora_merged:
        merge_lora(model)
    model.eval()
    config = build_export_config(source, model, lora_merged, format)
    if format == "safetensors":
        write_safetensors(model, inside(out, WEIGHTS_FILE))
        config["files"] = [WEIGHTS_FILE]
    else:
        from sam2sod.export.onnx_export import export_onnx

        config["onnx"] = export_onnx(model, out, multimask=config["multimask"])
        config["files"] = list(config["onnx"])
    atomic_write_text(inside(out, CONFIG_FILE), json.dumps(config, indent=2) + "\n")
    atomic_write_text(inside(out, CARD_FILE), model_card(config))
    return out
