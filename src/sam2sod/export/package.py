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

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "FORMATS", "WEIGHTS_FILE", "export_model", "is_export",
           "load_exported", "read_export_config"]

EXPORT_FORMAT = "sam2sod-export/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
FORMATS = ("safetensors", "onnx")
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")


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


def build_export_config(ckpt: dict[str, Any], model: torch.nn.Module, lora_merged: bool,
                        weights_format: str) -> dict[str, Any]:
    """The `config.json` of an export: what rebuilds the architecture, where it came from, how it was trained."""
    from sam2sod.data.transforms import SAM2_MEAN, SAM2_STD
    from sam2sod.export.card import run_metrics
    from sam2sod.runs.checkpoints import config_of

    cfg = config_of(ckpt)
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


def export_model(checkpoint_or_run: str | os.PathLike, out_dir: str | os.PathLike, format: str = "safetensors", *,
                 overwrite: bool = False, base_checkpoint: str | None = None) -> Path:
    """Export a run (folder, best.pt or last.pt) to `out_dir`; returns `out_dir`.

    safetensors: config.json + model.safetensors + README.md. onnx: config.json + README.md + model.onnx
    (images -> logits) and, for methods with SAM2's prompt path, image_encoder.onnx + decoder.onnx.
    `base_checkpoint`: the base SAM2 weights when they are not where the run recorded them.
    """
    from sam2sod.atomic import atomic_write_text
    from sam2sod.export.card import model_card
    from sam2sod.models.peft.lora import lora_modules, merge_lora
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.outputs import prepare_output_dir
    from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint

    if format not in FORMATS:
        raise SodError(f"unknown export format {format!r}: choose {' or '.join(FORMATS)}")
    if format == "onnx":
        from sam2sod.export.onnx_export import require_onnx

        require_onnx()
    ckpt = read_checkpoint(checkpoint_or_run)
    out = prepare_output_dir(out_dir, overwrite=overwrite, inputs=[ckpt["path"]], command="export")
    with quiet_random_init():
        model = build_model_from_checkpoint(ckpt, torch.device("cpu"), base_checkpoint)
    lora_merged = bool(lora_modules(model))
    if lora_merged:
        merge_lora(model)
    model.eval()
    config = build_export_config(ckpt, model, lora_merged, format)
    if format == "safetensors":
        write_safetensors(model, out / WEIGHTS_FILE)
        config["files"] = [WEIGHTS_FILE]
    else:
        from sam2sod.export.onnx_export import export_onnx

        config["onnx"] = export_onnx(model, out, multimask=config["multimask"])
        config["files"] = list(config["onnx"])
    atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    atomic_write_text(out / CARD_FILE, model_card(config))
    return out


# ---- loading

def _folder_of(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_file() and (p.name == CONFIG_FILE or p.suffix == ".safetensors"):
        return p.parent
    return p


def is_export(path: str | os.PathLike) -> bool:
    """True when `path` is (a file of) a folder written by `sam2sod export`."""
    folder = _folder_of(path)
    try:
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith("sam2sod-export/")


def read_export_config(path: str | os.PathLike) -> dict[str, Any]:
    """The `config.json` of an export folder; SodError (one line) when it is missing or not ours."""
    folder = _folder_of(path)
    if not folder.exists():
        raise SodError(f"exported model {folder} not found")
    if not folder.is_dir():
        raise SodError(f"{folder} is not an export folder (`sam2sod export` writes a folder with {CONFIG_FILE} and "
                       f"{WEIGHTS_FILE}); pickled files are not loaded")
    p = folder / CONFIG_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SodError(f"{folder} is not an export folder: it has no {CONFIG_FILE} (`sam2sod export` writes "
                       f"{CONFIG_FILE} + {WEIGHTS_FILE})") from None
    except (OSError, ValueError) as e:
        raise SodError(f"cannot read {p}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise SodError(f"{p} is not a sam2sod export config (expected format {EXPORT_FORMAT!r}, got "
                       f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r})")
    for key in ("method", "image_size", "method_cfg"):
        if key not in data:
            raise SodError(f"{p} lacks {key!r}; export the run again")
    return data


def _weights_reason(path: Path) -> str | None:
    """Why `path` is not a safetensors file (from its first bytes), or None when it may be one."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return ("a pickled PyTorch file, not safetensors: exports are loaded from safetensors only "
                "(pickles can run code)")
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if len(head) < 9 or head[8:9] != b"{" or not 0 < n < path.stat().st_size:
        return "not a safetensors file (a truncated or damaged file?)"
    return None


def _read_weights(folder: Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    p = folder / WEIGHTS_FILE
    if not p.is_file():
        if config.get("weights_format") == "onnx":
            raise SodError(f"{folder} holds an ONNX export ({', '.join(config.get('files', []))}): run it with "
                           "onnxruntime, or export the run again with --format safetensors to load it in PyTorch")
        pickles = sorted(q.name for q in folder.iterdir() if q.suffix in _PICKLE_SUFFIXES)
        extra = f"; {', '.join(pickles)} are not loaded (pickles can run code)" if pickles else ""
        raise SodError(f"{folder} has no {WEIGHTS_FILE}{extra}")
    reason = _weights_reason(p)
    if reason:
        raise SodError(f"cannot read {p}: {reason}")
    from safetensors.torch import load_file

    try:
        return load_file(p, device="cpu")
    except Exception as e:  # noqa: BLE001 - any failure of the reader is a bad file for the user
        raise SodError(f"cannot read {p}: not a valid safetensors file ({' '.join(str(e).split())[:200]})") from None


def load_exported(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a `sam2sod export` folder (or its model.safetensors / config.json) as an eval-mode model.

    The architecture is rebuilt with `create_model(..., checkpoint=None)` and every tensor is loaded strictly
    from model.safetensors; no base checkpoint is read. `model.export_config` holds config.json and
    `model.base_info` / `model.model_is_pretrained` describe the base the model was trained on.
    """
    from sam2sod.models.peft.lora import merge_lora
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.models.registry import create_model
    from sam2sod.models.sam2_backbone import state_dict_mismatch

    folder = _folder_of(path)
    config = read_export_config(folder)
    sd = _read_weights(folder, config)
    with quiet_random_init():
        model = create_model(config["method"], version=config.get("version", "sam2.1"),
                             size=config.get("size", "tiny"), image_size=int(config["image_size"]),
                             checkpoint=None, device="cpu", seed=0, **dict(config["method_cfg"]))
    if config.get("lora_merged"):
        merge_lora(model)
    problem = state_dict_mismatch(model.state_dict(), sd)
    if problem:
        raise SodError(f"{folder / WEIGHTS_FILE} does not fit the model its {CONFIG_FILE} describes "
                       f"({config['method']}): {problem}")
    model.load_state_dict(sd, strict=True)
    base = dict(config.get("base") or {})
    if base:
        model.base_info = base
    if not hasattr(type(model), "model_is_pretrained"):  # baselines keep it as a plain attribute
        model.model_is_pretrained = bool(config.get("pretrained", False))
    model.export_config = config
    return model.to(device).eval()
