"""SAM2's memory half (memory attention, memory encoder, object pointers) for a tuned `SAM2SOD`.

`SAM2SOD` keeps only the still-image part of SAM2. `build_memory(model)` rebuilds the base `SAM2Base` the
model came from (the official checkpoint recorded in `model.base_info`, or the seeded random init) and keeps
its memory modules, under their official names (so a state dict of this module is a subset of an official
checkpoint):

    memory_attention, memory_encoder, obj_ptr_proj, obj_ptr_tpos_proj, mask_downsample,
    maskmem_tpos_enc (num_maskmem,1,1,mem_dim), no_mem_pos_enc (1,1,C), no_obj_ptr (1,C),
    no_obj_embed_spatial (1,mem_dim) (SAM2.1 only)

plus the base config's memory settings (num_maskmem, sigmoid scale / bias for the memory encoder, object
pointer options, multimask-for-tracking...). `no_mem_embed` stays the tuned model's own.

`train_memory`: "false" freezes every memory module (and keeps it in eval mode, so memory attention's dropout
is off even while the model trains), "true" trains them all, "lora" adds LoRA factors (`LoRALinear`, B = 0:
starts exactly at the base) to the q/k/v/out projections of every memory-attention layer's self- and
cross-attention and trains only those.

`SamView` lets the memory path run sam2's own `SAM2Base` methods (`_prepare_memory_conditioned_features`,
`_forward_sam_heads`, `_use_mask_as_output`, `_encode_new_memory`) on the tuned image modules + these
memory modules, so tracking is SAM2's tracking step, not a re-implementation of it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models.peft.lora import LoRALinear
from sam2sod.models.sam2_backbone import RandomInitWarning, build_sam2_model
from sam2sod.models.sod_sam2 import SAM2SOD

TRAIN_MEMORY = ("false", "true", "lora")
MEMORY_FORMAT = "sam2sod-memory/1"
_MODULES = ("memory_attention", "memory_encoder", "obj_ptr_proj", "obj_ptr_tpos_proj", "mask_downsample")
_PARAMS = ("maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial")
# SAM2Base settings read by the borrowed methods (copied as plain attributes).
_SETTINGS = (
    "num_maskmem", "hidden_dim", "mem_dim", "backbone_stride", "sam_prompt_embed_dim",
    "sigmoid_scale_for_mem_enc", "sigmoid_bias_for_mem_enc", "binarize_mask_from_pts_for_mem_enc",
    "non_overlap_masks_for_mem_enc", "memory_temporal_stride_for_eval", "max_cond_frames_in_attn",
    "use_obj_ptrs_in_encoder", "max_obj_ptrs_in_encoder", "add_tpos_enc_to_obj_ptrs", "proj_tpos_enc_in_obj_ptrs",
    "use_signed_tpos_enc_to_obj_ptrs", "only_obj_ptrs_in_the_past_for_eval", "pred_obj_scores",
    "fixed_no_obj_ptr", "soft_no_obj_ptr", "use_mask_input_as_output_without_sam", "multimask_output_in_sam",
    "multimask_output_for_tracking", "multimask_min_pt_num", "multimask_max_pt_num",
    "use_multimask_token_for_obj_ptr", "directly_add_no_mem_embed",
)
_LORA_TARGETS = ("self_attn", "cross_attn_image")
_LORA_LINEARS = ("q_proj", "k_proj", "v_proj", "out_proj")


def normalize_train_memory(value: Any) -> str:
    """false|true|lora (booleans and 'yes'/'no' accepted); SodError naming model.args.train_memory otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    key = str(value).strip().lower()
    key = {"yes": "true", "no": "false", "on": "true", "off": "false", "1": "true", "0": "false"}.get(key, key)
    if key not in TRAIN_MEMORY:
        raise SodError(f"model.args.train_memory must be one of {', '.join(TRAIN_MEMORY)}, got {value!r}")
    return key


def check_supports_memory(model: nn.Module) -> None:
    """SodError unless `model` is a SAM2SOD whose prediction is SAM2's mask decoder (memory can drive it).

    Classical baselines and sam2unet (its own U-Net decoder) have no such path: they run frame-wise.
    """
    method = getattr(model, "method", None)
    if not isinstance(model, SAM2SOD) or type(model).forward is not SAM2SOD.forward:
        raise SodError(f"method {method!r} does not decode with SAM2's mask decoder, so SAM2's memory cannot "
                       "propagate it: it runs frame-wise (keyframe_every 1)")


class SAM2Memory(nn.Module):
    """The memory modules and settings of a base SAM2Base (see the module docstring)."""

    def __init__(self, sam: nn.Module, image_size: int, train_memory: str = "false",
                 lora_rank: int = 4, lora_alpha: float = 4.0) -> None:
        super().__init__()
        for name in _MODULES:
            setattr(self, name, getattr(sam, name, None))
        for name in _PARAMS:
            setattr(self, name, getattr(sam, name, None))
        for name in _SETTINGS:
            setattr(self, name, getattr(sam, name))
        self.image_size = int(image_size)
        self.sam_image_embedding_size = self.image_size // self.backbone_stride
        self.train_memory = normalize_train_memory(train_memory)
        self.lora_rank, self.lora_alpha = int(lora_rank), float(lora_alpha)
        self.requires_grad_(self.train_memory == "true")
        if self.train_memory == "lora":
            self._inject_lora()

    def _inject_lora(self) -> None:
        if self.lora_rank < 1 or self.lora_alpha <= 0:
            raise SodError(f"memory LoRA needs lora_rank >= 1 and lora_alpha > 0 "
                           f"(got {self.lora_rank}, {self.lora_alpha})")
        for layer in self.memory_attention.layers:
            for target in _LORA_TARGETS:
                attn = getattr(layer, target)
                for name in _LORA_LINEARS:
                    lora = LoRALinear(getattr(attn, name), self.lora_rank, self.lora_alpha)
                    lora.lora_A.requires_grad_(True)
                    lora.lora_B.requires_grad_(True)
                    setattr(attn, name, lora)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True) -> SAM2Memory:
        """Like nn.Module.train; a fully frozen memory (train_memory false) always stays in eval mode."""
        return super().train(mode and self.trainable)

    def tracking_multimask(self) -> bool:
        """Whether SAM2's config decodes tracked (prompt-free, non-initial) frames with 3 masks."""
        return bool(self.multimask_output_in_sam and self.multimask_output_for_tracking
                    and self.multimask_min_pt_num <= 0 <= self.multimask_max_pt_num)

    def extra_repr(self) -> str:
        return f"train_memory={self.train_memory}, num_maskmem={self.num_maskmem}, image_size={self.image_size}"


def _base_sam(model: SAM2SOD, checkpoint: str | os.PathLike | None, device: torch.device) -> nn.Module:
    """Rebuild the model's base SAM2Base (same config, same weights); SodError if that is impossible."""
    info = model.base_info
    if info.get("version") not in ("sam2", "sam2.1"):
        raise SodError(f"the model's base ({info.get('version')}) is not SAM2: it has no memory modules")
    if info.get("pretrained"):
        path = checkpoint or info.get("checkpoint")
        if path is None or not os.path.exists(os.fspath(path)):
            raise SodError(f"the memory modules come from the base SAM2 checkpoint {path}, which does not exist; "
                           "pass the base checkpoint (model.checkpoint)")
        sam = build_sam2_model(info["version"], info["size"], model.image_size, path, device=device, seed=None)
        want, got = info.get("sha256"), sam.sam2sod_base_info.get("sha256")
        if want is not None and want != got:
            raise SodError(f"base checkpoint {path} (sha256 {got}) is not the one the model was built from "
                           f"(sha256 {want})")
        return sam
    if checkpoint is not None:
        raise SodError("the model has random-init base weights: its memory modules come from the same seed, "
                       "not from a checkpoint")
    if info.get("seed") is None:
        raise SodError("the model's random-init base was not seeded: its memory modules cannot be rebuilt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)  # the model itself already warned
        return build_sam2_model(info["version"], info["size"], model.image_size, None, device=device,
                                seed=info["seed"])


def build_memory(model: SAM2SOD, *, train_memory: Any = "false", lora_rank: int = 4, lora_alpha: float = 4.0,
                 checkpoint: str | os.PathLike | None = None) -> SAM2Memory:
    """SAM2's memory modules for `model`, from the base weights recorded in `model.base_info`.

    `checkpoint` overrides the recorded base checkpoint path (official weights only). Returned on the model's
    device, in eval mode; `train_memory` (false|true|lora) sets which memory parameters train.
    """
    check_supports_memory(model)
    train_memory = normalize_train_memory(train_memory)
    sam = _base_sam(model, checkpoint, model.device)
    memory = SAM2Memory(sam, model.image_size, train_memory, lora_rank, lora_alpha)
    del sam
    return memory.to(model.device).eval()


def memory_state(memory: SAM2Memory) -> dict[str, Any]:
    """What a run checkpoint needs to restore `memory`: its options and its trainable tensors (empty if frozen)."""
    keep = {n for n, p in memory.named_parameters() if p.requires_grad}
    sd = {k: v.detach().cpu().clone() for k, v in memory.state_dict().items() if k in keep}
    return {"format": MEMORY_FORMAT, "train_memory": memory.train_memory, "lora_rank": memory.lora_rank,
            "lora_alpha": memory.lora_alpha, "state_dict": sd}


def load_memory_state(model: SAM2SOD, state: dict[str, Any], *,
                      checkpoint: str | os.PathLike | None = None) -> SAM2Memory:
    """Rebuild the memory of `model` (`build_memory`) and load a `memory_state`; SodError if it does not fit."""
    if not isinstance(state, dict) or state.get("format") != MEMORY_FORMAT:
        raise SodError(f"not a sam2sod memory state (expected format {MEMORY_FORMAT!r})")
    memory = build_memory(model, train_memory=state["train_memory"], lora_rank=state["lora_rank"],
                          lora_alpha=state["lora_alpha"], checkpoint=checkpoint)
    want = set(memory_state(memory)["state_dict"])
    got = set(state["state_dict"])
    if want != got:
        raise SodError(f"memory state does not fit: {len(want - got)} missing, {len(got - want)} unexpected key(s)")
    memory.load_state_dict(state["state_dict"], strict=False)
    return memory


def _borrow(name: str) -> Any:
    from sam2.modeling.sam2_base import SAM2Base

    return getattr(SAM2Base, name)


class SamView:
    """A duck-typed `SAM2Base` for sam2's own methods: the tuned model's image modules, `memory`'s rest.

    `view._prepare_memory_conditioned_features(...)` etc. are sam2 1.1.0's functions, called with this
    object as `self`. `training` follows `memory.training`.
    """

    _IMAGE_PARTS = ("image_encoder", "sam_prompt_encoder", "sam_mask_decoder", "no_mem_embed")
    _METHODS = ("_prepare_memory_conditioned_features", "_forward_sam_heads", "_use_mask_as_output",
                "_encode_new_memory", "_apply_non_overlapping_constraints")

    def __init__(self, model: SAM2SOD, memory: SAM2Memory) -> None:
        if model.image_size != memory.image_size:
            raise SodError(f"memory was built for image_size {memory.image_size}, the model has {model.image_size}")
        self._model, self._memory = model, memory
        for name in self._METHODS:
            setattr(self, name, _borrow(name).__get__(self))

    @property
    def training(self) -> bool:
        return self._memory.training

    @property
    def image_size(self) -> int:
        return self._model.image_size

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._IMAGE_PARTS:
            return getattr(self._model, name)
        return getattr(self._memory, name)
