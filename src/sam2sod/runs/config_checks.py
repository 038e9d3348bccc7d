"""Range and choice checks of a `TrainConfig`'s values, run by `config.validate` before anything is built.

Every failure is a `SodError` naming the key, the value and what is allowed, e.g.
`config key optim.lr: -1.0 is out of range (must be a finite number > 0)`.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from sam2sod.errors import SodError

TrainConfig = Any  # a sam2sod.runs.config.TrainConfig (not imported: that module imports this one)

__all__ = ["check_method_options", "check_type", "check_values"]

VERSIONS = ("sam2", "sam2.1")
SIZES = ("tiny", "small", "base_plus", "large")
AMP = ("auto", "off", "bf16", "fp16")
LOSSES = ("sod", "structure")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICES = "auto, cpu, cuda, cuda:N or mps"

Rule = tuple[Callable[[Any], bool], str]  # (is the value allowed?, what is allowed, for the message)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def positive() -> Rule:
    return (lambda v: _is_num(v) and v > 0), "a finite number > 0"


def non_negative() -> Rule:
    return (lambda v: _is_num(v) and v >= 0), "a finite number >= 0"


def or_null(rule: Rule) -> Rule:
    ok, must = rule
    return (lambda v: v is None or ok(v)), f"{must}, or null"


def unit(lo_open: bool = False, hi_open: bool = False) -> Rule:
    def ok(v: Any) -> bool:
        return _is_num(v) and (v > 0 if lo_open else v >= 0) and (v < 1 if hi_open else v <= 1)

    return ok, f"a number in {'(' if lo_open else '['}0, 1{')' if hi_open else ']'}"


def int_at_least(lo: int, nullable: bool = False) -> Rule:
    def ok(v: Any) -> bool:
        return (nullable and v is None) or (_is_int(v) and v >= lo)

    return ok, f"an integer >= {lo}" + (", or null" if nullable else "")


def odd_int() -> Rule:
    return (lambda v: _is_int(v) and v >= 1 and v % 2 == 1), "an odd integer >= 1"


def check_type(value: Any, tp: Any, key: str) -> Any:
    """`value` checked against type hint `tp` (Union / list / dict / int / float / str / bool) for `key`;
    an int (or a YAML string like 1e-4) where a float is expected becomes a float."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return check_type(value, a, key)
            except SodError:
                pass
        raise SodError(f"config key {key}: {value!r} is not of type {tp}")
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise SodError(f"config key {key}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (object,)
        return [v if item_tp is object else check_type(v, item_tp, key) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise SodError(f"config key {key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise SodError(f"config key {key}: expected float, got {value!r}") from None
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise SodError(f"config key {key}: expected {tp.__name__}, got {value!r}")
    return value


def _check(key: str, value: Any, rule: Rule) -> None:
    ok, must = rule
    if not ok(value):
        raise SodError(f"config key {key}: {value!r} is out of range (must be {must})")


def _choice(key: str, value: Any, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise SodError(f"config key {key}: {value!r} is not a valid choice (choose one of: {', '.join(choices)})")


# Ranges of the numeric method options (model.args); their types come from the builders' signatures.
OPTION_RULES: dict[str, dict[str, Rule]] = {
    "adapter_cbam": {"adapter_ratio": positive(), "cbam_reduction": int_at_least(1), "cbam_kernel_size": odd_int()},
    "lora": {"rank": int_at_least(1), "alpha": positive(), "dropout": unit(hi_open=True)},
    "sam_adapter": {"scale_factor": int_at_least(1), "freq_ratio": unit(hi_open=True)},
    "sam2unet": {"adapter_dim": int_at_least(1), "rfb_dim": int_at_least(1)},
    "tuned_sam": {
        "tuned_blocks": ((lambda v: v == "all" or (_is_int(v) and v >= 0)), "'all' or an integer >= 0"),
        "tb_ratio": positive(), "msr_taps": int_at_least(1), "msr_dim": int_at_least(1), "fad_dim": int_at_least(2),
    },
}


def _option_types(builder: Callable[..., Any]) -> dict[str, Any]:
    """Keyword-only parameters of a builder -> their annotated type (from the default's type if unresolvable)."""
    out: dict[str, Any] = {}
    for p in inspect.signature(builder).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        tp: Any = p.annotation
        if isinstance(tp, str):
            try:
                tp = eval(tp, dict(getattr(builder, "__globals__", {})))
            except Exception:  # noqa: BLE001 - a name only imported for type checking
                tp = inspect.Parameter.empty
        if tp is inspect.Parameter.empty:
            tp = type(p.default) if p.default not in (None, inspect.Parameter.empty) else Any
        out[p.name] = tp
    return out


def check_method_options(method: str, args: dict[str, Any]) -> dict[str, Any]:
    """model.args of `method`: known names, the builder's types, the ranges of `OPTION_RULES`.

    Returns the options with their types normalised (an int where a float is expected becomes a float).
    """
    from sam2sod.models.baselines import BASELINES
    from sam2sod.models.registry import METHODS

    if "backbone_weights" in args:
        raise SodError("config key model.args.backbone_weights: give it as model.backbone_weights instead")
    video = {k: args[k] for k in VIDEO_OPTIONS if k in args}  # options of clip training, not of the builder
    args = {k: v for k, v in args.items() if k not in VIDEO_OPTIONS}
    builder = METHODS[method].builder if method in METHODS else BASELINES[method][0]
    types = {k: v for k, v in _option_types(builder).items() if k != "backbone_weights"}
    unknown = sorted(set(args) - set(types))
    if unknown:
        raise SodError(f"config key model.args: unknown option(s) for method {method!r}: {', '.join(unknown)} "
                       f"(accepted: {', '.join(types) or 'none'})")
    out = {}
    for name, value in args.items():
        key = f"model.args.{name}"
        tp = types[name]
        value = value if tp is Any else check_type(value, tp, key)
        if isinstance(value, float) and not math.isfinite(value):
            raise SodError(f"config key {key}: {value!r} is out of range (must be a finite number)")
        rule = OPTION_RULES.get(method, {}).get(name)
        if rule is not None:
            _check(key, value, rule)
        out[name] = value
    return {**out, **_check_video_options(method, video)}


# model.args keys read by video clip training (`sam2sod.train.video`), accepted for every SAM2 method.
VIDEO_OPTIONS = ("train_memory",)
TRAIN_MEMORY = ("false", "true", "lora")


FRAME_WISE_METHODS = ("sam2unet",)  # SAM2 methods that do not decode with SAM2's mask decoder (no memory path)


def check_clip_method(method: str) -> None:
    """SodError (one line) for a method without SAM2's memory path (classical baselines, sam2unet)."""
    from sam2sod.models.baselines import BASELINES

    if method in BASELINES or method in FRAME_WISE_METHODS:
        kind = ("is a classical baseline" if method in BASELINES
                else "decodes with its own U-Net, not SAM2's mask decoder")
        raise SodError(f"model.method {method!r} cannot train on video clips (data.video): it {kind}, without "
                       f"SAM2's memory path; train it on images (data.video: false) or pick a SAM2 method such "
                       f"as adapter_cbam")


def _check_video_options(method: str, video: dict[str, Any]) -> dict[str, Any]:
    """model.args.train_memory: false | true | lora (YAML booleans accepted), stored as that string."""
    if "train_memory" not in video:
        return {}
    value = video["train_memory"]
    key = ("true" if value else "false") if isinstance(value, bool) else str(value).strip().lower()
    if key not in TRAIN_MEMORY:
        raise SodError(f"config key model.args.train_memory: {value!r} is not a valid choice "
                       f"(choose one of: {', '.join(TRAIN_MEMORY)})")
    return {"train_memory": key}


def _check_model(cfg: TrainConfig) -> None:
    from sam2sod.models.registry import all_methods

    m = cfg.model
    _choice("model.method", m.method, sorted(all_methods()))
    _choice("model.version", m.version, VERSIONS)
    _choice("model.size", m.size, SIZES)
    _check("model.image_size", m.image_size,
           ((lambda v: _is_int(v) and v > 0 and v % 32 == 0), "a positive multiple of 32"))
    m.args = check_method_options(m.method, m.args)


def _check_data(cfg: TrainConfig) -> None:
    d, a = cfg.data, cfg.data.augment
    _check("data.train_count", d.train_count, int_at_least(1, nullable=True))
    _check("data.val_count", d.val_count, int_at_least(1, nullable=True))
    _check("data.val_fraction", d.val_fraction, unit(lo_open=True, hi_open=True))
    _check("data.workers", d.workers, int_at_least(0, nullable=True))
    if d.video not in (True, False, "auto"):
        raise SodError(f"config key data.video: {d.video!r} is not a valid choice (choose one of: true, false, auto)")
    _check("data.clip_len", d.clip_len, int_at_least(2))
    if d.val_sequences is not None and (not d.val_sequences or not all(isinstance(n, str) and n
                                                                       for n in d.val_sequences)):
        raise SodError(f"config key data.val_sequences: {d.val_sequences!r} must be a non-empty list of "
                       "sequence names, or null")
    for i, s in enumerate(d.multiscale or []):
        _check(f"data.multiscale[{i}]", s, ((lambda v: _is_int(v) and v > 0 and v % 32 == 0),
                                             "a positive multiple of 32"))
    for name in ("hflip", "vflip", "rotate_p", "crop_prob", "jitter_p"):
        _check(f"data.augment.{name}", getattr(a, name), unit())
    for name in ("rotate_deg", "brightness", "contrast", "saturation"):
        _check(f"data.augment.{name}", getattr(a, name), non_negative())
    _check("data.augment.scale_min", a.scale_min, positive())
    _check("data.augment.scale_max", a.scale_max, positive())
    _check("data.augment.scale_max", a.scale_max,
           ((lambda v: v >= a.scale_min), f"a number >= data.augment.scale_min ({a.scale_min})"))


def _check_prompts(cfg: TrainConfig) -> None:
    p = cfg.prompts
    for name in ("p_prompt_free", "p_points", "p_box", "p_mask"):
        _check(f"prompts.{name}", getattr(p, name), unit())
    _check("prompts.k_fg", p.k_fg, int_at_least(0))
    _check("prompts.k_bg", p.k_bg, int_at_least(0))
    _check("prompts.box_jitter", p.box_jitter, non_negative())
    _check("prompts.box_min_shift_px", p.box_min_shift_px, non_negative())
    _check("prompts.logit_scale", p.logit_scale, positive())
    k = p.mask_kernel
    _check("prompts.mask_kernel", k, ((lambda v: isinstance(v, list | tuple) and len(v) == 2
                                       and all(_is_int(x) and x >= 1 and x % 2 for x in v) and v[0] <= v[1]),
                                      "two odd integers [lo, hi] with 1 <= lo <= hi"))


def _check_loss(cfg: TrainConfig) -> None:
    loss = cfg.loss
    _choice("loss.name", loss.name, LOSSES)
    for name in ("bce", "dice", "ssim", "edge"):
        _check(f"loss.{name}", getattr(loss, name), non_negative())
    _check("loss.iou_head", loss.iou_head, or_null(non_negative()))
    if loss.name == "sod" and not (loss.bce > 0 or loss.dice > 0 or loss.ssim > 0):
        raise SodError(f"config keys loss.bce, loss.dice, loss.ssim: all are 0 (at least one must be > 0 for "
                       f"loss.name {loss.name!r}, or nothing trains the saliency map)")


def _check_optim(cfg: TrainConfig) -> None:
    o = cfg.optim
    for name in ("epochs", "batch_size", "accum_steps", "max_bad_steps"):
        _check(f"optim.{name}", getattr(o, name), int_at_least(1))
    _check("optim.lr", o.lr, positive())
    _check("optim.min_lr_ratio", o.min_lr_ratio, unit())
    _check("optim.weight_decay", o.weight_decay, non_negative())
    _check("optim.grad_clip", o.grad_clip, non_negative())
    _check("optim.warmup_steps", o.warmup_steps, int_at_least(0))
    _choice("optim.amp", o.amp, AMP)
    _check("optim.max_steps", o.max_steps, int_at_least(1, nullable=True))
    _check("optim.time_budget_min", o.time_budget_min, or_null(positive()))
    _check("optim.checkpoint_every_steps", o.checkpoint_every_steps, int_at_least(0))
    _check("optim.ema", o.ema, ((lambda v: _is_num(v) and (v == 0 or 0 < v < 1)), "0 (off) or a number in (0, 1)"))
    _check("optim.layer_decay", o.layer_decay, unit(lo_open=True))


def check_values(cfg: TrainConfig) -> None:
    """Every range / choice check; normalises `cfg.model.args` types in place."""
    _check_model(cfg)
    _check_data(cfg)
    _check_prompts(cfg)
    _check_loss(cfg)
    _check_optim(cfg)
    _check("seed", cfg.seed, ((lambda v: _is_int(v) and 0 <= v < 2**32), "an integer in [0, 2**32)"))
    if not isinstance(cfg.device, str) or not DEVICE_PATTERN.fullmatch(cfg.device):
        raise SodError(f"config key device: {cfg.device!r} is not a valid choice (choose one of: {DEVICES})")
    _check("val_batch_size", cfg.val_batch_size, int_at_least(1))
    _check("log_every", cfg.log_every, int_at_least(1))
    if cfg.data.video is True:
        check_clip_method(cfg.model.method)
    if not isinstance(cfg.stages, list) or not all(isinstance(s, dict) for s in cfg.stages):
        raise SodError(f"config key stages: {cfg.stages!r} must be a list of mappings, e.g. "
                       "[{name: decoder, set: {model.args.use_fad: false}}]")
