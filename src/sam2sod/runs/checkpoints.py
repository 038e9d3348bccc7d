"""Run checkpoints (`best.pt`, `last.pt`): tuned model state, optimizer, scheduler, scaler, config, step, RNG.

The model part holds only what the method changed (see `sam2sod.models.state_for_checkpoint`) plus the
base checkpoint's identity; rebuilding the model needs the same base checkpoint (a random-init base is
rebuilt from the seed the state records and checked against its fingerprint). Unreadable files give one
line with the reason (`sam2sod.safe_load`).
"""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import Any

import torch

from sam2sod.atomic import atomic_torch_save, os_error_reason
from sam2sod.errors import SodError
from sam2sod.runs.config import ModelConfig, TrainConfig, config_from_data, from_dict, to_dict
from sam2sod.runs.config_checks import VIDEO_OPTIONS
from sam2sod.safe_load import load_weights_file

FORMAT = "sam2sod-run-v1"
# Config keys `--resume` may change without --allow-config-change: how long to train and how to log or
# checkpoint it, not what is trained (model, data, prompts, loss, the other optimizer values, seed).
RESUME_KEYS = ("optim.epochs", "optim.max_steps", "optim.time_budget_min", "optim.checkpoint_every_steps",
               "optim.max_bad_steps", "device", "val_batch_size", "log_every", "data.workers")
CHANGES_FILE = "config_changes.txt"
log = logging.getLogger("sam2sod.checkpoint")


def _disk_full(err: BaseException | None) -> OSError | None:
    """The disk-full OSError behind `err` (torch.save wraps it in a RuntimeError's context), if any."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): an interrupted save never leaves a broken file.

    A full disk is one SodError line naming the file (torch reports it as "unexpected pos").
    """
    try:
        atomic_torch_save({"format": FORMAT, **state}, path)
    except (RuntimeError, OSError) as err:
        full = _disk_full(err)
        if full is None:
            raise
        previous = f"; the previous {path.name} is intact" if Path(path).is_file() else ""
        raise SodError(f"cannot write {path}: {os_error_reason(full)}{previous}") from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a run checkpoint (a file, or a run directory -> its best.pt), with clear errors."""
    p = Path(path)
    if p.is_dir():
        if not (p / "best.pt").is_file() and (p / "last.pt").is_file():
            log.info("%s has no best.pt: using its last.pt", p)
        p = p / "best.pt" if (p / "best.pt").is_file() else p / "last.pt"
    if not p.is_file():
        raise SodError(f"checkpoint {p} not found")
    ckpt = load_weights_file(p, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SodError(f"{p} is not a sam2sod run checkpoint (an official SAM2 file goes into "
                       f"model.checkpoint in the config instead)")
    ckpt["path"] = str(p)
    return ckpt


def resume_checkpoint(run_dir: Path) -> dict[str, Any]:
    """`run_dir/last.pt` for `--resume`; SodError saying why there is nothing to resume."""
    last = Path(run_dir) / "last.pt"
    if last.is_file():
        return read_checkpoint(last)
    if not Path(run_dir).is_dir():
        what = "is not a folder" if Path(run_dir).exists() else "does not exist"
        raise SodError(f"--resume {run_dir}: the run folder {what}")
    if (Path(run_dir) / "config.yaml").is_file():
        metrics = Path(run_dir) / "metrics.csv"
        first = f"delete {metrics}, then " if metrics.exists() else ""
        raise SodError(f"{run_dir} never saved a checkpoint (no last.pt: it stopped before the end of its first "
                       f"epoch or optim.checkpoint_every_steps steps), so there is nothing to resume; to start it "
                       f"again, {first}run: sam2sod train --config {Path(run_dir) / 'config.yaml'} --out {run_dir}")
    raise SodError(f"--resume {run_dir}: no run to resume there (no last.pt, no config.yaml)")


def flat_config(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as {"section.key": value} (the keys `--set` takes)."""
    if not isinstance(data, dict):
        return {prefix[:-1]: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flat_config(v, f"{prefix}{k}."))
    return out


def resumed_config(saved: dict[str, Any], overrides: list[str] | None, run_dir: Path,
                   allow_change: bool = False) -> tuple[TrainConfig, list[tuple[str, Any, Any]]]:
    """The run's saved config with `--set` overrides, and the changes [(key, old, new)].

    A change outside `RESUME_KEYS` changes what is trained: SodError unless `allow_change`.
    """
    old = config_from_data(saved)
    cfg = config_from_data(to_dict(old), overrides)
    before, after = flat_config(to_dict(old)), flat_config(to_dict(cfg))
    changes = [(k, before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
               if before.get(k) != after.get(k)]
    locked = [f"{k} {a!r} -> {b!r}" for k, a, b in changes if k not in RESUME_KEYS]
    if locked and not allow_change:
        raise SodError(f"--resume {run_dir} continues the same training, but --set changes what it trains "
                       f"({'; '.join(locked)}): drop that --set, start a new run with --out, or pass "
                       f"--allow-config-change to change it anyway (recorded in {Path(run_dir) / CHANGES_FILE})")
    return cfg, changes


def record_config_changes(run_dir: Path, step: int, changes: list[tuple[str, Any, Any]]) -> None:
    """Append the resume's config changes to `run_dir/config_changes.txt` (one line each) and log them."""
    from sam2sod.atomic import atomic_write_text

    if not changes:
        return
    path = Path(run_dir) / CHANGES_FILE
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"{stamp} resume at step {step}: {k}: {a!r} -> {b!r}" for k, a, b in changes]
    for line in lines:
        log.info("config change: %s", line.split(": ", 1)[1])
    atomic_write_text(path, old + "\n".join(lines) + "\n")


def run_complete(ckpt: dict[str, Any], cfg: TrainConfig) -> str | None:
    """Why the checkpointed run has nothing left to train under `cfg` (None if it has)."""
    o = cfg.optim
    if o.max_steps is not None and ckpt["step"] >= o.max_steps:
        return f"it reached optim.max_steps {o.max_steps}; raise it with --set optim.max_steps=N to train longer"
    if ckpt["epoch"] >= o.epochs and not ckpt.get("step_in_epoch"):
        return f"all {o.epochs} epochs are done; raise optim.epochs with --set optim.epochs=N to train longer"
    if o.time_budget_min is not None and ckpt.get("train_time_s", 0.0) >= 60 * o.time_budget_min:
        return (f"its time budget optim.time_budget_min {o.time_budget_min:g} is used; raise it with "
                f"--set optim.time_budget_min=M to train longer")
    return None


def config_of(ckpt: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, ckpt["config"])


def model_from_config(m: ModelConfig, device: torch.device | str = "cpu", seed: int = 0,
                      checkpoint: str | None = None) -> torch.nn.Module:
    """`create_model` for a `ModelConfig` (SAM2 method or classical baseline), optionally another base file.

    An official name as the base (e.g. sam2.1_hiera_tiny) is read from the weights cache (`sam2sod.weights`).
    """
    from sam2sod.models import create_model
    from sam2sod.weights import resolve_checkpoint

    base = checkpoint or m.checkpoint
    base = resolve_checkpoint(base) if base else None
    extra = {"backbone_weights": m.backbone_weights} if m.backbone_weights else {}
    args = {k: v for k, v in m.args.items() if k not in VIDEO_OPTIONS}  # clip training's, not the builder's
    return create_model(m.method, version=m.version, size=m.size, image_size=m.image_size,
                        checkpoint=base, device=str(device), seed=seed, **extra, **args)


def build_model_from_checkpoint(ckpt: dict[str, Any], device: torch.device,
                                base_checkpoint: str | None = None) -> torch.nn.Module:
    """Rebuild the tuned model of a run checkpoint on `device` (the base weights are re-read)."""
    from sam2sod.models import load_tuned_state

    cfg = config_of(ckpt)
    model = model_from_config(cfg.model, device, cfg.seed, base_checkpoint)
    load_tuned_state(model, ckpt["model"])
    return model.to(device).eval()


__all__ = ["FORMAT", "RESUME_KEYS", "build_model_from_checkpoint", "config_of", "flat_config", "model_from_config",
           "read_checkpoint", "record_config_changes", "resume_checkpoint", "resumed_config", "run_complete",
           "save_checkpoint", "to_dict"]
