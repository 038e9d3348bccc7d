"""Reading a `sam2sod export` folder (`config.json` + `model.safetensors`): `is_export`, `read_export_config`,
`load_exported`. `sam2sod.runs.loader.load_model` opens exports through these; `sam2sod.export` writes them.

Only safetensors is read: pickled files are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from sam2sod.errors import SodError

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "WEIGHTS_FILE", "is_export", "load_exported", "read_export_config"]

EXPORT_FORMAT = "sam2sod-export/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")

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
