"""`sam2sod benchmark`: every model and prediction folder on every dataset, in one command.

    benchmark({"ours": RUN}, {"f3net": PRED_DIR}, [("ECSSD", ROOT)], OUT)

Layout of OUT (a rerun reuses finished predictions, so it does no model work):
  pred/METHOD/DATASET/*.png + done.json   predictions of each model, produced once (done.json written last)
  data/DATASET/{images,masks}             symlinks to the scored pairs (only with --split or --exclude-overlap)
  scores/DATASET/                         `sam2sod score`'s files for that dataset (metrics.json, per_image.csv, ...)
  table.csv / table.md / table.tex        tidy rows + the papers' layout (CIs and p-values in table.csv)
  pvalues.csv / pvalues.md                paired tests of the first method against each other one
  curves/DATASET_{pr,f,e}.png, qualitative_DATASET.png (one captioned grid per dataset), report.html,
  benchmark.json

"Inference ms" is each model's median time of one batch-1 forward pass (image already decoded and resized),
measured after warm-up passes, with half the interquartile range as its spread; it is measured once per model
when its predictions are made and kept in done.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from sam2sod.atomic import atomic_save_image, atomic_write_text
from sam2sod.errors import SodError
from sam2sod.names import check_name, check_stem, inside
from sam2sod.outputs import in_output_scope
from sam2sod.runs.loader import RANDOM_INIT, ModelSource, open_source

WARMUP_RUNS, TIMED_RUNS = 2, 5  # forward passes before and while timing "Inference ms"


@dataclass
class Dataset:
    """One scored dataset: its pairs (after --split / --exclude-overlap) and where its images/masks are."""

    name: str
    root: Path
    pairs: list
    image_dir: Path
    mask_dir: Path


def _split_rule(models: dict[str, ModelSource], split: str) -> Any:
    """The data config whose split-by-name rule `--split` applies (every model must share it)."""
    if split == "all":
        return None
    if not models:
        raise SodError("--split needs a --model: the split by name comes from a run's config")
    unknown = [name for name, m in models.items() if m.data is None]
    if unknown:
        raise SodError(f"--split {split}: {', '.join(unknown)} does not record how its training data was split; "
                       f"benchmark on a held-out root without --split")
    rules = {(m.data.train_count, m.data.val_count, m.data.val_fraction) for m in models.values()}
    if len(rules) > 1:
        raise SodError(f"--split {split}: the models split their data differently ({sorted(rules, key=str)}); "
                       f"benchmark them on a held-out root without --split")
    return next(iter(models.values())).data


def _prepare_datasets(specs: Sequence[tuple[str, Path]], out: Path, split: str, rule: Any,
                      drop: dict[str, set[str]], recursive: bool = False) -> list[Dataset]:
    from sam2sod.data import find_pairs
    from sam2sod.data.discovery import find_layout
    from sam2sod.runs.splits import link_subset, split_pairs

    sets = []
    for name, root in specs:
        image_dir, mask_dir = find_layout(root)
        pairs = find_pairs(root, recursive=recursive)
        for p in pairs:
            check_stem(p.name, "image name", f"in {root}")
        if rule is not None:
            pairs = split_pairs(rule, pairs)[split]
            if not pairs:
                raise SodError(f"--split {split}: the runs' config holds out no {split} part of {root}")
        pairs = [p for p in pairs if p.name not in drop.get(name, set())]
        if not pairs:
            raise SodError(f"{name}: no images left to score")
        if rule is not None or drop.get(name):
            linked = link_subset([(p.name, p.image, p.mask) for p in pairs], inside(out, "data", name))
            image_dir, mask_dir = linked / "images", linked / "masks"
        sets.append(Dataset(name, Path(root), pairs, image_dir, mask_dir))
    return sets


def _overlaps(models: dict[str, ModelSource], specs: Sequence[tuple[str, Path]], exclude: bool,
              threshold: int) -> dict[str, set[str]]:
    """Warn about (and with `exclude`, return for dropping) test images that duplicate a model's training data."""
    from sam2sod.data.datasets import describe_overlap, find_overlap, overlap_names

    drop: dict[str, set[str]] = {}
    for method, m in models.items():
        train_root = m.data.root if m.data is not None else None
        if not train_root or not Path(train_root).is_dir():
            continue
        for name, root in specs:
            if Path(root).resolve() == Path(train_root).resolve():
                continue  # the same root: --split decides which part is held out
            report = find_overlap(train_root, root, threshold)
            found = overlap_names(report)
            if found:
                print(f"warning: {method} trained on {train_root}, which overlaps {name}: "
                      + "; ".join(describe_overlap(report, str(train_root))[:3]))
                if exclude:
                    drop.setdefault(name, set()).update(found)
    return drop


def time_forward(model: Any, image: Path, size: int, device: Any, multimask: bool = False) -> dict[str, float]:
    """Median and spread (half the interquartile range) in ms of `TIMED_RUNS` batch-1 forward passes on one
    preprocessed image, after `WARMUP_RUNS` untimed ones (allocator, kernels and caches warmed up)."""
    import numpy as np
    import torch

    from sam2sod.data.io import load_image
    from sam2sod.infer.forward import run_model
    from sam2sod.infer.inference import preprocess

    x = preprocess(load_image(image), size)[None].to(device)
    times = []
    with torch.no_grad():
        for i in range(WARMUP_RUNS + TIMED_RUNS):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            run_model(model, x, None, multimask)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= WARMUP_RUNS:
                times.append(1000 * (time.perf_counter() - t0))
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return {"infer_ms": float(med), "infer_ms_spread": float((q3 - q1) / 2), "infer_runs": TIMED_RUNS}


def _predict_cached(method: str, source: ModelSource, ds: Dataset, out: Path, device: str,
                    batch_size: int, timed: bool = True, progress: bool = True, engine: str = "torch",
                    ) -> tuple[Path, dict[str, Any]]:
    """OUT/pred/METHOD/DATASET with one PNG per image; reused when its done.json matches the checkpoint and images.

    Returns (folder, done.json record with `params`, the model's total parameter count, and with `timed`
    the `time_forward` keys `infer_ms`, `infer_ms_spread`).
    """
    from sam2sod.infer.engines import load_engine, use_engine
    from sam2sod.infer.inference import predict_items
    from sam2sod.models import count_params
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.runs.runtime import select_device

    folder = inside(out, "pred", method, ds.name)
    key = {"checkpoint": str(source.path), "step": source.step, "images": sorted(p.name for p in ds.pairs)}
    if source.kind == "official":  # the same weights file predicts differently per zero-shot mode / size
        key["zero_shot"] = {"model": source.method, "image_size": source.image_size, "amg": source.extra.get("amg")}
    if engine != "torch":
        key["engine"] = engine
    done = folder / "done.json"
    if done.is_file():
        old = json.loads(done.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in key} == key and "params" in old:
            print(f"[benchmark] {method} on {ds.name}: cached predictions reused")
            return folder, old
    dev = select_device(device)
    load_engine(engine)
    with quiet_random_init():
        model = source.build(dev).model
    params = count_params(model)["total"][0]
    model = use_engine(model, engine, source.multimask)
    items = [(p.name, p.image, None) for p in ds.pairs]
    with tqdm(total=len(items), desc=f"predict {method} / {ds.name}", unit="img", disable=not progress) as bar:
        for name, pred in predict_items(model, items, source.image_size, dev, batch_size,
                                        multimask=source.multimask):
            atomic_save_image(Image.fromarray(pred), inside(folder, f"{name}.png"))
            bar.update()
    record = {**key, "params": params}
    if timed:
        record.update(time_forward(model, ds.pairs[0].image, source.image_size, dev, source.multimask),
                      device=str(dev))
    atomic_write_text(done, json.dumps(record, indent=2) + "\n")
    return folder, record


def _pred_folder(method: str, root: Path, ds: Dataset, n_sets: int) -> Path:
    """--pred DIR: DIR/DATASET (the evaluation toolkits' layout), or DIR itself when one dataset is given."""
    if (root / ds.name).is_dir():
        return root / ds.name
    if n_sets == 1:
        return root
    raise SodError(f"--pred {method}={root}: no subfolder {ds.name!r} (with several datasets, DIR holds one "
                   f"folder of maps per dataset name)")


def _score(sets: list[Dataset], pred_dirs: dict[str, dict[str, Path]], extra_names: list[str], out: Path,
           workers: int | None, notes: dict[str, str], recursive: bool = False,
           progress: bool = True) -> tuple[dict, dict]:
    """-> ({dataset: {method: metrics}}, {method: {dataset: ImageScores}}), writing scores/DATASET/."""
    from sam2sod.data.io import load_mask
    from sam2sod.evaluation.score import load_prediction, score_method, write_output_set
    from sam2sod.metrics.extra import ExtraMetrics
    from sam2sod.report.curves import write_dataset_curves
    from sam2sod.report.plots import reuse_plots_from
    from sam2sod.report.stats import ImageScores

    metrics: dict[str, dict[str, dict[str, float]]] = {}
    scores: dict[str, dict[str, ImageScores]] = {}
    for ds in sets:
        results = []
        for method, by_set in pred_dirs.items():
            r = score_method(method, by_set[ds.name], ds.mask_dir, workers, progress, recursive=recursive,
                             nested_warning=False)
            names = [row["name"] for row in r.per_image]
            extra = None
            values = dict(r.metrics)
            if extra_names:
                acc = ExtraMetrics(extra_names)
                for n in names:
                    gt = load_mask(ds.mask_dir / _file_of(ds.mask_dir, n))
                    pred, _ = load_prediction(by_set[ds.name] / _file_of(by_set[ds.name], n), gt.shape)
                    acc.step(pred, gt)
                values.update(acc.get_results())
                extra = acc.image_scores(names)
            metrics.setdefault(ds.name, {})[method] = values
            scores.setdefault(method, {})[ds.name] = ImageScores.from_pair_scores(names, r.pair_scores, extra)
            results.append(r)
        shown_notes = {m: n for m, n in notes.items() if m in pred_dirs}
        with reuse_plots_from(inside(out, "scores", ds.name)):  # a rerun copies its unchanged plots
            write_output_set(results, inside(out, "scores", ds.name), shown_notes)
        inside(out, "curves", f"{ds.name}_pr.png")
        write_dataset_curves({r.name: r.curves for r in results}, ds.name, out)
    return metrics, scores


def _file_of(folder: Path, stem: str) -> str:
    hits = sorted(folder.glob(f"{stem}.*"))
    if not hits:
        raise SodError(f"{folder}: no file for {stem}")
    return hits[0].name


@in_output_scope
def benchmark(models: dict[str, str | Path], preds: dict[str, Path], datasets: Sequence[tuple[str, Path]], out: Path, *,
              metrics: str | None = None, show: Sequence[str] | None = None, split: str = "all",
              exclude_overlap: bool = False, overlap_threshold: int = 10, n_resamples: int = 1000, seed: int = 0,
              workers: int | None = None, device: str = "auto", batch_size: int = 8,
              overwrite: bool = False, base_checkpoint: str | None = None, recursive: bool = False,
              progress: bool = True, zero_shot: Any = None, engine: str = "torch") -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns {"rows", "stats", "files"}.

    `models` maps names to anything `sam2sod.load_model` opens (run folder, best.pt / last.pt, export folder);
    `base_checkpoint`: the official SAM2 weights of runs whose recorded base file moved. `recursive`: include
    images in sub-folders of each dataset. A model that is an official SAM2 name or file is zero-shot SAM2
    (prompt-free unless `zero_shot`, a mode name or `ZeroShotOptions`, says otherwise; it applies to those models
    only), labelled "zero-shot" in the tables' Training column and the caption. `engine`: torch | onnxruntime
    for every model (`sam2sod.infer.engines`; cached predictions are kept per engine).
    """
    from sam2sod.metrics.extra import parse_metric_names
    from sam2sod.outputs import prepare_output_dir
    from sam2sod.report.html import default_figures, write_html_report
    from sam2sod.report.qualitative import write_qualitative
    from sam2sod.report.stats import benchmark_statistics
    from sam2sod.report.tables import build_rows, write_tables

    names = [*models, *preds]
    if not names:
        raise SodError("benchmark needs at least one --model NAME=RUN or --pred NAME=DIR")
    from sam2sod.evaluation.benchmark_video import benchmark_video, is_video_benchmark

    if is_video_benchmark(datasets, split=split, exclude_overlap=exclude_overlap, metrics=metrics, show=show,
                          recursive=recursive, zero_shot=zero_shot, engine=engine):
        return benchmark_video(models, preds, datasets, out, n_resamples=n_resamples, seed=seed, workers=workers,
                               device=device, overwrite=overwrite, base_checkpoint=base_checkpoint,
                               progress=progress)
    _check_names(models, preds, datasets)
    if len(set(names)) != len(names):
        raise SodError(f"method names must be distinct, got {', '.join(names)}")
    if not datasets:
        raise SodError("benchmark needs at least one --data")
    if split not in ("all", "train", "val", "test"):
        raise SodError(f"--split must be all, train, val or test; got {split!r}")
    from sam2sod.infer.engines import check_engine
    from sam2sod.runs.runtime import select_device

    check_engine(engine, select_device(device) if models else None)
    core, extra_names = parse_metric_names(metrics) if metrics else ([], [])
    infos = _open_models(models, base_checkpoint, zero_shot)
    out = prepare_output_dir(out, overwrite=overwrite, command="benchmark",
                             inputs=[Path(r) for _, r in datasets] + [Path(p) for p in preds.values()])
    drop = _overlaps(infos, datasets, exclude_overlap, overlap_threshold)
    sets = _prepare_datasets(datasets, out, split, _split_rule(infos, split), drop, recursive)
    notes = {m: f"{RANDOM_INIT}: no pretrained weights" for m, i in infos.items() if not i.pretrained}
    pred_dirs: dict[str, dict[str, Path]] = {m: {} for m in names}
    method_info: dict[str, dict[str, Any]] = {}
    for m, info in infos.items():
        records: list[dict[str, Any]] = []
        for ds in sets:
            timed = not any("infer_ms_spread" in r for r in records)  # once per model
            pred_dirs[m][ds.name], record = _predict_cached(m, info, ds, out, device, batch_size, timed, progress,
                                                            engine)
            records.append(record)
        method_info[m] = _method_info(records)
    for m, root in preds.items():
        for ds in sets:
            pred_dirs[m][ds.name] = _pred_folder(m, Path(root), ds, len(sets))
    metric_values, scores = _score(sets, pred_dirs, extra_names, out, workers, notes, recursive, progress)
    wanted = [*core, *extra_names] if metrics else None
    stats = benchmark_statistics(scores, wanted, n_resamples=n_resamples, seed=seed)
    rows = build_rows(metric_values, stats, wanted)
    devices = sorted({str(i["device"]) for i in method_info.values() if i.get("device")})
    zero = {m: i.method for m, i in infos.items() if i.kind == "official"}
    if zero:
        for m in method_info:
            method_info[m]["training"] = "zero-shot" if m in zero else "fine-tuned"
    caption = _caption(sets, split, drop, notes, ", ".join(devices) or None, zero)
    files = write_tables(out, rows, stats, method_info=method_info, caption=caption)
    shown, grid_captions = {}, {}
    for ds in sets:
        path = inside(out, f"qualitative_{ds.name}.png")
        wanted_here = [n for n in (show or []) if n in {p.name for p in ds.pairs}] or None
        shown[ds.name] = write_qualitative(path, ds.image_dir, ds.mask_dir, {m: pred_dirs[m][ds.name] for m in names},
                                           names=wanted_here, mae={m: scores[m][ds.name].value_map("MAE")
                                                                   for m in names}, title=f"{ds.name}")
        grid_captions[path.name] = _grid_caption(ds, names, shown[ds.name], wanted_here is not None)
    html = write_html_report(inside(out, "report.html"), rows, stats, figures=default_figures(out),
                             method_info=method_info, caption=caption, figure_captions=grid_captions)
    atomic_write_text(inside(out, "benchmark.json"), json.dumps(
        {"methods": names, "datasets": {d.name: {"root": str(d.root), "images": len(d.pairs)} for d in sets},
         "split": split, "excluded_overlap": {k: sorted(v) for k, v in drop.items()}, "qualitative": shown,
         "inference": {m: {k: i.get(k) for k in ("inference_ms", "inference_ms_spread", "device")}
                       for m, i in method_info.items()},
         "notes": notes, "n_resamples": n_resamples, "seed": seed}, indent=2) + "\n")
    grids = [out / name for name in grid_captions]
    return {"rows": rows, "stats": stats, "files": [*files, html, *grids], "method_info": method_info,
            "caption": caption}


def _method_info(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Params and the timed record's inference median / spread (older done.json files: their mean)."""
    timed = [r for r in records if "infer_ms_spread" in r]
    if timed:
        return {"params": records[0]["params"], "inference_ms": timed[0]["infer_ms"],
                "inference_ms_spread": timed[0]["infer_ms_spread"], "device": timed[0].get("device")}
    ms = [r["infer_ms"] for r in records if "infer_ms" in r]
    return {"params": records[0]["params"], "inference_ms": sum(ms) / len(ms) if ms else None}


def _grid_caption(ds: Dataset, methods: list[str], shown: list[str], given: bool) -> str:
    how = ("the images given with --show" if given else
           f"the images on which the methods disagree most, then {methods[0]}'s worst (per-image MAE)")
    return (f"{ds.name} ({len(ds.pairs)} images): {len(shown)} rows, {how}; columns: the image, its ground "
            "truth, then each method's saliency map; rows are labelled with the image names of this dataset.")


def _check_names(models: dict[str, Path], preds: dict[str, Path], datasets: Sequence[tuple[str, Path]]) -> None:
    """Method, dataset and image names become folders and files under OUT: each must be safe (`sam2sod.names`)."""
    from sam2sod.data import find_pairs

    for flag, given in (("--model", models), ("--pred", preds)):
        for name, folder in given.items():
            check_name(name, "method name", f"in {flag} {name}={folder}")
    for name, folder in datasets:
        check_name(name, "dataset name", f"in --data {name}={folder}")
    for _, root in datasets:
        for p in find_pairs(root):
            check_stem(p.name, "image name", f"in {root}")


def _open_models(models: dict[str, str | Path], base_checkpoint: str | None, zero_shot: Any) -> dict[str, ModelSource]:
    """`open_source` of every model; `zero_shot` applies to the official SAM2 ones (SodError when there is none)."""
    infos = {m: open_source(run, base_checkpoint) for m, run in models.items()}
    if zero_shot is None:
        return infos
    official = [m for m, i in infos.items() if i.kind == "official"]
    if not official:
        raise SodError("--zero-shot / --image-size / --amg apply to an official SAM2 --model (e.g. "
                       "sam2=sam2.1_hiera_tiny); every --model here is a trained model")
    for m in official:
        infos[m] = open_source(models[m], base_checkpoint, zero_shot)
    return infos


def _caption(sets: list[Dataset], split: str, drop: dict[str, set[str]], notes: dict[str, str],
             timing: str | None = None, zero_shot: dict[str, str] | None = None) -> str:
    parts = [", ".join(f"{d.name} ({len(d.pairs)} images)" for d in sets)]
    if split != "all":
        parts.append(f"{split} split by file name, as the runs split their data; best.pt was chosen on the val split")
    if drop:
        parts.append("images duplicating training data excluded: "
                     + ", ".join(f"{k} {len(v)}" for k, v in drop.items()))
    if notes:
        parts.append(f"{RANDOM_INIT} ({', '.join(notes)}): not comparable to published numbers")
    if zero_shot:
        parts.append("zero-shot, no fine-tuning: " + ", ".join(f"{m} = {label}" for m, label in zero_shot.items()))
    if timing:
        parts.append(f"Inference ms: median ± half the interquartile range of {TIMED_RUNS} batch-1 forward passes "
                     f"after {WARMUP_RUNS} warm-up passes, on {timing}")
    return "Prompt-free; " + "; ".join(parts) + "."
