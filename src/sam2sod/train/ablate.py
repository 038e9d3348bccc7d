"""`sam2sod ablate`: train and score every cell of a config grid; resumable; Markdown + CSV table.

Each cell is a run directory `OUT/<cell>/` with the usual run files plus `result.json` once finished;
cells with a `result.json` are skipped, a cell with only `last.pt` (or unfinished stages) is resumed.
`best.pt` is chosen on the validation split; every cell is then scored prompt-free on the held-out TEST
split (`data.val_count` set: names after train + val), which neither training nor checkpoint selection
saw, with the full metric set, and timed (train time, inference ms/image). A config without a test split
is scored on its validation split, and the table says so in its header.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from sam2sod.atomic import atomic_write_text
from sam2sod.errors import SodError
from sam2sod.runs.config import TrainConfig, load_config

COLUMNS = ("cell", "S", "maxE", "wF", "MAE", "maxF", "trainable_params", "total_params", "train_min",
           "infer_ms", "steps", "split")


def parse_grid(specs: list[str]) -> list[tuple[str, list[Any]]]:
    """`["model.method=lora,full", "optim.lr=1e-4,1e-3"]` -> [(key, [values...]), ...] (values parsed as YAML)."""
    grid: list[tuple[str, list[Any]]] = []
    for spec in specs:
        key, sep, raw = spec.partition("=")
        if not sep or not key or not raw:
            raise SodError(f"--grid {spec!r}: expected KEY=V1,V2,... e.g. model.method=adapter_cbam,lora")
        if key in (k for k, _ in grid):
            raise SodError(f"--grid: the key {key} is given twice; put all its values in one axis, e.g. "
                           f"{key}=V1,V2,V3")
        try:
            values = [yaml.safe_load(v) for v in raw.split(",")]
        except yaml.YAMLError as e:
            raise SodError(f"--grid {spec!r}: a value is not valid YAML: {' '.join(str(e).split())}") from None
        grid.append((key, values))
    return grid


def plan_cells(config: str | Path | None, grid_specs: list[str],
               overrides: list[str] | None = None) -> list[tuple[str, TrainConfig]]:
    """[(cell name, its config)] for every grid cell, each through `train`'s checks (values, data folders,
    stages, the train/val split), so a bad value stops the grid before the first cell trains."""
    from sam2sod.runs.splits import split_pairs
    from sam2sod.train.stages import stage_configs

    grid = parse_grid(grid_specs)
    keys = [k for k, _ in grid]
    cells, splits = [], {}
    for values in itertools.product(*(v for _, v in grid)):
        assignments = list(zip(keys, values, strict=True))
        name = cell_name(assignments)
        cell_overrides = list(overrides or []) + [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
                                                  .replace("\n...", "") for k, v in assignments]
        try:
            cfg = load_config(config, cell_overrides, check_paths=True)
            stage_configs(cfg)
            key = repr(cfg.data)
            if key not in splits:
                splits[key] = split_pairs(cfg.data)
        except SodError as e:
            raise SodError(f"grid cell {name}: {e} (no cell was trained)") from None
        cells.append((name, cfg))
    return cells


def cell_name(assignments: list[tuple[str, Any]]) -> str:
    """A folder-safe name for one grid cell, e.g. `method=lora__lr=0.001` (`sam2sod.names.check_name`).

    Characters outside the name set become ``-``; a name changed that way (or longer than 100 characters)
    ends in 8 hex digits of the SHA-256 of the exact assignments, so two cells never share a folder.
    """
    import hashlib

    from sam2sod.names import check_name

    raw = "__".join(f"{k.split('.')[-1]}={v}" for k, v in assignments) or "base"
    name = re.sub(r"[^A-Za-z0-9_.=+-]", "-", raw).replace("..", "-.").lstrip(".-_=+") or "cell"
    if name != raw or len(name) > 100:
        digest = hashlib.sha256(repr(assignments).encode("utf-8")).hexdigest()[:8]
        name = f"{name[:90]}-{digest}"
    return check_name(name, "grid cell name", f"of {raw!r}")


def score_split(cfg: TrainConfig) -> str:
    """"test" when the config holds out a test split, else "val"."""
    from sam2sod.runs.splits import split_pairs

    return "test" if split_pairs(cfg.data)["test"] else "val"


def split_header(split: str, n: int) -> str:
    """The line above an ablation table saying what it was measured on."""
    if split == "test":
        return (f"Scored prompt-free on the held-out test split ({n} images; not used for training or to "
                f"pick best.pt, which was chosen on the val split).")
    return (f"Scored prompt-free on the validation split ({n} images), which also picked best.pt: set "
            f"data.val_count to hold out a test split.")


def evaluate_cell(run: Path, cfg: TrainConfig) -> dict[str, float]:
    """Prompt-free full metrics of `run/best.pt` on the test split (else val), plus inference ms/image."""
    from sam2sod.data.io import load_mask
    from sam2sod.infer.inference import predict_items
    from sam2sod.metrics import SODMetrics
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.runs.loader import load_model
    from sam2sod.runs.runtime import select_device
    from sam2sod.runs.splits import as_items, split_pairs

    device = select_device(cfg.device)
    with quiet_random_init():
        model = load_model(run / "best.pt", device).model
    val = as_items(split_pairs(cfg.data)[score_split(cfg)])
    acc = SODMetrics()
    masks = {n: m for n, _, m in val}
    t0 = time.perf_counter()
    preds = list(predict_items(model, [(n, i, None) for n, i, _ in val], cfg.model.image_size, device,
                               cfg.val_batch_size, multimask=cfg.model.multimask))
    infer_ms = 1000 * (time.perf_counter() - t0) / max(1, len(val))
    for name, pred in preds:
        acc.step(pred, load_mask(masks[name]))
    r = acc.get_results()
    from sam2sod.models import count_params

    total, trainable = count_params(model)["total"]
    return {"S": r["Smeasure"], "maxE": r["maxEm"], "wF": r["wFmeasure"], "MAE": r["MAE"], "maxF": r["maxFm"],
            "trainable_params": trainable, "total_params": total, "infer_ms": infer_ms,
            "split": score_split(cfg), "n_images": len(val)}


def run_cell(run: Path, cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) one cell, then evaluate it; writes `run/result.json`."""
    from sam2sod.train.stages import has_run, run_training

    summary = run_training(None, run, resume=True) if has_run(run) else run_training(cfg, run)
    result = {**evaluate_cell(run, cfg), "train_min": summary["train_time_s"] / 60, "steps": summary["step"]}
    atomic_write_text(run / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def format_tables(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(Markdown table with a header line naming the scored split, CSV text) of the ablation rows."""
    def fmt(k: str, v: Any) -> str:
        if k in ("trainable_params", "total_params"):
            return f"{v / 1e6:.2f}M"
        if k in ("train_min", "infer_ms"):
            return f"{v:.1f}"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    splits = {(r.get("split", "val"), r.get("n_images", 0)) for r in rows}
    md = [split_header(*s) for s in sorted(splits)] + [""]
    md += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(fmt(k, r.get(k, "val" if k == "split" else "")) for k in COLUMNS) + " |" for r in rows]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "val" if k == "split" else "") for k in COLUMNS})
    return "\n".join(md) + "\n", buf.getvalue()


def ablate(config: str | Path | None, grid_specs: list[str], out: str | Path,
           overrides: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the grid (cartesian product of `--grid` values) on top of `config` + `overrides`; every cell is
    checked first (`plan_cells`)."""
    out = Path(out)
    rows = []
    for name, cfg in plan_cells(config, grid_specs, overrides):
        run = out / name
        done = run / "result.json"
        if done.exists():
            print(f"[ablate] {name}: finished earlier, skipped")
            result = json.loads(done.read_text())
        else:
            print(f"[ablate] {name}: training")
            result = run_cell(run, cfg)
        rows.append({"cell": name, **result})
        md, csv_text = format_tables(rows)
        atomic_write_text(out / "ablation.md", md)
        atomic_write_text(out / "ablation.csv", csv_text)
    print(format_tables(rows)[0])
    return rows
