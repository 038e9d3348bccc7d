"""`sam2sod benchmark` on video datasets: predicted with `predict --video` semantics, scored per sequence.

    benchmark_video({"ours": RUN}, {"other": PRED}, [("DAVIS-16", ROOT)], OUT)

Layout of OUT:
  pred/METHOD/DATASET/SEQ/FRAME.png + done.json   each model's maps (the tracker's defaults), reused on a rerun
  scores/DATASET/METHOD/                          metrics.json, sequences.csv, frames.csv, curves.csv
  table.csv / table.md / table.tex, pvalues.*     rows labelled "DATASET (per sequence)"; benchmark.json

A dataset value is the mean over sequences (`sam2sod.metrics.video`); its bootstrap intervals and paired
tests resample sequences (`sam2sod.report.video.sequence_image_scores`), not frames. The skip rule is
`DEFAULT_SKIP` (first-last) and is stated in the caption. Curves, qualitative grids and the HTML report are
image-benchmark outputs and are not made for video datasets.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sam2sod.atomic import atomic_write_text
from sam2sod.errors import SodError
from sam2sod.names import check_name, inside

__all__ = ["PER_SEQUENCE", "all_video", "benchmark_video", "is_video_benchmark"]

PER_SEQUENCE = "per sequence"


def all_video(datasets: Sequence[tuple[str, Path]]) -> bool:
    """True when every dataset is a video dataset; SodError when image and video datasets are mixed."""
    from sam2sod.data.video_layouts import is_video_dataset

    kinds = [is_video_dataset(root) for _, root in datasets]
    if any(kinds) and not all(kinds):
        video = [n for (n, _), k in zip(datasets, kinds, strict=True) if k]
        raise SodError(f"benchmark: {', '.join(video)} are video datasets and the others image datasets; "
                       "benchmark them in separate commands")
    return bool(kinds) and all(kinds)


def is_video_benchmark(datasets: Sequence[tuple[str, Path]], **image_options: Any) -> bool:
    """True for video datasets; SodError naming an image-only option that was given (split != "all",
    exclude_overlap, metrics, show, recursive, zero_shot, engine != "torch")."""
    if not all_video(datasets):
        return False
    defaults = {"split": "all", "exclude_overlap": False, "metrics": None, "show": None, "recursive": False,
                "zero_shot": None, "engine": "torch"}
    for key, value in image_options.items():
        if value != defaults.get(key, value) and not (key == "show" and not value):
            raise SodError(f"--{key.replace('_', '-')} does not apply to video datasets in benchmark")
    return True


def _predict_cached(method: str, source: Any, name: str, dataset: Any, out: Path, device: str,
                    base_checkpoint: str | None, progress: bool) -> Path:
    """OUT/pred/METHOD/DATASET/SEQ/FRAME.png, reused when done.json matches the checkpoint and the frames."""
    from tqdm import tqdm

    from sam2sod.infer.video import VideoRunner, write_sequence
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.runs.runtime import select_device

    folder = inside(out, "pred", method, name)
    key = {"checkpoint": str(source.path), "step": source.step,
           "frames": {v.name: v.num_frames for v in dataset.sequences}}
    done = folder / "done.json"
    if done.is_file() and {k: v for k, v in json.loads(done.read_text(encoding="utf-8")).items() if k in key} == key:
        print(f"[benchmark] {method} on {name}: cached predictions reused", file=sys.stderr)
        return folder
    dev = select_device(device)
    with quiet_random_init():
        loaded = source.build(dev)
    runner = VideoRunner.from_loaded(loaded, None, base_checkpoint)
    print(f"note: {method}: {runner.note or runner.describe()}", file=sys.stderr)
    with tqdm(total=dataset.n_frames or None, desc=f"predict {method} / {name}", unit="frame", file=sys.stderr,
              disable=not progress) as bar:
        for video in dataset.sequences:
            write_sequence(runner, video, folder, bar)
    atomic_write_text(done, json.dumps({**key, "video": runner.describe()}, indent=2) + "\n")
    return folder


def _pred_folder(method: str, root: Path, name: str, n_sets: int) -> Path:
    if (root / name).is_dir():
        return root / name
    if n_sets == 1:
        return root
    raise SodError(f"--pred {method}={root}: no subfolder {name!r} (with several datasets, DIR holds one "
                   "folder of sequences per dataset name)")


def benchmark_video(models: dict[str, str | Path], preds: dict[str, Path], datasets: Sequence[tuple[str, Path]],
                    out: Path, *, n_resamples: int = 1000, seed: int = 0, workers: int | None = None,
                    device: str = "auto", overwrite: bool = False, base_checkpoint: str | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """The benchmark of video datasets (see the module docstring); returns {"rows", "stats", "files",
    "method_info", "caption"} as `benchmark` does."""
    from sam2sod.evaluation.video import load_scored_dataset
    from sam2sod.metrics.video import DEFAULT_SKIP, SKIP_RULES, score_video
    from sam2sod.outputs import prepare_output_dir
    from sam2sod.report.stats import benchmark_statistics
    from sam2sod.report.tables import build_rows, write_tables
    from sam2sod.report.video import sequence_image_scores, write_video_scores
    from sam2sod.runs.loader import RANDOM_INIT, open_source

    if set(models) & set(preds):
        raise SodError(f"method names must be distinct, got {', '.join([*models, *preds])}")
    for flag, given in (("--model", models), ("--pred", preds)):
        for m, where in given.items():
            check_name(m, "method name", f"in {flag} {m}={where}")
    sets = [(check_name(n, "dataset name", f"in --data {n}={root}"), load_scored_dataset(root)) for n, root in datasets]
    infos = {m: open_source(run, base_checkpoint) for m, run in models.items()}
    out = prepare_output_dir(out, overwrite=overwrite, command="benchmark",
                             inputs=[Path(r) for _, r in datasets] + [Path(p) for p in preds.values()])
    folders = {m: {n: _predict_cached(m, info, n, ds, out, device, base_checkpoint, progress) for n, ds in sets}
               for m, info in infos.items()}
    folders.update({m: {n: _pred_folder(m, Path(root), n, len(sets)) for n, _ in sets} for m, root in preds.items()})
    values: dict[str, dict[str, dict[str, float]]] = {}
    per_seq: dict[str, dict[str, Any]] = {}
    for n, ds in sets:
        label = f"{n} ({PER_SEQUENCE})"
        for m, by_set in folders.items():
            scores = score_video(by_set[n], ds, skip_frames=DEFAULT_SKIP, workers=workers or os.cpu_count() or 1,
                                 progress=progress, desc=f"score {m} / {n}")
            write_video_scores(scores, inside(out, "scores", n, m))
            values.setdefault(label, {})[m] = dict(scores.values)
            per_seq.setdefault(m, {})[label] = sequence_image_scores(scores)
    stats = benchmark_statistics(per_seq, None, n_resamples=n_resamples, seed=seed)
    rows = build_rows(values, stats)
    notes = [m for m, i in infos.items() if not i.pretrained]
    caption = (f"Video, prompt-free; {', '.join(f'{n} ({ds.n_sequences} sequences)' for n, ds in sets)}: per frame, "
               f"mean per sequence, mean over sequences; --skip-frames {DEFAULT_SKIP} (not scored: "
               f"{SKIP_RULES[DEFAULT_SKIP]} of each sequence); bootstrap intervals resample sequences"
               + (f"; {RANDOM_INIT} ({', '.join(notes)}): not comparable to published numbers" if notes else "") + ".")
    method_info = {m: {} for m in folders}
    files = write_tables(out, rows, stats, method_info=method_info, caption=caption)
    atomic_write_text(inside(out, "benchmark.json"), json.dumps(
        {"methods": list(folders), "video": True, "skip_frames": DEFAULT_SKIP,
         "datasets": {n: {"root": str(ds.root), "sequences": ds.n_sequences} for n, ds in sets},
         "n_resamples": n_resamples, "seed": seed}, indent=2) + "\n")
    return {"rows": rows, "stats": stats, "files": files, "method_info": method_info, "caption": caption}
