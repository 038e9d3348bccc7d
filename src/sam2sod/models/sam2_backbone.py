"""Build SAM2 / SAM2.1 models from the `sam2` package's own Hydra configs and load official checkpoints.

Facts this module relies on (checked against sam2 1.1.0):
- Configs live in the `sam2` package: `configs/sam2/sam2_hiera_{t,s,b+,l}.yaml` and
  `configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml`; importing `sam2` initialises Hydra.
- The input size is the Hydra override `++model.image_size=S`; S must be a multiple of 32
  (Hiera downsamples by 32). Feature maps then have S/4, S/8, S/16 pixels per side.
- Official checkpoints hold `{"model": state_dict}`; SAM2.1 adds `no_obj_embed_spatial` and
  `obj_ptr_tpos_proj.{weight,bias}`. The state dict does not depend on the image size.
- We build with `apply_postprocessing=False`: the mask decoder's "dynamic multimask via
  stability" fallback would make single-mask outputs differ between train and eval mode and
  swap in a mask token that SOD fine-tuning never trained.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sam2sod.data.transforms import SAM2_MEAN, SAM2_STD  # noqa: F401 - re-exported
from sam2sod.errors import SodError
from sam2sod.models.state_files import read_state_dict  # noqa: F401 - re-exported
from sam2sod.safe_load import WEIGHTS_CHECKS

logger = logging.getLogger(__name__)

VERSIONS = ("sam2", "sam2.1")
SIZES = ("tiny", "small", "base_plus", "large")
_SIZE_ALIASES = {
    "tiny": "tiny", "t": "tiny", "hiera_t": "tiny",
    "small": "small", "s": "small", "hiera_s": "small",
    "base_plus": "base_plus", "b+": "base_plus", "base+": "base_plus", "bplus": "base_plus",
    "base-plus": "base_plus", "hiera_b+": "base_plus",
    "large": "large", "l": "large", "hiera_l": "large",
}
_SIZE_SUFFIX = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
_VERSION_ALIASES = {"sam2": "sam2", "2": "sam2", "sam2.0": "sam2", "sam2.1": "sam2.1", "2.1": "sam2.1"}
# (patch-embed width, number of Hiera blocks) -> size, from the configs' `stages`.
_SIZE_SIGNATURES = {(96, 12): "tiny", (96, 16): "small", (112, 24): "base_plus", (144, 48): "large"}
# Keys that only SAM2.1 checkpoints have (proj_tpos_enc_in_obj_ptrs / no_obj_embed_spatial).
_SAM21_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")

RANDOM_INIT_WARNING = (
    "random init: no SAM2 weights loaded (checkpoint=None); results are NOT from a pretrained "
    "SAM2 and are only good for smoke tests"
)


class RandomInitWarning(UserWarning):
    """Emitted when a SAM2 model is built without pretrained weights."""


def normalize_version(version: str) -> str:
    """'sam2' | 'sam2.1' (aliases '2', '2.1'); SodError otherwise."""
    key = str(version).strip().lower()
    if key not in _VERSION_ALIASES:
        raise SodError(f"unknown SAM2 version {version!r}: choose one of {', '.join(VERSIONS)}")
    return _VERSION_ALIASES[key]


def normalize_size(size: str) -> str:
    """'tiny' | 'small' | 'base_plus' | 'large' (aliases t/s/b+/l); SodError otherwise."""
    key = str(size).strip().lower()
    if key not in _SIZE_ALIASES:
        raise SodError(f"unknown SAM2 size {size!r}: choose one of {', '.join(SIZES)} (or t, s, b+, l)")
    return _SIZE_ALIASES[key]


def config_name(version: str, size: str) -> str:
    """The sam2 package's Hydra config, e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml'."""
    version, size = normalize_version(version), normalize_size(size)
    return f"configs/{version}/{version}_hiera_{_SIZE_SUFFIX[size]}.yaml"


def check_image_size(image_size: Any) -> int:
    """Return `image_size` as int if it is a positive multiple of 32, else raise SodError."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0 or image_size % 32:
        raise SodError(
            f"image_size must be a positive multiple of 32 (SAM2's Hiera downsamples by 32), got {image_size!r}"
        )
    return image_size


def feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """Spatial sizes of the three feature maps the mask decoder uses: strides 4, 8, 16."""
    image_size = check_image_size(image_size)
    return [(image_size // s, image_size // s) for s in (4, 8, 16)]


def build_sam2_model(
    version: str = "sam2.1",
    size: str = "tiny",
    image_size: int = 1024,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    seed: int | None = 0,
) -> nn.Module:
    """Build a `SAM2Base` (eval mode) from sam2's own config; load an official checkpoint if given.

    Without a checkpoint the weights are random (seeded with `seed` without touching the global
    RNG; None = unseeded) and one RandomInitWarning is emitted. The returned
    model carries `model.sam2sod_base_info` (see `base_info`); `model_is_pretrained(model)`.
    """
    version, size = normalize_version(version), normalize_size(size)
    image_size = check_image_size(image_size)
    import sam2  # noqa: F401  (initialises Hydra's config search path)
    from sam2.build_sam import build_sam2

    overrides = [f"++model.image_size={image_size}"]
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = build_sam2(
            config_name(version, size), None, device="cpu", mode="eval",
            hydra_overrides_extra=overrides, apply_postprocessing=False,
        )
    model.sam2sod_base_info = {
        "version": version, "size": size, "image_size": image_size,
        "checkpoint": None, "sha256": None, "seed": seed, "pretrained": False,
    }
    if checkpoint is None:
        warnings.warn(RANDOM_INIT_WARNING, RandomInitWarning, stacklevel=2)  # the one notice (the CLI prints it
        # as one `warning:` line); not logged as well, so nobody sees it twice
    else:
        load_checkpoint(model, checkpoint)
    return model.to(device)


def base_info(model: nn.Module) -> dict[str, Any]:
    """Identity of the base weights: version, size, image_size, checkpoint, sha256, seed, pretrained."""
    info = getattr(model, "sam2sod_base_info", None)
    if info is None:
        raise SodError("this model was not built with sam2sod.models.build_sam2_model")
    return dict(info)


def model_is_pretrained(model: nn.Module) -> bool:
    """True when official (or user-provided) SAM2 weights were loaded, False for random init."""
    return bool(getattr(model, "sam2sod_base_info", {}).get("pretrained", False))


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def detect_variant(sd: dict[str, torch.Tensor]) -> tuple[str | None, str | None]:
    """Guess (version, size) of a SAM2 state dict; None where it cannot tell.

    Version: SAM2.1 has `no_obj_embed_spatial` / `obj_ptr_tpos_proj.*`. Size: the patch-embed
    width (96 / 112 / 144) and the number of Hiera blocks (12 / 16 / 24 / 48).
    """
    pe = sd.get("image_encoder.trunk.patch_embed.proj.weight")
    if pe is None:
        return None, None
    version = "sam2.1" if any(k in sd for k in _SAM21_KEYS) else "sam2"
    pat = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")
    idx = [int(m.group(1)) for k in sd if (m := pat.match(k))]
    n_blocks = max(idx) + 1 if idx else 0
    return version, _SIZE_SIGNATURES.get((int(pe.shape[0]), n_blocks))


def describe_variant(version: str | None, size: str | None) -> str:
    if version is None:
        return "not a SAM2 image model (no image_encoder.trunk.patch_embed weights)"
    return f"{version} hiera {size or 'of unknown size'}"


def state_dict_mismatch(
    expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], limit: int = 5
) -> str | None:
    """A readable summary of missing / unexpected / wrongly shaped keys, or None if they match."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k} {tuple(got[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label} key(s): {', '.join(items[:limit])}{more}")
    return "; ".join(parts) or None


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Strictly load an official SAM2 checkpoint into a `SAM2Base` built by `build_sam2_model`.

    Also reads SAM2 weights in transformers' `Sam2Model` safetensors layout (`sam2sod.hf_format`): every
    still-image key must be there; the video memory modules, which such files lack, keep their initialisation.

    `path` is a file: official names such as 'sam2.1_hiera_tiny' are resolved to their cached file before the
    model is built (`sam2sod.weights.resolve_checkpoint`; run configs and --base-checkpoint do that). On any
    key/shape mismatch raise SodError naming the keys and the variant the file looks like.
    """
    from sam2.modeling.sam2_base import SAM2Base

    if not isinstance(model, SAM2Base):
        raise TypeError("load_checkpoint loads official weights into a SAM2Base; for SAM2SOD pass "
                        "checkpoint=... to create_model / build_sam2_model")
    path = os.fspath(path)
    try:
        sha = file_sha256(path) if os.path.isfile(path) else None
    except OSError:
        sha = None  # read_state_dict says what is wrong with the file
    for check in WEIGHTS_CHECKS if sha else ():  # e.g. the download record of `sam2sod.weights`, these bytes
        check(Path(path), sha)
    from sam2sod.hf_format import image_path_keys, is_safetensors, read_base_state_dict

    # a .pt is read once; a safetensors file may be in transformers' Sam2Model layout (converted to sam2's names)
    sd, fmt = read_base_state_dict(path) if is_safetensors(path) else (read_state_dict(path), "sam2")
    expected = model.state_dict() if fmt == "sam2" else image_path_keys(model.state_dict())
    problem = state_dict_mismatch(expected, sd)
    if problem:
        info = getattr(model, "sam2sod_base_info", {})
        want = f"{info.get('version', '?')} hiera {info.get('size', '?')}"
        raise SodError(
            f"checkpoint {os.fspath(path)} does not fit the model {want}: {problem}. "
            f"The file looks like {describe_variant(*detect_variant(sd))}; "
            "build the model with the matching version and size."
        )
    model.load_state_dict(sd, strict=fmt == "sam2")  # transformers' files hold the still-image path only
    if hasattr(model, "sam2sod_base_info"):
        model.sam2sod_base_info.update(
            checkpoint=os.path.abspath(os.fspath(path)), sha256=sha or file_sha256(path), seed=None, pretrained=True
        )
        if fmt != "sam2":
            model.sam2sod_base_info["format"] = fmt
    logger.info("loaded SAM2 weights from %s%s", path,
                "" if fmt == "sam2" else " (transformers' layout; the video memory modules keep their random init)")
    return model
