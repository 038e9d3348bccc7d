"""SAM2 weights in transformers' `Sam2Model` layout (the hub's facebook/sam2.1-hiera-* `model.safetensors`).

`read_base_state_dict(path)` reads an official sam2 checkpoint or a transformers safetensors file and returns
the state dict in sam2's names; `detect_format(path)` says what a weights file is. The key mapping,
transformers -> sam2 (`N` is a number kept as is):

- `no_memory_embedding` -> `no_mem_embed`
- `shared_image_embedding.positional_embedding` -> `sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix`
  (`prompt_encoder.shared_embedding.positional_embedding` is the same matrix and must equal it)
- `vision_encoder.backbone.` -> `image_encoder.trunk.`; `vision_encoder.neck.convs.N.{weight,bias}` ->
  `image_encoder.neck.convs.N.conv.{weight,bias}`
- `patch_embed.projection` -> `patch_embed.proj`; `blocks.N.layer_norm{1,2}` -> `blocks.N.norm{1,2}`;
  `blocks.N.mlp.proj_in` / `.proj_out` -> `blocks.N.mlp.layers.0` / `.layers.1`
- `prompt_encoder.` -> `sam_prompt_encoder.`; `mask_embed.conv1 / layer_norm1 / conv2 / layer_norm2 / conv3` ->
  `mask_downscaling.0 / 1 / 3 / 4 / 6`; `point_embed.weight` (4,256) -> `point_embeddings.{0..3}.weight` (1,256)
- `mask_decoder.` -> `sam_mask_decoder.`; `o_proj` -> `out_proj`; `layer_norm{1..4}` -> `norm{1..4}`;
  `layer_norm_final_attn` -> `norm_final_attn`; `transformer.layers.N.mlp.proj_in` / `.proj_out` ->
  `transformer.layers.N.mlp.layers.0` / `.layers.1`
- `upscale_conv1` / `upscale_layer_norm` / `upscale_conv2` -> `output_upscaling.0` / `.1` / `.3`
- MLP heads (`output_hypernetworks_mlps.N`, `iou_prediction_head`, `pred_obj_score_head`) with L layers:
  `proj_in` -> `layers.0`, `layers.i` -> `layers.(i+1)`, `proj_out` -> `layers.(L-1)`

Every other name (`attn.qkv`, `blocks.N.proj`, `pos_embed`, tokens, `conv_s0/1`, ...) is equal. transformers'
`Sam2Model` holds the still-image path only: the memory modules of sam2's video model are not in such a file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from sam2sod.errors import SodError

__all__ = ["FORMAT_NAMES", "IMAGE_PATH_PREFIXES", "detect_format", "from_transformers", "image_path_keys",
           "is_safetensors", "read_base_state_dict"]

FORMAT_NAMES = {"sam2": "an official-format sam2 checkpoint (sam2 names)",
                "transformers": "SAM2 weights in transformers' Sam2Model safetensors layout",
                "sam2sod-export": "the model.safetensors of a sam2sod export folder (a fine-tuned model)"}
IMAGE_PATH_PREFIXES = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")
_PE = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_RULES: list[tuple[str, str]] = [  # (regex, replacement), applied in order after the prefix rules
    (r"^vision_encoder\.backbone\.", "image_encoder.trunk."),
    (r"^vision_encoder\.neck\.convs\.(\d+)\.(weight|bias)$", r"image_encoder.neck.convs.\1.conv.\2"),
    (r"^prompt_encoder\.", "sam_prompt_encoder."),
    (r"^mask_decoder\.", "sam_mask_decoder."),
    (r"\.patch_embed\.projection\.", ".patch_embed.proj."),
    (r"(\.blocks\.\d+)\.layer_norm([12])\.", r"\1.norm\2."),
    (r"(\.blocks\.\d+\.mlp)\.proj_in\.", r"\1.layers.0."),
    (r"(\.blocks\.\d+\.mlp)\.proj_out\.", r"\1.layers.1."),
    (r"\.mask_embed\.conv1\.", ".mask_downscaling.0."),
    (r"\.mask_embed\.layer_norm1\.", ".mask_downscaling.1."),
    (r"\.mask_embed\.conv2\.", ".mask_downscaling.3."),
    (r"\.mask_embed\.layer_norm2\.", ".mask_downscaling.4."),
    (r"\.mask_embed\.conv3\.", ".mask_downscaling.6."),
    (r"\.o_proj\.", ".out_proj."),
    (r"\.layer_norm([1-4])\.", r".norm\1."),
    (r"\.layer_norm_final_attn\.", ".norm_final_attn."),
    (r"(\.transformer\.layers\.\d+\.mlp)\.proj_in\.", r"\1.layers.0."),
    (r"(\.transformer\.layers\.\d+\.mlp)\.proj_out\.", r"\1.layers.1."),
    (r"\.upscale_conv1\.", ".output_upscaling.0."),
    (r"\.upscale_layer_norm\.", ".output_upscaling.1."),
    (r"\.upscale_conv2\.", ".output_upscaling.3."),
]
_HEAD = re.compile(r"^(sam_mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head))"
                   r"\.(proj_in|proj_out|layers\.(\d+))\.(weight|bias)$")


def _rename(key: str) -> str:
    for pattern, repl in _RULES:
        key = re.sub(pattern, repl, key)
    return key


def _renumber_heads(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MLP heads: proj_in -> layers.0, layers.i -> layers.(i+1), proj_out -> layers.(L-1), L = middle + 2."""
    middle: dict[str, set[int]] = {}
    for key in sd:
        m = _HEAD.match(key)
        if m and m.group(3) is not None:
            middle.setdefault(m.group(1), set()).add(int(m.group(3)))
    out = {}
    for key, value in sd.items():
        m = _HEAD.match(key)
        if not m:
            out[key] = value
            continue
        head, part, idx, kind = m.groups()
        n_layers = len(middle.get(head, ())) + 2
        new = 0 if part == "proj_in" else n_layers - 1 if part == "proj_out" else int(idx) + 1
        out[f"{head}.layers.{new}.{kind}"] = value
    return out


def from_transformers(sd: dict[str, torch.Tensor], where: str = "the weights") -> dict[str, torch.Tensor]:
    """A transformers `Sam2Model` state dict -> sam2's names (the table in the module docstring)."""
    sd = dict(sd)
    out: dict[str, torch.Tensor] = {}
    pe = sd.pop("shared_image_embedding.positional_embedding", None)
    prompt_pe = sd.pop("prompt_encoder.shared_embedding.positional_embedding", None)
    if pe is None:
        pe = prompt_pe
    elif prompt_pe is not None and not torch.equal(pe, prompt_pe):
        raise SodError(f"{where}: shared_image_embedding and prompt_encoder.shared_embedding differ; sam2 has one "
                       "positional encoding for both, so these weights cannot be converted")
    if pe is not None:
        out[_PE] = pe
    if "no_memory_embedding" in sd:
        out["no_mem_embed"] = sd.pop("no_memory_embedding")
    points = sd.pop("prompt_encoder.point_embed.weight", None)
    if points is not None:
        for i in range(points.shape[0]):
            out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = points[i:i + 1].clone()
    for key, value in sd.items():
        out[_rename(key)] = value
    return _renumber_heads(out)


def image_path_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a sam2 state dict that still images use (encoder, prompt encoder, decoder, no_mem_embed)."""
    return {k: v for k, v in sd.items() if k.startswith(IMAGE_PATH_PREFIXES)}


# ---- reading files

def _safetensors_header(path: Path) -> tuple[list[str], dict[str, str]] | None:
    """(tensor names, metadata) of a safetensors file, or None when it is not one."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 1 < n < min(path.stat().st_size, 1 << 28):
                return None
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    meta = header.pop("__metadata__", None) or {}
    return list(header), meta if isinstance(meta, dict) else {}


def is_safetensors(path: str | os.PathLike) -> bool:
    """True when `path` starts like a safetensors file (an 8-byte header length, then a JSON header)."""
    return _safetensors_header(Path(path)) is not None


def _is_export(path: Path, meta: dict[str, str]) -> bool:
    if str(meta.get("sam2sod", "")).startswith("sam2sod-export/"):
        return True
    if path.name != "model.safetensors":
        return False
    try:
        cfg = json.loads((path.parent / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and str(cfg.get("format", "")).startswith("sam2sod-export/")


def detect_format(path: str | os.PathLike) -> str:
    """'sam2' (official names, .pt or safetensors) | 'transformers' | 'sam2sod-export'; SodError otherwise."""
    p = Path(path)
    if not p.is_file():
        raise SodError(f"{p} not found" if not p.exists() else f"{p} is not a file")
    head = _safetensors_header(p)
    if head is None:
        from sam2sod.models.state_files import read_state_dict

        sd = read_state_dict(p)  # SodError when it is no state dict
        keys = list(sd)
    else:
        keys, meta = head
        if _is_export(p, meta):
            return "sam2sod-export"
    if any(k.startswith("vision_encoder.backbone.") for k in keys):
        return "transformers"
    if any(k.startswith("image_encoder.trunk.") for k in keys):
        return "sam2"
    raise SodError(f"{p} holds no SAM2 image encoder weights (neither image_encoder.trunk.* in sam2's names "
                   "nor vision_encoder.backbone.* in transformers' Sam2Model layout)")


def read_base_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict in sam2's names, 'sam2' | 'transformers') of a base SAM2 weights file, on CPU.

    An official `.pt` (`{"model": sd}`), a safetensors file in sam2 names, or transformers' layout (converted
    by `from_transformers`). A sam2sod export is refused with a one-line SodError saying how to load it.
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "sam2sod-export":
        raise SodError(f"{p} is {FORMAT_NAMES[fmt]}, not base SAM2 weights: load the folder with "
                       f"load_exported / `model.init_from: {p.parent}`")
    if _safetensors_header(p) is None:
        from sam2sod.models.state_files import read_state_dict

        return read_state_dict(p), fmt
    from safetensors.torch import load_file

    try:
        sd = load_file(p, device="cpu")
    except Exception as e:  # noqa: BLE001 - any reader failure is a damaged file for the user
        raise SodError(f"cannot read {p}: not a valid safetensors file ({' '.join(str(e).split())[:160]})") from None
    return (from_transformers(sd, str(p)) if fmt == "transformers" else sd), fmt
