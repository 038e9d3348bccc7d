"""Training configuration: nested dataclasses, loaded from YAML with `--set a.b=value` overrides.

Unknown keys and wrongly typed values are errors that name the key, never silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sam2sod.errors import SodError
from sam2sod.runs.config_checks import check_type, check_values

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class ModelConfig:
    """Which network to build. `method` is a key of `sam2sod.models.METHODS`."""

    method: str = "adapter_cbam"
    version: str = "sam2.1"  # sam2 | sam2.1
    size: str = "tiny"  # tiny | small | base_plus | large
    image_size: int = 352  # multiple of 32
    # official SAM2 checkpoint: a path, or a name from `sam2sod weights list` (e.g. sam2.1_hiera_tiny, read from
    # the weights cache); None = random init (loud warning)
    checkpoint: str | None = None
    backbone_weights: str | None = None  # classical baselines: torchvision ImageNet ResNet-50 / VGG-16 file
    multimask: bool = False  # train on the best of SAM's 3 masks (min loss), infer with the highest predicted IoU
    # start from a finished model (fine-tuning): a run dir, best.pt/last.pt, or a `sam2sod export` folder
    init_from: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # method-specific options, e.g. {adapter_ratio: 0.25}


@dataclass
class AugmentCfg:
    """Training-time augmentation (evaluation only resizes and normalises)."""

    hflip: float = 0.5
    vflip: float = 0.0
    rotate_deg: float = 10.0
    rotate_p: float = 0.3
    scale_min: float = 0.75
    scale_max: float = 1.25
    crop_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    jitter_p: float = 0.8


@dataclass
class DataConfig:
    """Where the data is. `root` uses layout auto-detection; `images`/`masks` override it.

    Validation: `val_root` if given, else a fixed split by sorted file name: the first `train_count`
    names train, the next `val_count` validate (pick `best.pt`) and the rest form the held-out test
    split (`val_count: null` -> every name after the train part validates and there is no test split;
    `train_count: null` -> `val_fraction` of the names validate).
    Video data (`video`): the same rule counts whole sequences (sorted by name), or `val_sequences` names
    the validation sequences; the frames of one sequence never land in two splits.
    """

    root: str | None = None
    images: str | None = None
    masks: str | None = None
    val_root: str | None = None
    train_count: int | None = None
    val_count: int | None = None
    val_fraction: float = 0.1
    resize_mask: bool = False
    workers: int | None = None  # DataLoader processes; null = automatic (`engine.runtime.auto_workers`)
    multiscale: list[int] | None = None  # per-batch training sizes; null = the model's paper sizes if any
    augment: AugmentCfg = field(default_factory=AugmentCfg)
    # video training (docs/training.md "Fine-tuning on video clips"): true | false | auto (the root's layout)
    video: bool | str = "auto"
    clip_len: int = 8  # frames per training clip
    val_sequences: list[str] | None = None  # video: these sequences validate, the others train


@dataclass
class PromptSimConfig:
    """Prompts simulated from the GT during training only (evaluation is prompt-free by default).

    `enabled: null` follows the method's paper (`sam2sod methods`: only adapter_cbam, report 000, trains
    with simulated prompts); true / false override it. The rest are `sam2sod.data.prompts.PromptConfig`.
    """

    enabled: bool | None = None
    p_prompt_free: float = 0.5
    p_points: float = 0.5
    p_box: float = 0.5
    p_mask: float = 0.3
    k_fg: int = 1
    k_bg: int = 0
    box_jitter: float = 0.1
    box_min_shift_px: float = 2.0
    mask_kernel: list[int] = field(default_factory=lambda: [3, 7])  # odd erosion/dilation sizes, low-res px
    logit_scale: float = 10.0  # mask prompts are +-logit_scale logits


@dataclass
class LossConfig:
    """Report-000 objective: BCE + Dice + SSIM (`name: sod`), or `structure` (weighted BCE + weighted IoU).

    `edge`: weight of the Dice loss on the edge head's output (adapter_cbam `model.args.edge: true`).
    """

    name: str = "sod"
    bce: float = 1.0
    dice: float = 1.0
    ssim: float = 1.0
    iou_head: float | None = None  # MSE of the IoU head vs each mask's real IoU; null = 1 with multimask, else 0
    edge: float = 1.0


@dataclass
class OptimConfig:
    """AdamW with warmup + cosine decay, gradient accumulation and clipping."""

    epochs: int = 10
    batch_size: int = 4
    accum_steps: int = 1
    lr: float = 1e-4
    min_lr_ratio: float = 0.01
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0
    amp: str = "auto"  # auto | off | bf16 | fp16
    max_steps: int | None = None  # stop after this many optimizer steps (smoke tests, budgets)
    max_bad_steps: int = 5  # consecutive non-finite losses before training stops
    time_budget_min: float | None = None  # stop after this much training time; LR follows the budget used
    checkpoint_every_steps: int = 500  # also write last.pt every N optimizer steps (0 = only at epoch ends)
    grad_checkpoint: bool = False  # recompute Hiera block activations in backward (less memory, longer step)
    ema: float = 0.0  # EMA decay of the trainable weights, used for validation and saved (0 = off)
    layer_decay: float = 1.0  # layer-wise LR decay over the Hiera blocks (1.0 = off)


@dataclass
class TrainConfig:
    """Everything a run needs; saved resolved as `config.yaml` in the run directory."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    prompts: PromptSimConfig = field(default_factory=PromptSimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    val_batch_size: int = 8
    log_every: int = 10
    # Several stages in one run, each a sub-run RUN/<name>/ with its own best/last, started from the previous
    # stage's best.pt: [{name: decoder, set: {model.args.use_fad: false, ...}}, {name: side, set: {...}}]
    stages: list[dict[str, Any]] = field(default_factory=list)


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise SodError(f"config section {prefix or '<root>'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SodError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                       f"known in {prefix or 'top level'}: {', '.join(sorted(names))}")
    kwargs = {}
    for k, v in data.items():
        tp = hints[k]
        if dataclasses.is_dataclass(tp):
            kwargs[k] = from_dict(tp, v or {}, f"{prefix}{k}.")
        else:
            kwargs[k] = check_type(v, tp, prefix + k)
    return cls(**kwargs)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (so 1e-3, true, null work)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise SodError(f"--set {assignment!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
    value = yaml.safe_load(raw) if raw else None
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SodError(f"--set {assignment!r}: {p} is not a section")
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> None:
    """`apply_override` for each `--set`; a value that is not valid YAML is one SodError line."""
    for o in overrides or []:
        try:
            apply_override(data, o)
        except yaml.YAMLError as e:
            raise SodError(f"--set {o!r}: the value is not valid YAML: {' '.join(str(e).split())}") from None


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or the name of a bundled config (`ecssd700_cpu` -> configs/ecssd700_cpu.yaml)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        hint = f" (a run's config is {p / 'config.yaml'})" if (p / "config.yaml").is_file() else ""
        raise SodError(f"config {path} is a folder, not a config file: give a YAML file{hint}")
    bundled = CONFIG_DIR / (p.name if p.suffix else f"{p.name}.yaml")
    if bundled.is_file():
        return bundled
    raise SodError(f"config file {path} not found (bundled configs: "
                   f"{', '.join(sorted(q.stem for q in CONFIG_DIR.glob('*.yaml')))})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, line, seen[key])
                seen[key] = line
            except TypeError:  # an unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line} (first given at line {first})")


def _read_yaml(p: Path) -> dict[str, Any]:
    """The top-level mapping of a config file; SodError (one line) for unreadable, non-UTF-8 or bad YAML."""
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SodError(f"config file {p} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                       "save it as UTF-8") from None
    except OSError as e:
        raise SodError(f"cannot read config file {p}: {e.strerror or e}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as e:
        raise SodError(f"config file {p}: {e}") from None
    except yaml.YAMLError as e:
        raise SodError(f"config file {p} is not valid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        raise SodError(f"config file {p} is empty (no settings in it): add the sections to change (model:, data:, "
                       f"optim:, ...), or leave out --config to train with the built-in defaults")
    if not isinstance(data, dict):
        raise SodError(f"config file {p}: the top level must be a mapping of sections (model:, data:, optim:, "
                       f"...), got a {type(data).__name__}")
    return data


def config_from_data(data: dict[str, Any], overrides: list[str] | None = None, *,
                     resolve: bool = True) -> TrainConfig:
    """THE way a `TrainConfig` is made, for a new run, a resumed run, each stage of a recipe and `--set`.

    `data`: the nested settings (a YAML file's mapping, a run's saved config, a stage's merged settings);
    `overrides`: `--set KEY=VALUE` strings. Empty sections are allowed, every key and type is checked
    (`from_dict`), every value validated; `resolve` makes paths absolute (`resolve_paths`). Any problem is one
    SodError line naming the key or the `--set`.
    """
    data = copy.deepcopy(data)
    for name in ("model", "data", "prompts", "loss", "optim"):  # `optim:` with nothing under it
        if name in data and data[name] is None:
            data[name] = {}
    apply_overrides(data, overrides)
    cfg = from_dict(TrainConfig, data)
    validate(cfg)
    return resolve_paths(cfg) if resolve else cfg


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings mapping of a config file (a bundled name works too); SodError (one line) if unreadable."""
    return _read_yaml(resolve_config_path(path))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                check_paths: bool = False) -> TrainConfig:
    """Read a YAML config (or defaults when `path` is None), apply `--set` overrides, validate, make paths absolute.

    Relative paths are taken from the current directory (`resolve_paths`). `check_paths`: also fail when a
    data folder does not exist (`check_data_paths`), e.g. for `train`, before any run folder is made.
    """
    p = None if path is None else resolve_config_path(path)
    cfg = config_from_data(_read_yaml(p) if p is not None else {}, overrides, resolve=False)
    resolved = resolve_paths(cfg)
    if check_paths:
        bundled = p is not None and p.resolve().parent == CONFIG_DIR
        check_data_paths(resolved, bundled_config=p if bundled else None, original=cfg)
    return resolved


def validate(cfg: TrainConfig) -> None:
    """Every value's range / choice and the cross-field checks, with messages naming the key.

    Runs before any model or run folder is made; normalises the types of `cfg.model.args` in place.
    """
    check_values(cfg)


_PATH_SUFFIXES = (".pt", ".pth", ".safetensors")


def _absolute(value: str | None, base: Path) -> str | None:
    if value is None or value == "":
        return value
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else base / p)


def _is_path(value: str | None) -> bool:
    return value is not None and (os.sep in value or "/" in value or value.endswith(_PATH_SUFFIXES))


def resolve_paths(cfg: TrainConfig, base: Path | None = None) -> TrainConfig:
    """A copy of `cfg` whose data and weight paths are absolute (relative ones are taken from `base`,
    default the current directory), so a run's saved config works from any directory.

    `data.images` / `data.masks` relative to a `data.root` stay relative to it (as `find_pairs` reads them);
    `model.checkpoint` only when it looks like a path (has a separator or a .pt/.pth/.safetensors suffix).
    """
    base = Path.cwd() if base is None else Path(base)
    d, m = cfg.data, cfg.model
    root = _absolute(d.root, base)
    under = Path(root) if root else base
    data = dataclasses.replace(d, root=root, images=_absolute(d.images, under), masks=_absolute(d.masks, under),
                               val_root=_absolute(d.val_root, base))
    model = dataclasses.replace(
        m, checkpoint=_absolute(m.checkpoint, base) if _is_path(m.checkpoint) else m.checkpoint,
        backbone_weights=_absolute(m.backbone_weights, base),
        init_from=m.init_from if str(m.init_from or "").startswith("hf://") else _absolute(m.init_from, base))
    return dataclasses.replace(cfg, data=data, model=model)


def check_data_paths(cfg: TrainConfig, bundled_config: Path | None = None, original: TrainConfig | None = None) -> None:
    """SodError when a data folder of `cfg` (already absolute) does not exist.

    `bundled_config`: the bundled config it came from; when the missing path was relative there (`original`),
    the message says how to point it at the dataset.
    """
    d = cfg.data
    orig = original.data if original is not None else d
    for key in ("root", "images", "masks", "val_root"):
        value = getattr(d, key)
        if value is None or Path(value).is_dir():
            continue
        what = "is not a folder" if Path(value).exists() else "does not exist"
        msg = f"config key data.{key}: {value} {what}"
        given = getattr(orig, key)
        if bundled_config is not None and given is not None and not Path(given).expanduser().is_absolute():
            msg += (f" (the bundled config {bundled_config.stem} gives the relative path {given}, taken from the "
                    f"current directory {Path.cwd()}; run from the directory it expects or point it at your copy "
                    f"with --set data.{key}=/path/to/dataset)")
        raise SodError(msg)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_inputs(cfg: TrainConfig) -> list[Path]:
    """The data folders a config reads (protected from being written)."""
    data = cfg.data
    root = Path(data.root) if getattr(data, "root", None) else None
    found = [root] if root else []
    for key in ("images", "masks", "val_root", "test_root"):
        value = getattr(data, key, None)
        if value:
            p = Path(value)
            found.append(p if p.is_absolute() or root is None or key.endswith("root") else root / p)
    return found
