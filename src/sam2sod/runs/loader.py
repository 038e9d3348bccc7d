"""`load_model(PATH)`: the one way to open a trained model, for every command and API that takes one.

PATH may be
  * a run folder (its ``best.pt``, else ``last.pt``), or a run checkpoint file (``best.pt`` / ``last.pt``);
  * a `sam2sod export` folder (``config.json`` + ``model.safetensors``), or one of those two files.

  * an official SAM2 name from `sam2sod weights list` (e.g. ``sam2.1_hiera_tiny``, read from the weights
    cache) or an official checkpoint file: zero-shot SAM2 (`sam2sod.models.zero_shot`), prompt-free at 1024 px
    unless `zero_shot` (`sam2sod.runs.zero_shot_options`) says otherwise; with `zero_shot`, any SAM2 weights
    file (sam2's or transformers' layout) opens this way.

Other kinds (an ``hf://user/repo[@revision]`` repository: "hub") are found by functions registered in `FINDERS`
(`sam2sod.export.hub_open` downloads the export folder and reads it as one) or built by those in `OPENERS`.

Opening is two steps so that a command can check its model before it creates an output folder:
`open_source` finds and reads the file (the run checkpoint, or the export's config.json) and checks that
the base weights the run needs can be found; `ModelSource.build` builds the model. `load_model` does both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sam2sod.errors import SodError
from sam2sod.runs.config import DataConfig, TrainConfig, from_dict
from sam2sod.runs.exported import CONFIG_FILE, WEIGHTS_FILE, is_export, load_exported, read_export_config
from sam2sod.runs.zero_shot_options import ZeroShotOptions, as_zero_shot

__all__ = ["FINDERS", "HUB_PREFIX", "OPENERS", "RANDOM_INIT", "RUN_FILES", "LoadedModel", "ModelSource", "as_hub_ref",
           "export_source", "load_model", "open_source"]

RUN_FILES = ("best.pt", "last.pt")
RANDOM_INIT = "RANDOM INIT"
HUB_PREFIX = "hf://"
_BARE_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+(@[^\s/]+)?$")  # user/repo[@rev]


@dataclass
class LoadedModel:
    """A model ready for inference and what callers need to use and label it.

    model: eval mode, on `device`. kind: "run" | "export" (| "official" | "hub"). path: the file or folder
    used (best.pt or last.pt for a run folder). label: "RANDOM INIT" for a model without pretrained weights,
    else "". config: the run's `TrainConfig` (None for an export: see `export_config`); data: the data
    config of its training (split rule, training root), when known.
    """

    model: torch.nn.Module
    kind: str
    path: Path
    method: str
    image_size: int
    multimask: bool
    pretrained: bool
    device: torch.device
    config: TrainConfig | None = None
    data: DataConfig | None = None
    checkpoint: dict[str, Any] | None = None
    export_config: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return "" if self.pretrained else RANDOM_INIT

    @property
    def memory_state(self) -> dict[str, Any] | None:
        """SAM2 memory trained on video clips (checkpoint key ``memory``, `sam2sod.models.memory.memory_state`;
        rebuild it with `load_memory_state(model, state)`); None for a model trained on images only."""
        return (self.checkpoint or {}).get("memory")


@dataclass
class ModelSource:
    """A model found and read, not built yet (see `open_source`)."""

    kind: str
    path: Path
    method: str
    image_size: int
    multimask: bool
    pretrained: bool
    config: TrainConfig | None = None
    data: DataConfig | None = None
    checkpoint: dict[str, Any] | None = None
    export_config: dict[str, Any] | None = None
    base_checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # for the openers of other kinds

    @property
    def label(self) -> str:
        return "" if self.pretrained else RANDOM_INIT

    @property
    def step(self) -> int | None:
        """The training step of a run checkpoint (None for other kinds)."""
        return None if self.checkpoint is None else self.checkpoint.get("step")

    def build(self, device: str | torch.device = "cpu") -> LoadedModel:
        """The model on `device` ("auto" | "cpu" | "cuda[:N]" | "mps" or a torch.device), in eval mode."""
        from sam2sod.runs.runtime import select_device

        dev = select_device(device) if isinstance(device, str) else torch.device(device)
        if self.kind == "run":
            from sam2sod.runs.checkpoints import build_model_from_checkpoint

            model = build_model_from_checkpoint(self.checkpoint, dev, self.base_checkpoint)
        elif self.kind == "export":
            model = load_exported(self.path, device=dev)
        elif self.kind in OPENERS:
            return OPENERS[self.kind](self, dev)
        elif self.kind == "onnx":
            raise SodError(f"{self.path} is an ONNX export: run it with --engine onnxruntime")
        else:
            raise SodError(f"{self.path}: no opener for {self.kind} models in this install")
        return LoadedModel(model.eval(), self.kind, self.path, self.method, self.image_size, self.multimask,
                           self.pretrained, dev, self.config, self.data, self.checkpoint, self.export_config)


ZERO_SHOT_SIZE = ZeroShotOptions().image_size  # SAM2's own input size


def _official(text: str) -> bool:
    """An official name (not a file of that name), or a file named like an official checkpoint."""
    from sam2sod.weights import OFFICIAL, entry_for_file

    return (text in OFFICIAL and not Path(text).exists()) or (Path(text).is_file() and entry_for_file(text) is not None)


def _official_source(text: str, opts: ZeroShotOptions | None) -> ModelSource:
    from sam2sod.weights import resolve_checkpoint

    opts = opts or ZeroShotOptions()
    path = Path(resolve_checkpoint(text))  # a name: the cached file (SodError with the download command if absent)
    return ModelSource("official", path, opts.label, opts.image_size, False, True,
                       extra={"name": text, "mode": opts.mode, "amg": dict(opts.amg)})


def _weights_file(text: str) -> bool:
    """A file of base SAM2 weights (sam2's or transformers' layout), not a run checkpoint or an export."""
    from sam2sod.hf_format import detect_format

    if not Path(text).is_file() or Path(text).name in RUN_FILES:
        return False
    try:
        return detect_format(text) in ("sam2", "transformers")
    except SodError:
        return False


def _open_official(source: ModelSource, device: torch.device) -> LoadedModel:
    from sam2sod.models.zero_shot import build_zero_shot

    mode = source.extra.get("mode", "prompt-free")
    model = build_zero_shot(source.path, mode, image_size=source.image_size, device=device,
                            amg=source.extra.get("amg") or None)
    return LoadedModel(model.eval(), "official", source.path, source.method, source.image_size, False, True, device)


#: Openers of the kinds beyond run and export folders: kind -> fn(source, device) -> LoadedModel. `open_source`
#: reports "hub" for an ``hf://`` path (`ModelSource.extra["name"]`); the module that reads hub repositories
#: registers its opener here.
OPENERS: dict[str, Callable[[ModelSource, torch.device], LoadedModel]] = {"official": _open_official}
#: Finders of the kinds `open_source` cannot read itself: kind -> fn(path text, base_checkpoint) -> ModelSource
#: (e.g. "hub": download the ``hf://`` repository and read it as an export folder).
FINDERS: dict[str, Callable[[str, str | None], ModelSource]] = {}


def _run_file(p: Path) -> Path:
    """`p` itself: a run folder with best.pt or last.pt (`read_checkpoint` picks and says which) or a file."""
    if p.is_dir():
        if any((p / name).is_file() for name in RUN_FILES):
            return p
        raise SodError(f"{p} holds no model: a run folder has best.pt or last.pt, an export folder "
                       f"{CONFIG_FILE} + {WEIGHTS_FILE}")
    if not p.exists():
        raise SodError(f"model {p} not found (give a run folder, its best.pt / last.pt, or an export folder)")
    return p


def _check_base(source: ModelSource) -> None:
    """SodError (before anything is written) when the base weights a run's tuned state needs are missing."""
    state = (source.checkpoint or {}).get("model") or {}
    base = state.get("base") or {}
    if state.get("full_state") or not base.get("pretrained"):
        return  # every weight is in the state, or rebuilt from the recorded seed
    wanted = source.base_checkpoint or (source.config.model.checkpoint if source.config else None)
    if not wanted:
        return
    from sam2sod.weights import resolve_checkpoint

    path = resolve_checkpoint(wanted)
    if not Path(path).is_file():
        raise SodError(f"the base SAM2 weights of {source.path} are not at {path}: pass --base-checkpoint FILE "
                       f"(base_checkpoint=...) with the same file (sha256 {str(base.get('sha256'))[:16]}...)")


def open_source(path: str | os.PathLike, base_checkpoint: str | None = None,
                zero_shot: ZeroShotOptions | str | None = None) -> ModelSource:
    """Find and read the model `path` names (see the module docstring), without building it.

    `zero_shot`: how an untrained SAM2 makes its map (a mode name or `ZeroShotOptions`); only for official
    names and SAM2 weights files. SodError (one line) when it is missing, of an unknown kind, unreadable, when
    its base weights are missing, or when `zero_shot` is given for a trained model; nothing is written.
    """
    text = os.fspath(path)
    opts = as_zero_shot(zero_shot)
    if text.startswith(HUB_PREFIX):
        _no_zero_shot(opts, text, "a sam2sod export on the Hugging Face hub (a trained model)")
        return _other("hub", text, base_checkpoint)
    if _official(text) or (opts is not None and _weights_file(text)):
        return _official_source(text, opts)
    _no_zero_shot(opts, text, "a trained model (a run or an export)")
    p = Path(text)
    if is_export(p):
        return export_source(p)
    return _run_source(_run_file(p), base_checkpoint)


def as_hub_ref(path: str | os.PathLike) -> str | os.PathLike:
    """'user/repo[@rev]' that is not a local path -> 'hf://user/repo[@rev]'; anything else unchanged."""
    text = os.fspath(path)
    if isinstance(path, str) and not text.startswith(HUB_PREFIX) and _BARE_REPO.match(text) and not Path(text).exists():
        return HUB_PREFIX + text
    return path


def _no_zero_shot(opts: ZeroShotOptions | None, text: str, what: str) -> None:
    if opts is not None:
        raise SodError(f"--zero-shot / --image-size / --amg apply to an official SAM2 name or weights file (zero-shot "
                       f"SAM2); {text} is {what}, which predicts as it was trained: leave them out")


def _other(kind: str, text: str, base_checkpoint: str | None) -> ModelSource:
    if kind in FINDERS:
        return FINDERS[kind](text, base_checkpoint)
    if kind not in OPENERS:
        raise SodError(f"{text} is an hf:// repository, opened once sam2sod.export.hub_open is imported (as "
                       f"sam2sod.load_model, sam2sod.Predictor and the sam2sod command do)")
    return ModelSource(kind, Path(text), "", 0, False, True, base_checkpoint=base_checkpoint,
                       extra={"name": text})


def export_source(p: Path) -> ModelSource:
    config = read_export_config(p)
    folder = p.parent if p.is_file() else p
    if config.get("weights_format") == "onnx" and (folder / "model.onnx").is_file():
        return ModelSource("onnx", folder, str(config["method"]), int(config["image_size"]),
                           bool(config.get("multimask", False)), bool(config.get("pretrained", False)),
                           export_config=config)  # built by OPENERS["onnx"] (`--engine onnxruntime`)
    if config.get("weights_format") == "onnx" or not (folder / WEIGHTS_FILE).is_file():
        load_exported(folder)  # raises the reason (an ONNX export, a pickle, a missing file)
    training = (config.get("training") or {}).get("data") or {}
    try:
        data = from_dict(DataConfig, {k: v for k, v in training.items() if v is not None})
    except SodError:
        data = None
    return ModelSource("export", folder, str(config["method"]), int(config["image_size"]),
                       bool(config.get("multimask", False)), bool(config.get("pretrained", False)),
                       data=data, export_config=config)


def _run_source(p: Path, base_checkpoint: str | None) -> ModelSource:
    from sam2sod.runs.checkpoints import config_of, read_checkpoint

    ckpt = read_checkpoint(p)
    cfg = config_of(ckpt)
    source = ModelSource("run", Path(ckpt["path"]), cfg.model.method, cfg.model.image_size, cfg.model.multimask,
                         bool(ckpt.get("pretrained", False)), config=cfg, data=cfg.data, checkpoint=ckpt,
                         base_checkpoint=base_checkpoint)
    _check_base(source)
    return source


def load_model(path: str | os.PathLike, device: str | torch.device = "auto",
               base_checkpoint: str | None = None, zero_shot: ZeroShotOptions | str | None = None) -> LoadedModel:
    """Open the model at `path` (run folder, best.pt / last.pt, export folder, official SAM2 name or file,
    ``hf://user/repo[@revision]``) on `device`.

    `base_checkpoint`: the official SAM2 weights (a file or a name from `sam2sod weights list`) when a run's
    base file is not where the run recorded it (ignored for exports, which hold every weight). `zero_shot`:
    prompt-free | centre-point | amg (or `ZeroShotOptions` with the image size and AMG settings) for an
    untrained SAM2.
    """
    return open_source(path, base_checkpoint, zero_shot).build(device)
