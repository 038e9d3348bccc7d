"""Subcommands that use a trained model: evaluate, predict, demo, weights, export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sam2sod.cli.args import (
    EXIT_SKIPPED,
    alias,
    batch_size_arg,
    checkpoint_arg,
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
    refine_args,
    resize_args,
    skip_frames_arg,
    tracker_args,
    tracker_config,
    unused_with_video,
    video_flags_without_video,
    workers_arg,
    zero_shot_args,
    zero_shot_of,
)
from sam2sod.wording import plural


def _eval_args(p: argparse.ArgumentParser) -> None:
    checkpoint_arg(p)
    p.add_argument("--data", action="append", required=True, metavar="DIR|NAME=DIR|NAME",
                   help="dataset root, NAME=DIR (NAME names the output folder), or a NAME from --datasets "
                        "(repeatable)")
    datasets_file_arg(p)
    out_arg(p, "results: NAME/pred/*.png and the score files per dataset, summary.json")
    p.add_argument("--prompt", default="none", choices=["none", "oracle-box", "oracle-points", "oracle-mask"],
                   help="prompt-free by default; oracle-* use the ground truth (labelled upper bound)")
    device_arg(p)
    batch_size_arg(p, 8, "default 8")
    workers_arg(p)
    no_progress_arg(p)
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                   help="score only this part of each root, split by name as the run's config splits its data "
                        "(e.g. test: the held-out names after train_count + val_count)")
    refine_args(p)
    engine_args(p)
    resize_args(p)
    exclude_overlap_arg(p)
    tracker_args(p)
    skip_frames_arg(p)
    zero_shot_args(p)
    hub_offline_arg(p)
    overwrite_arg(p)
    recursive_arg(p)


@command("evaluate", "predict datasets with a checkpoint and score them")(_eval_args)
def _evaluate(args: argparse.Namespace) -> int:
    from sam2sod.data.datasets import resolve_data_args
    from sam2sod.evaluation.evaluate import evaluate

    zero_shot = _zero_shot_and_hub(args)
    if args.video:
        return _evaluate_video(args)
    video_flags_without_video(args)
    evaluate(args.checkpoint, resolve_data_args(args.data, args.datasets), args.out, args.prompt,
             args.device or "auto", args.batch_size, args.workers, args.base_checkpoint, recursive=args.recursive,
             overwrite=args.overwrite, split=args.split, refine=args.refine, tta=args.tta,
             exclude_overlap=args.exclude_overlap, progress=not args.no_progress, engine=args.engine,
             dtype=args.dtype, resize=args.resize, tiles=args.tiles, zero_shot=zero_shot)
    print(f"\nresults: {args.out}")
    return 0


def _zero_shot_and_hub(args: argparse.Namespace) -> object:
    """Checked --zero-shot / --image-size / --amg (before anything is written) and hf:// models enabled."""
    from sam2sod.errors import SodError

    zero_shot = zero_shot_of(args)
    if zero_shot is not None and getattr(args, "video", False):
        raise SodError("--zero-shot / --image-size / --amg do not apply with --video")
    hub_models(args)
    return zero_shot


def _evaluate_video(args: argparse.Namespace) -> int:
    from sam2sod.data.datasets import resolve_data_args
    from sam2sod.evaluation.video import evaluate_video

    unused_with_video(args, {"--prompt": "none", "--split": "all", "--refine": 0, "--tta": "none",
                             "--exclude-overlap": False, "--recursive": False, "--engine": "torch",
                             "--resize": "squash", "--tiles": None})
    evaluate_video(args.checkpoint, resolve_data_args(args.data, args.datasets), args.out, args.device or "auto",
                   args.base_checkpoint, config=tracker_config(args), skip_frames=args.skip_frames,
                   workers=args.workers, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"\nresults: {args.out}")
    return 0


def _predict_args(p: argparse.ArgumentParser) -> None:
    checkpoint_arg(p)
    p.add_argument("--input", required=True, help="an image file or a folder of images (with --video: a frames "
                                                  "folder, a video file or a folder of sequences)")
    out_arg(p, "folder for the maps (OUT/NAME.png) and the other --format outputs")
    p.add_argument("--overlay", action="store_true",
                   help="also write OUT/overlay/NAME.jpg (contour + fill; --format overlay writes PNG)")
    device_arg(p)
    batch_size_arg(p, None, "default: 1 on CPU, 8 on GPU")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image (default: skip it)")
    no_progress_arg(p)
    decode_workers_arg(p, help="processes decoding the next images while the model runs (default: on CPU only "
                               "cores torch's threads leave free, usually none; on GPU one per core beyond the "
                               "first, at most 4; 0: decode in the main process)")
    engine_args(p)
    resize_args(p)
    p.add_argument("--point", action="append", default=[], metavar="X,Y[,LABEL]",
                   help="prompt point in original-image pixels, LABEL 1 foreground (default) / 0 background "
                        "(repeatable; --input must be one image)")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", help="prompt box in original-image pixels (one image)")
    p.add_argument("--format", action="append", dest="formats",
                   choices=["map", "mask", "alpha", "overlay", "overlay-video"],
                   help="outputs (repeatable; default map): map OUT/NAME.png, mask OUT/mask/NAME.png, alpha "
                        "OUT/alpha/NAME.png (RGBA cut-out), overlay OUT/overlay/NAME.png (contour + fill); "
                        "with --video: map and overlay-video (OUT/SEQ.mp4, needs sam2sod[video])")
    p.add_argument("--threshold", type=float, default=None,
                   help="mask / overlay threshold in [0, 1] (default: adaptive, min(2 * mean saliency, 1))")
    refine_args(p)
    tracker_args(p)
    zero_shot_args(p)
    hub_offline_arg(p)
    overwrite_arg(p)
    recursive_arg(p)


@command("predict", "write saliency maps (8-bit PNG, original size) for images")(_predict_args)
def _predict(args: argparse.Namespace) -> int:
    from sam2sod.infer.predict import predict_report
    from sam2sod.infer.predict_options import parse_box, parse_point

    zero_shot = _zero_shot_and_hub(args)
    if args.video:
        return _predict_video(args)
    video_flags_without_video(args)
    points = [parse_point(t) for t in args.point]
    report = predict_report(args.checkpoint, args.input, args.out, args.overlay, args.device or "auto",
                            args.batch_size, args.base_checkpoint, strict=args.strict, recursive=args.recursive,
                            overwrite=args.overwrite, formats=args.formats, threshold=args.threshold,
                            refine=args.refine, tta=args.tta,
                            points=[pt[:2] for pt in points] or None, labels=[pt[2] for pt in points] or None,
                            box=parse_box(args.box) if args.box else None, workers=args.decode_workers,
                            dtype=args.dtype, progress=not args.no_progress, engine=args.engine,
                            resize=args.resize, tiles=args.tiles, zero_shot=zero_shot)
    formats = list(dict.fromkeys(args.formats or ["map"]))
    n = report.total - len(report.skipped)
    what = plural(n, "saliency map") if formats == ["map"] else f"{plural(n, 'image')} as {', '.join(formats)}"
    by = f" with {report.model}" if report.model else ""
    print(f"wrote {what}{by} to {args.out} ({plural(len(report.written), 'file')})")
    if report.skipped:
        print(f"error: skipped {len(report.skipped)} of {plural(report.total, 'image')} that could not be read (listed "
              "above); the others were written. Use --strict to stop at the first one.", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


def _predict_video(args: argparse.Namespace) -> int:
    from sam2sod.infer.video_predict import predict_video

    unused_with_video(args, {"--overlay": False, "--batch-size": None, "--strict": False, "--decode-workers": None,
                             "--point": [], "--box": None, "--threshold": None, "--refine": 0, "--tta": "none",
                             "--recursive": False, "--engine": "torch", "--resize": "squash", "--tiles": None})
    report = predict_video(args.checkpoint, args.input, args.out, args.device or "auto", args.base_checkpoint,
                           config=tracker_config(args), overwrite=args.overwrite, formats=args.formats,
                           dtype=args.dtype, progress=not args.no_progress)
    fps = report.frames / report.seconds if report.seconds > 0 else float("nan")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.kinds.items()))
    print(f"wrote {plural(report.frames, 'saliency map')} of {plural(report.sequences, 'sequence')} to {args.out} "
          f"({plural(len(report.written), 'file')}; {kinds}; {fps:.2f} frames/s)")
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    checkpoint_arg(p)
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    device_arg(p)
    hub_offline_arg(p)


@command("demo", "browser demo (Gradio): upload an image, click points or draw a box, download cut-outs")(_demo_args)
def _demo(args: argparse.Namespace) -> int:
    from sam2sod.apps.demo import launch

    hub_models(args)
    launch(args.checkpoint, port=args.port, host=args.host, device=args.device or "auto",
           base_checkpoint=args.base_checkpoint)
    return 0


def _weights_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="weights_action", required=True, metavar="ACTION")
    sub.add_parser("list", help="the official SAM2 / SAM2.1 files, their sizes and sources")
    d = sub.add_parser("download", help="download (resumable) and verify official weights into the cache")
    d.add_argument("name", help="e.g. sam2.1_hiera_tiny (see `sam2sod weights list`)")
    d.add_argument("--dir", type=Path, help="folder to store it in (default: $SAM2SOD_WEIGHTS_DIR or "
                                            "~/.cache/sam2sod/weights)")
    no_progress_arg(d)
    overwrite_arg(d)
    v = sub.add_parser("verify", help="say which official variant a checkpoint file is, or why it is none")
    v.add_argument("file", type=Path)


@command("weights", "official SAM2 weights by name: list, download, verify")(_weights_args)
def _weights(args: argparse.Namespace) -> int:
    from sam2sod import weights

    if args.weights_action == "list":
        print("\n".join(weights.list_lines()))
    elif args.weights_action == "download":
        _check_weights_dir(args.dir)
        found = weights.download_weights(args.name, args.dir, overwrite=args.overwrite,
                                         progress=not args.no_progress)
        print(weights.verified_line(found))
        print(f"use it with: --set model.checkpoint={args.name}" if args.dir is None else
              f"use it with: --set model.checkpoint={found.path}")
    else:
        print(weights.verified_line(weights.verify_file(args.file, weights.entry_for_file(args.file))))
    return 0


def _check_weights_dir(folder: Path | None) -> None:
    """SodError naming --dir or $SAM2SOD_WEIGHTS_DIR (whichever gave the folder) when a file is in its way."""
    import os

    from sam2sod.errors import SodError
    from sam2sod.weights import WEIGHTS_ENV, weights_dir

    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if folder is None and not env:
        return
    what = f"--dir {folder}" if folder is not None else f"{WEIGHTS_ENV}={env}"
    target = part = weights_dir(folder)
    while not os.path.lexists(part) and part != part.parent:
        part = part.parent
    if os.path.lexists(part) and not part.is_dir():
        where = "is a file" if part == target else f"cannot be created: {part} is a file"
        raise SodError(f"{what} {where}, not a folder: give a folder to store the weights in")


def _export_args(p: argparse.ArgumentParser) -> None:
    checkpoint_arg(p, "a run folder (its best.pt, else last.pt), a run's best.pt / last.pt, or an export folder "
                      "(re-exported, e.g. to ONNX)")
    out_arg(p, "export folder (config.json, weights, README.md)")
    alias(p, "--format", "weights_format", choices=["safetensors", "onnx"])
    p.add_argument("--weights-format", default="safetensors", choices=["safetensors", "onnx"],
                   help="safetensors (PyTorch, default) or onnx (needs pip install 'sam2sod[export]')")
    p.add_argument("--push-to-hub", metavar="USER/REPO", dest="push_to_hub",
                   help="also upload the export folder to this Hugging Face model repo (created if missing), its "
                        "model card headed by hub metadata; needs pip install 'sam2sod[hub]' and a write token")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    hub_offline_arg(p)
    overwrite_arg(p)


@command("export", "a finished run as one standalone folder (safetensors or ONNX) with a model card")(_export_args)
def _export(args: argparse.Namespace) -> int:
    from sam2sod.export import export_model

    hub_models(args)
    if args.private and not args.push_to_hub:
        from sam2sod.errors import SodError

        raise SodError("--private applies to --push-to-hub USER/REPO")
    if args.push_to_hub:  # the repo name and huggingface_hub are checked before the export is written
        from sam2sod.hub import parse_hf, require_hub

        require_hub()
        repo, revision = parse_hf(args.push_to_hub)
        if revision:
            from sam2sod.errors import SodError

            raise SodError(f"--push-to-hub takes a repo (user/repo), not a revision: {args.push_to_hub!r}")
    out = export_model(args.checkpoint, args.out, args.weights_format, overwrite=args.overwrite,
                       base_checkpoint=args.base_checkpoint)
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    print(f"exported {args.checkpoint} to {out}: {', '.join(files)}")
    if args.push_to_hub:
        import os

        from sam2sod.hub import push_export

        url = push_export(out, repo, private=args.private, token=os.environ.get("HF_TOKEN") or None,
                          endpoint=os.environ.get("HF_ENDPOINT") or None)
        print(f"uploaded {out} to the Hugging Face repo {repo}{' (private)' if args.private else ''}: {url}")
    return 0
