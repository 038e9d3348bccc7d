"""Freezing helpers and parameter accounting."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

# Parameter groups by name; first match wins. SAM2SOD's tuning modules live inside the trunk.
_GROUPS: tuple[tuple[str, str], ...] = (
    (".adapters.", "adapters"),
    (".cbams.", "cbam"),
    (".lora_", "lora"),
    (".prompt_generator.", "prompt_generator"),
    (".tuned_blocks.", "tuned_blocks"),
    (".refiner.", "refiner"),
    ("fad.", "fad"),
    ("unet.", "unet_decoder"),
    ("image_encoder.", "image_encoder"),
    ("sam_prompt_encoder.", "prompt_encoder"),
    ("sam_mask_decoder.", "mask_decoder"),
    ("no_mem_embed", "no_mem_embed"),
    ("backbone.", "backbone"),  # classical baselines: ResNet-50 / VGG-16
    ("encoder.", "encoder"),  # U2-Net's own encoder
)


def _norm_types() -> tuple[type, ...]:
    types: list[type] = [nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm]
    try:
        from sam2.modeling.sam2_utils import LayerNorm2d

        types.append(LayerNorm2d)
    except ImportError:  # pragma: no cover - sam2 is a hard dependency of this package
        pass
    return tuple(types)


def freeze(module: nn.Module | Iterable[nn.Parameter], trainable: bool = False) -> None:
    """Set requires_grad=trainable on every parameter of `module` (or of an iterable of params)."""
    params = module.parameters() if isinstance(module, nn.Module) else module
    for p in params:
        p.requires_grad_(trainable)


def unfreeze(module: nn.Module | Iterable[nn.Parameter]) -> None:
    freeze(module, trainable=True)


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, _norm_types())


def frozen_norms_to_eval(model: nn.Module) -> list[str]:
    """Put norm layers whose parameters are all frozen into eval mode; return their names.

    Call after `model.train()` so frozen BatchNorm statistics are not updated (LayerNorm behaves
    the same in both modes, but the rule is applied uniformly).
    """
    names = []
    for name, m in model.named_modules():
        params = list(m.parameters(recurse=False))
        if is_norm(m) and params and not any(p.requires_grad for p in params):
            m.eval()
            names.append(name)
    return names


def param_group(name: str) -> str:
    """Group of a parameter name: adapters / cbam / lora / prompt_generator / tuned_blocks / refiner / fad /
    unet_decoder / image_encoder / prompt_encoder / mask_decoder / no_mem_embed; for the classical
    baselines backbone / encoder, and "decoder" for everything else (their decoders and heads)."""
    for pattern, group in _GROUPS:
        if pattern in name:
            return group
    return "decoder"


def count_params(model: nn.Module) -> dict[str, tuple[int, int]]:
    """{group: (total, trainable)} parameter counts, plus a "total" entry equal to their sum."""
    counts: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        c = counts.setdefault(param_group(name), [0, 0])
        c[0] += p.numel()
        c[1] += p.numel() if p.requires_grad else 0
    out = {g: (t, tr) for g, (t, tr) in counts.items()}
    out["total"] = (sum(t for t, _ in out.values()), sum(tr for _, tr in out.values()))
    return out


def trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]
