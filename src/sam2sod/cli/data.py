"""Subcommands about data and scores: score, make-synthetic, benchmark, datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from sam2sod.cli.args import (
    MODEL_HELP,
    alias,
    base_checkpoint_arg,
    batch_size_arg,
    command,
    datasets_file_arg,
    decode_workers_arg,
    device_arg,
    engine_args,
    exclude_overlap_arg,
    hub_models,
    hub_offline_arg,
    no_progress_arg,
    out_arg,
    overwrite_arg,
    recursive_arg,
    skip_frames_arg,
    workers_arg,
    zero_shot_args,
    zero_shot_of,
)
from sam2sod.errors import SodError
from sam2sod.wording import plural


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", action="append", required=True, metavar="[NAME=]DIR",
                   help="folder of saliency maps; repeat as NAME=DIR to compare several methods")
    p.add_argument("--gt", required=True, type=Path,
                   help="folder of ground-truth masks (with --video: a video dataset, e.g. a DAVIS root)")
    out_arg(p, "write metrics.json, per_image.csv, curves.csv and plots here (with --video: metrics.json, "
               "sequences.csv, frames.csv, curves.csv; OUT/NAME/ for several --pred)", required=False)
    workers_arg(p)
    no_progress_arg(p)
    overwrite_arg(p)
    recursive_arg(p)
    p.add_argument("--video", action="store_true",
                   help="score PRED/SEQ/FRAME.png per sequence against a video dataset (mean over sequences)")
    skip_frames_arg(p)


@command("score", "score saliency maps against ground-truth masks (PySODMetrics-exact)")(_score_args)
def _score(args: argparse.Namespace) -> int:
    from sam2sod.evaluation.score import check_score_inputs, format_table, parse_pred_args, score
    from sam2sod.outputs import prepare_output_dir

    if args.workers is not None and args.workers < 1:
        raise SodError(f"--workers must be >= 1, got {args.workers}")
    preds = parse_pred_args(args.pred)
    if args.video:
        return _score_video(args, preds)
    if args.skip_frames is not None:
        raise SodError("--skip-frames needs --video")
    check_score_inputs(preds, args.gt, args.recursive)
    if args.out:
        prepare_output_dir(args.out, overwrite=args.overwrite, inputs=[*preds.values(), args.gt], command="score")
    results = score(preds, args.gt, args.out, args.workers, not args.no_progress, recursive=args.recursive,
                    atomic=True)
    print(format_table(results))
    if args.out:
        print(f"\nwrote metrics.json, per_image.csv, curves.csv, pr_curve.png, f_curve.png, e_curve.png to {args.out}")
    return 0


def _score_video(args: argparse.Namespace, preds: dict[str, Path]) -> int:
    from sam2sod.evaluation.video import score_videos

    if args.recursive:
        raise SodError("--recursive does not apply with --video (predictions are PRED/SEQ/FRAME.png)")
    score_videos(preds, args.gt, args.out, skip_frames=args.skip_frames, workers=args.workers,
                 overwrite=args.overwrite, progress=not args.no_progress)
    if args.out:
        print(f"\nwrote metrics.json, sequences.csv, frames.csv, curves.csv to {args.out}")
    return 0


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (gets images/ and masks/)")
    p.add_argument("--n", type=int, default=60, help="number of image/mask pairs")
    p.add_argument("--image-size", type=int, default=128, metavar="PX", help="image side in pixels (default 128)")
    alias(p, "--size", "image_size", type=int)
    p.add_argument("--seed", type=int, default=0)
    overwrite_arg(p)


@command("make-synthetic", "write a deterministic synthetic SOD dataset")(_synth_args)
def _make_synthetic(args: argparse.Namespace) -> int:
    from sam2sod.data.synthetic import check_synthetic_size, make_synthetic, remove_stale_pairs
    from sam2sod.outputs import prepare_output_dir

    if args.n < 1 or args.image_size < 16 or args.seed < 0:
        raise SodError(f"need --n >= 1, --image-size >= 16 and --seed >= 0, got --n {args.n} --image-size "
                       f"{args.image_size} --seed {args.seed}")
    check_synthetic_size(args.out, args.n, args.image_size)  # memory and disk, before the folder is made
    prepare_output_dir(args.out, overwrite=args.overwrite, inputs=[], command="make-synthetic",
                       subdirs=("images", "masks"))
    names = make_synthetic(args.out, n=args.n, size=args.image_size, seed=args.seed)
    stale = remove_stale_pairs(args.out, names)
    print(f"wrote {plural(len(names), 'image/mask pair')} to {args.out}/images and {args.out}/masks"
          + (f" (removed {plural(stale, 'stale file')} of an earlier, larger run)" if stale else ""))
    return 0


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", default=[], metavar="NAME=MODEL",
                   help=f"a model to predict with, {MODEL_HELP}; predictions are cached under OUT (repeatable)")
    base_checkpoint_arg(p)
    p.add_argument("--pred", action="append", default=[], metavar="NAME=DIR",
                   help="saliency maps of a method: DIR/DATASET/ per dataset, or DIR itself for one dataset")
    p.add_argument("--data", action="append", required=True, metavar="NAME|NAME=DIR|DIR", help="dataset (repeatable)")
    datasets_file_arg(p)
    out_arg(p, "tables, curves, qualitative grid, report.html; predictions cached in OUT/pred")
    p.add_argument("--metrics", help="metrics to report, e.g. core,adpdice,adpiou (default: the nine core measures)")
    p.add_argument("--show", help="comma-separated image names for qualitative.png (default: chosen automatically)")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                   help="score only this part of each root, split by name as the models' runs split their data")
    exclude_overlap_arg(p)
    p.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples for CIs and p-values")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (an integer >= 0)")
    workers_arg(p)
    device_arg(p)
    engine_args(p, dtype=False)
    batch_size_arg(p, 8, "default 8")
    zero_shot_args(p)
    hub_offline_arg(p)
    no_progress_arg(p)
    overwrite_arg(p)
    recursive_arg(p)


@command("benchmark", "every model / prediction folder on every dataset: tables, curves, grid, statistics")(
    _benchmark_args)
def _benchmark(args: argparse.Namespace) -> int:
    from sam2sod.data.datasets import resolve_data_args
    from sam2sod.evaluation.benchmark import benchmark
    from sam2sod.evaluation.score import parse_pred_args

    if args.batch_size < 1 or (args.workers is not None and args.workers < 1) or args.n_resamples < 10:
        raise SodError("--batch-size and --workers must be >= 1, --n-resamples >= 10")
    if args.seed < 0:
        raise SodError(f"--seed must be an integer >= 0 (the bootstrap seed), got {args.seed}")
    zero_shot = zero_shot_of(args)
    hub_models(args)
    models = _named_models(args.model)
    preds = parse_pred_args(args.pred) if args.pred else {}
    result = benchmark(models, preds, resolve_data_args(args.data, args.datasets), args.out, metrics=args.metrics,
                       show=args.show.split(",") if args.show else None, split=args.split,
                       exclude_overlap=args.exclude_overlap, n_resamples=args.n_resamples, seed=args.seed,
                       workers=args.workers, device=args.device or "auto", batch_size=args.batch_size,
                       overwrite=args.overwrite, base_checkpoint=args.base_checkpoint, recursive=args.recursive,
                       progress=not args.no_progress, engine=args.engine, zero_shot=zero_shot)
    from sam2sod.report.tables import render_summary

    print(f"{result['caption']}\n\n{render_summary(result['rows'], result['method_info'])}")
    print(f"wrote {', '.join(p.name for p in result['files'])} and curves/ to {args.out}")
    return 0


def _named_models(values: list[str]) -> dict[str, str]:
    """`--model NAME=MODEL` (or a bare MODEL, named after its last path part) -> {name: model path or name}."""
    models: dict[str, str] = {}
    for v in values:
        name, sep, model = v.partition("=")
        if not sep:
            name, model = v.rstrip("/").rsplit("/", 1)[-1] or v, v
        if not name or not model:
            raise SodError(f"--model {v!r}: expected NAME=MODEL or MODEL")
        if name in models:
            raise SodError(f"--model: method name {name!r} given twice")
        models[name] = model
    return models


def _datasets_args(parent: argparse.ArgumentParser) -> None:
    actions = parent.add_subparsers(dest="action", required=True, metavar="ACTION")
    help_text = "folders, counts against the registry, pairing, full decoding, train/test overlap"
    p = actions.add_parser("check", help=help_text, description=f"check datasets: {help_text}")
    datasets_file_arg(p)
    p.add_argument("--data", action="append", default=[], metavar="NAME[=DIR]",
                   help="a set to check (repeatable; default: every set of the datasets file)")
    p.add_argument("--train", metavar="NAME[=DIR]", help="training set: report its exact and near duplicates in "
                                                          "every other set")
    alias(p, "--threshold", "near_distance", type=int)
    p.add_argument("--near-distance", type=int, default=10, metavar="BITS",
                   help="near duplicate: pHash Hamming distance in bits, 0-64 (default 10)")
    decode_workers_arg(p, help="threads decoding the images (default: cores, at most 8)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the image hash cache")
    no_progress_arg(p)
    recursive_arg(p)


@command("datasets", "check datasets by name: counts, pairs, unreadable files, train/test overlap")(_datasets_args)
def _datasets(args: argparse.Namespace) -> int:
    from sam2sod.data.datasets.check import run_check

    return run_check(args.data, args.train, args.datasets, threshold=args.near_distance, workers=args.decode_workers,
                     progress=not args.no_progress, cache=not args.no_cache, recursive=args.recursive)
