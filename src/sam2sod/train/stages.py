"""Multi-stage runs (`stages:` in a config) and the one entry point for training: `run_training`.

A stage is `{name: NAME, set: {dotted.key: value, ...}}` applied on top of the run's config (mappings
merge, so `model.args.use_fad: false` changes one option). Stage k trains in `RUN/NAME/` (its own
best.pt, last.pt, metrics.csv) and starts from stage k-1's `best.pt` (`model.init_from`, unless the
stage sets it). A finished stage writes `RUN/NAME/stage.json`; `--resume RUN` skips finished stages,
resumes the interrupted one and goes on. When all are done, `RUN/best.pt` is the last stage's best and
`RUN/stages.json` lists them, so `evaluate RUN` / `predict RUN` work as for a one-stage run.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

from sam2sod.atomic import atomic_write_text
from sam2sod.errors import SodError
from sam2sod.names import check_name
from sam2sod.runs.config import TrainConfig, config_from_data, dump_yaml, read_config_file, to_dict


def _merge(node: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted `key` in nested dict `node`; a mapping value merges into an existing mapping."""
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SodError(f"stage setting {key}: {p} is not a config section")
    old = node.get(parts[-1])
    if isinstance(value, dict) and isinstance(old, dict):
        for k, v in value.items():
            _merge(old, k, v)
    else:
        node[parts[-1]] = copy.deepcopy(value)


def stage_configs(cfg: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """[(stage name, its full config)], each validated; SodError naming the stage on a bad entry."""
    base = to_dict(cfg)
    base["stages"] = []
    out, seen = [], set()
    for i, st in enumerate(cfg.stages):
        where = f"stages[{i}]"
        if not isinstance(st, dict) or set(st) - {"name", "set"} or "name" not in st:
            raise SodError(f"{where} must be a mapping with keys name (and set), got {st!r}")
        name, sets = st["name"], st.get("set") or {}
        if not isinstance(name, str) or name in seen:
            raise SodError(f"{where}.name must be a unique name (it names the stage's folder), got {name!r}")
        check_name(name, "stage name", f"in {where}.name")
        if not isinstance(sets, dict):
            raise SodError(f"{where}.set must be a mapping of config keys to values, got {sets!r}")
        if any(k == "stages" or k.startswith("stages.") for k in sets):
            raise SodError(f"{where}.set cannot contain stages (no nested stages)")
        seen.add(name)
        data = copy.deepcopy(base)
        for k, v in sets.items():
            _merge(data, str(k), v)
        try:
            c = config_from_data(data, resolve=False)  # the base config's paths are absolute already
        except SodError as e:
            raise SodError(f"{where} ({name}): {e}") from None
        out.append((name, c))
    return out


def is_staged(run_dir: Path) -> bool:
    """A run folder made by `train_stages` (its config.yaml has stages)."""
    p = Path(run_dir) / "config.yaml"
    if not p.is_file():
        return False
    return bool(read_config_file(p).get("stages"))  # an unreadable config.yaml: one SodError line


def has_run(run_dir: Path) -> bool:
    """Something to resume: a one-stage run's last.pt or a multi-stage run folder."""
    return (Path(run_dir) / "last.pt").is_file() or is_staged(run_dir)


def _publish_best(src: Path, dst: Path) -> None:
    """dst = src atomically (hard link where possible, else a copy)."""
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def train_stages(cfg: TrainConfig | None, run_dir: str | Path, resume: bool = False,
                 overrides: list[str] | None = None, allow_config_change: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Run every stage of `cfg` in order (or resume RUN's stages); returns a summary like `train`'s.

    Resuming, `overrides` follow `train`'s rules (`checkpoint.RESUME_KEYS`, `allow_config_change`).
    """
    from sam2sod.runs.checkpoints import record_config_changes, resumed_config
    from sam2sod.train.trainer import train

    run_dir = Path(run_dir)
    changes: list[tuple[str, Any, Any]] = []
    if resume:
        data = read_config_file(run_dir / "config.yaml")
        cfg, changes = resumed_config(data, overrides, run_dir, allow_config_change)
    assert cfg is not None
    stages = stage_configs(cfg)
    if not stages:
        raise SodError("train_stages needs a config with stages")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    record_config_changes(run_dir, 0, changes)
    done: list[dict[str, Any]] = []
    prev: Path | None = None
    for i, (name, c) in enumerate(stages):
        sub = run_dir / name
        if prev is not None and c.model.init_from is None:
            c.model.init_from = str((prev / "best.pt").resolve())
        marker = sub / "stage.json"
        if marker.is_file():
            summary = json.loads(marker.read_text(encoding="utf-8"))
            print(f"[stages] {i + 1}/{len(stages)} {name}: finished earlier, skipped")
        else:
            origin = f" (from {c.model.init_from})" if c.model.init_from else ""
            print(f"[stages] {i + 1}/{len(stages)} {name}{origin}")
            if (sub / "last.pt").is_file():
                summary = train(None, sub, resume=True, overrides=_stage_overrides(sub, c, changes),
                                allow_config_change=allow_config_change, progress=progress)
            else:
                summary = train(c, sub, progress=progress)
            summary = {"name": name, **summary}
            atomic_write_text(marker, json.dumps(summary, indent=2) + "\n")
        done.append(summary)
        prev = sub
    assert prev is not None
    _publish_best(prev / "best.pt", run_dir / "best.pt")
    atomic_write_text(run_dir / "stages.json", json.dumps(done, indent=2) + "\n")
    return {"step": sum(s["step"] for s in done), "best": done[-1]["best"], "stages": done,
            "skipped_steps": sum(s["skipped_steps"] for s in done), "pretrained": done[-1]["pretrained"],
            "run_dir": str(run_dir), "train_time_s": sum(s["train_time_s"] for s in done)}


def _stage_overrides(sub: Path, stage: TrainConfig, changes: list[tuple[str, Any, Any]]) -> list[str]:
    """`--set` strings that carry the resume's changes into an interrupted stage: for each key the resume
    changed, the stage's new value where it differs from the stage's saved config (a stage's own `set:`
    keeps its value)."""
    from sam2sod.runs.checkpoints import flat_config

    saved = flat_config(read_config_file(sub / "config.yaml"))
    now = flat_config(to_dict(stage))
    return [f"{k}={json.dumps(now[k])}" for k, _, _ in changes if k in now and now[k] != saved.get(k)]


def check_new_run_dir(out: Path) -> None:
    """A new run never starts in a folder holding a run (resume it) or an old metrics.csv (no mixed history)."""
    if (out / "last.pt").exists() or has_run(out):
        what = "last.pt" if (out / "last.pt").exists() else "a multi-stage run"
        raise SodError(f"{out} already holds a run ({what}); use --resume {out} or another --out")
    if (out / "metrics.csv").exists():
        raise SodError(f"{out} holds metrics.csv of an earlier run but no last.pt to resume; a new run would "
                       f"append to that history: delete {out / 'metrics.csv'} or choose another --out")


def run_training(cfg: TrainConfig | None, run_dir: str | Path, resume: bool = False,
                 overrides: list[str] | None = None, allow_config_change: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Train a new run (one stage or several) or resume one; the CLI's and `ablate`'s entry point.
    `progress`: the progress bars."""
    from sam2sod.train.trainer import train

    run_dir = Path(run_dir)
    if resume:
        if is_staged(run_dir):
            return train_stages(None, run_dir, resume=True, overrides=overrides,
                                allow_config_change=allow_config_change, progress=progress)
        return train(None, run_dir, resume=True, overrides=overrides, allow_config_change=allow_config_change,
                     progress=progress)
    assert cfg is not None
    return train_stages(cfg, run_dir, progress=progress) if cfg.stages else train(cfg, run_dir, progress=progress)
