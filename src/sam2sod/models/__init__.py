"""SAM2 models for salient object detection: building, fine-tuning methods, checkpoints."""

from sam2sod.models.freeze import count_params, freeze, frozen_norms_to_eval, param_group, unfreeze
from sam2sod.models.registry import METHODS, MethodSpec, create_model, method_options, trains_with_prompts
from sam2sod.models.sam2_backbone import (
    RANDOM_INIT_WARNING,
    SAM2_MEAN,
    SAM2_STD,
    SIZES,
    VERSIONS,
    RandomInitWarning,
    base_info,
    build_sam2_model,
    check_image_size,
    detect_variant,
    feature_sizes,
    load_checkpoint,
    model_is_pretrained,
    normalize_size,
    normalize_version,
)
from sam2sod.models.sod_sam2 import SAM2SOD, PromptBatchLike
from sam2sod.models.tuned_state import (
    load_tuned_state,
    state_for_checkpoint,
    tuned_keys,
)

__all__ = [
    "METHODS", "RANDOM_INIT_WARNING", "SAM2SOD", "SAM2_MEAN", "SAM2_STD", "SIZES", "VERSIONS",
    "MethodSpec", "PromptBatchLike", "RandomInitWarning", "base_info", "build_sam2_model",
    "check_image_size", "count_params", "create_model", "detect_variant",
    "feature_sizes", "freeze", "frozen_norms_to_eval", "load_checkpoint",
    "load_tuned_state", "method_options", "model_is_pretrained", "normalize_size", "normalize_version",
    "param_group", "state_for_checkpoint", "trains_with_prompts", "tuned_keys", "unfreeze",
]
